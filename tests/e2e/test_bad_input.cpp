// Bad input through the real binary: every case exits with status 2 and an error on standard
// error that names the culprit (key, file, tensor, option), and nothing already written is lost
// (an existing log survives a failed resume, an existing prediction a failed predict).
#include <gtest/gtest.h>

#include <cstdint>
#include <filesystem>

#include "core/rng.h"
#include "e2e_support.h"
#include "io/trial_log.h"
#include "models/student.h"
#include "nn/layout.h"
#include "train/weights.h"

namespace md::e2e {
namespace {

namespace fs = std::filesystem;

class BadInputTest : public ::testing::Test {
 protected:
  BadInputTest() : dir_(::testing::UnitTest::GetInstance()->current_test_info()->name()) {}

  // Runs `train` with `config_text` and expects exit 2 with every one of `culprits` on stderr.
  ProcessResult expect_train_rejects(const std::string& config_text,
                                     const std::vector<std::string>& culprits,
                                     const std::vector<std::string>& extra = {}) {
    const std::string config = dir_.file("trial.yaml");
    write_text(config, config_text);
    std::vector<std::string> arguments{"train", "--config", config, "--out", dir_.file("out")};
    arguments.insert(arguments.end(), extra.begin(), extra.end());
    ProcessResult result = run_metadistill(arguments);
    expect_rejected(result, culprits);
    return result;
  }

  static void expect_rejected(const ProcessResult& result,
                              const std::vector<std::string>& culprits) {
    EXPECT_EQ(result.exit_status, 2) << result.err;
    for (const std::string& culprit : culprits) {
      EXPECT_NE(result.err.find(culprit), std::string::npos)
          << "stderr does not name " << culprit << ":\n"
          << result.err;
    }
  }

  // A checkpoint holding a randomly initialized `arch` backbone (10 classes, 1 channel).
  std::string write_backbone(const std::string& name, const std::string& arch) {
    models::Student student(models::ModelSpec{.arch = arch, .num_classes = 10, .in_channels = 1},
                            models::AuxHeads::None);
    nn::ModelBuffers buffers =
        nn::ModelBuffers::allocate(student.layout(), DType::Float32, Device::cpu());
    Rng rng(7);
    buffers.initialize(student.layout(), rng);
    io::CheckpointData data;
    train::put_student(data, student, buffers);
    data.attributes["arch"] = arch;
    data.attributes["num_classes"] = std::int64_t{10};
    const std::string path = dir_.file(name);
    io::write_checkpoint(path, data);
    return path;
  }

  TempDir dir_;
};

std::string idx_config(const std::string& root) {
  return fashion_config(
      {{"dataset", "{name: idx, root: " + root +
                       ", train_images: train-images, train_labels: train-labels, "
                       "test_images: test-images, test_labels: test-labels}"}});
}

void write_good_idx(const std::string& root) {
  write_idx(root + "/train-images", 0x803, {4, 8, 8}, 4 * 64);
  write_idx(root + "/train-labels", 0x801, {4}, 4);
  write_idx(root + "/test-images", 0x803, {2, 8, 8}, 2 * 64);
  write_idx(root + "/test-labels", 0x801, {2}, 2);
}

TEST_F(BadInputTest, UnknownConfigKey) {
  expect_train_rejects(fashion_config({{"optim", "{epochs: 2, learning_rate: 0.1}"}}),
                       {"optim.learning_rate", "trial.yaml"});
}

TEST_F(BadInputTest, WrongType) {
  expect_train_rejects(fashion_config({{"optim", "{epochs: many}"}}),
                       {"optim.epochs", "trial.yaml"});
}

TEST_F(BadInputTest, BadOverride) {
  expect_train_rejects(fashion_config({}), {"runtime.seeed"}, {"--set", "runtime.seeed=1"});
}

TEST_F(BadInputTest, MissingDataFile) {
  const std::string root = dir_.file("no_such_dir");
  expect_train_rejects(fashion_config({{"dataset", "{name: idx, root: " + root + "}"}}),
                       {root + "/train-images-idx3-ubyte.gz"});
}

TEST_F(BadInputTest, CifarFileOfTheWrongSize) {
  const std::string root = dir_.file("cifar");
  fs::create_directories(root);
  write_text(root + "/train.bin", std::string(3074 * 2 + 100, '\0'));
  write_text(root + "/test.bin", std::string(3074 * 2, '\0'));
  expect_train_rejects(fashion_config({{"dataset", "{name: cifar100, root: " + root + "}"}}),
                       {root + "/train.bin"});
}

TEST_F(BadInputTest, IdxBadMagicNumber) {
  const std::string root = dir_.file("idx");
  fs::create_directories(root);
  write_good_idx(root);
  write_idx(root + "/train-images", 0x1234, {4, 8, 8}, 4 * 64);
  expect_train_rejects(idx_config(root), {root + "/train-images", "magic"});
}

TEST_F(BadInputTest, IdxLabelCountDoesNotMatch) {
  const std::string root = dir_.file("idx");
  fs::create_directories(root);
  write_good_idx(root);
  write_idx(root + "/test-labels", 0x801, {3}, 3);
  expect_train_rejects(idx_config(root), {root + "/test-labels"});
}

TEST_F(BadInputTest, InitFromACheckpointOfAnotherArch) {
  const std::string other = write_backbone("resnet32.h5", "resnet32");
  expect_train_rejects(fashion_config({{"model", "{arch: resnet56, init_from: " + other + "}"}}),
                       {other, "/model/layer1.5.conv1.weight is missing"});
  const std::string narrow = write_backbone("resnet18_cifar.h5", "resnet18_cifar");
  expect_train_rejects(fashion_config({{"model", "{arch: resnet20, init_from: " + narrow + "}"}}),
                       {narrow, "/model/conv1.weight has shape [64, 1, 3, 3]"});
}

TEST_F(BadInputTest, InitFromACorruptHdf5File) {
  const std::string corrupt = dir_.file("corrupt.h5");
  write_text(corrupt, std::string("\x89HDF\r\n\x1a\n", 8) + std::string(500, '\x42'));
  expect_train_rejects(fashion_config({{"model", "{arch: resnet20, init_from: " + corrupt + "}"}}),
                       {corrupt});
  const std::string missing = dir_.file("missing.h5");
  expect_train_rejects(fashion_config({{"model", "{arch: resnet20, init_from: " + missing + "}"}}),
                       {missing});
}

TEST_F(BadInputTest, PredictWithACheckpointOfTheWrongShape) {
  // A resnet20 checkpoint whose fc.weight has the wrong number of inputs.
  const std::string good = write_backbone("good.h5", "resnet20");
  io::CheckpointData data = io::read_checkpoint(good);
  for (auto& [name, tensor] : data.groups["model"]) {
    if (name == "fc.weight") tensor = Tensor::zeros({10, 32});
  }
  const std::string bad = dir_.file("bad_shape.h5");
  io::write_checkpoint(bad, data);
  const std::string input = dir_.file("x.h5");
  io::write_arrays(input, {{"x", Tensor::zeros({2, 1, 28, 28})}});
  const std::string out = dir_.file("y.h5");
  // An earlier prediction at --out survives the failed run.
  write_text(out, "earlier prediction");
  expect_rejected(run_metadistill({"predict", "--checkpoint", bad, "--input", input, "--out", out}),
                  {bad, "/model/fc.weight has shape [10, 32]"});
  EXPECT_EQ(read_bytes(out), "earlier prediction");

  // The good checkpoint predicts; an input without dataset x is named.
  const ProcessResult ok =
      run_metadistill({"predict", "--checkpoint", good, "--input", input, "--out", out});
  ASSERT_EQ(ok.exit_status, 0) << ok.err;
  EXPECT_EQ(io::read_array(out, "logits").shape(), (Shape{2, 10}));
  const std::string no_x = dir_.file("no_x.h5");
  io::write_arrays(no_x, {{"images", Tensor::zeros({2, 1, 28, 28})}});
  expect_rejected(run_metadistill({"predict", "--checkpoint", good, "--input", no_x, "--out",
                                   dir_.file("z.h5")}),
                  {no_x, "x"});
}

TEST_F(BadInputTest, UnknownCommandLineOption) {
  const std::string config = dir_.file("trial.yaml");
  write_text(config, fashion_config({}));
  expect_rejected(
      run_metadistill({"train", "--config", config, "--out", dir_.file("out"), "--epochs", "3"}),
      {"--epochs"});
  expect_rejected(run_metadistill({"predict", "--checkpoint", "c.h5", "--out", "y.h5", "--bogus"}),
                  {"--bogus"});
  expect_rejected(run_metadistill({"train", "--out", dir_.file("out")}), {"--config"});
  expect_rejected(run_metadistill({"trian"}), {"trian"});
  // Both commands that take --progress reject an unknown value the same way.
  for (const std::string command : {"train", "sweep"}) {
    const ProcessResult result =
        command == "train"
            ? run_metadistill(
                  {"train", "--config", config, "--out", dir_.file("out"), "--progress", "bogus"})
            : run_metadistill({"sweep", config, "--out", dir_.file("out"), "--progress", "bogus"});
    expect_rejected(result, {"--progress bogus: expected auto, terminal, lines or off"});
  }
}

TEST_F(BadInputTest, FailedResumeKeepsTheExistingLog) {
  // A tiny IDX set (32 training images of 8x8) trains in a moment.
  const std::string root = dir_.file("idx");
  fs::create_directories(root);
  write_idx(root + "/train-images", 0x803, {32, 8, 8}, 32 * 64);
  write_idx(root + "/train-labels", 0x801, {32}, 32);
  write_idx(root + "/test-images", 0x803, {8, 8, 8}, 8 * 64);
  write_idx(root + "/test-labels", 0x801, {8}, 8);
  const std::string config = dir_.file("trial.yaml");
  write_text(config, idx_config(root));
  const std::string out = dir_.file("out");
  const ProcessResult first = run_metadistill({"train", "--config", config, "--out", out});
  ASSERT_EQ(first.exit_status, 0) << first.err;
  const std::string log = only_file(out, ".h5");
  const std::string checkpoint = only_file(out, ".ckpt.h5");
  const std::string log_bytes = read_bytes(log);

  // A corrupt checkpoint: the rerun fails naming it, and the log is untouched.
  const std::string checkpoint_bytes = read_bytes(checkpoint);
  write_text(checkpoint, "not a checkpoint");
  expect_rejected(run_metadistill({"train", "--config", config, "--out", out}), {checkpoint});
  EXPECT_EQ(read_bytes(log), log_bytes);
  EXPECT_EQ(read_bytes(checkpoint), "not a checkpoint");

  // Data gone on the rerun: the same.
  write_text(checkpoint, checkpoint_bytes);
  fs::remove(root + "/train-labels");
  expect_rejected(run_metadistill({"train", "--config", config, "--out", out}),
                  {root + "/train-labels"});
  EXPECT_EQ(read_bytes(log), log_bytes);
  EXPECT_EQ(read_bytes(checkpoint), checkpoint_bytes);
  const io::TrialLogContents contents = io::read_trial_log(log);
  EXPECT_EQ(io::attribute_string(contents.attributes, "status", log), "complete");
}

}  // namespace
}  // namespace md::e2e
