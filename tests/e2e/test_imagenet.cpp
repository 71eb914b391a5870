// ILSVRC2012 end to end on a small synthetic tree of real JPEG files (6 classes, varied sizes,
// one grayscale image per class and one corrupt file): `pack-imagenet` into shards, a short
// MetaDistiller trial of the ImageNet-stem resnet18 on them (RandomResizedCrop at a small crop
// size), the corrupt image skipped and counted, top-1 and top-5 in the log, `predict --config`
// on the validation shards, and a data-parallel trial over 2 MPI ranks (skipped without mpirun).
#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>

#include "e2e_support.h"
#include "io/trial_log.h"
#include "support/jpeg_writer.h"

namespace md::e2e {
namespace {

namespace fs = std::filesystem;

constexpr int kClasses = 6;
constexpr int kTrainPerClass = 5;
constexpr int kValPerClass = 2;

// SRC/train/<wnid>/*.JPEG and SRC/val/<wnid>/*.JPEG, plus one truncated JPEG in train.
void write_tree(const fs::path& source) {
  for (int c = 0; c < kClasses; ++c) {
    const std::string wnid = "n0000000" + std::to_string(c);
    for (const auto& [split, count] :
         {std::pair{"train", kTrainPerClass}, std::pair{"val", kValPerClass}}) {
      const fs::path dir = source / split / wnid;
      fs::create_directories(dir);
      for (int i = 0; i < count; ++i) {
        const int width = 40 + 9 * ((c + 3 * i) % 7);
        const int height = 36 + 11 * ((2 * c + i) % 5);
        const auto color = i == 0 ? test::JpegColor::Gray : test::JpegColor::Rgb;
        const auto seed = static_cast<std::uint64_t>(100 * c + i);
        test::write_file((dir / (wnid + "_" + std::to_string(i) + ".JPEG")).string(),
                         test::encode_jpeg(test::make_test_image(width, height, color, seed)));
      }
    }
  }
  // 31 readable training images and a corrupt one: 32 records, 4 whole batches of 8.
  test::write_file((source / "train" / "n00000001" / "n00000001_extra.JPEG").string(),
                   test::encode_jpeg(test::make_test_image(77, 50, test::JpegColor::Rgb, 99)));
  std::vector<std::uint8_t> truncated =
      test::encode_jpeg(test::make_test_image(64, 64, test::JpegColor::Rgb, 7));
  truncated.resize(truncated.size() / 3);
  test::write_file((source / "train" / "n00000002" / "n00000002_truncated.JPEG").string(),
                   truncated);
}

std::string trial_config(const std::string& shards, const std::string& method, int ranks) {
  return "dataset: {name: imagenet, root: " + shards +
         ", crop_size: 32, resize_size: 36, min_scale: 0.25}\n"
         "model: {arch: resnet18, num_classes: " +
         std::to_string(kClasses) +
         "}\n"
         "method: {name: " +
         method +
         "}\n"
         "optim: {epochs: 1, batch_size: 8, lr: 0.05, schedule: {name: cosine}}\n"
         "runtime: {device: cpu, threads: 2, log_every: 1, ranks_per_trial: " +
         std::to_string(ranks) + "}\n";
}

class ImagenetE2e : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new TempDir("imagenet");
    write_tree(dir_->path() / "src");
    const ProcessResult pack = run_metadistill(
        {"pack-imagenet", dir_->file("src"), dir_->file("shards"), "--shards", "3"});
    ASSERT_EQ(pack.exit_status, 0) << pack.err;
  }
  static void TearDownTestSuite() {
    delete dir_;
    dir_ = nullptr;
  }
  static TempDir* dir_;
};

TempDir* ImagenetE2e::dir_ = nullptr;

TEST_F(ImagenetE2e, MetaDistillerTrialTrainsOnShardsAndSkipsTheCorruptImage) {
  const std::string config = dir_->file("metadistiller.yaml");
  write_text(config, trial_config(dir_->file("shards"), "metadistiller", 1));
  const ProcessResult train = run_metadistill(
      {"train", "--config", config, "--out", dir_->file("run"), "--progress", "off"});
  ASSERT_EQ(train.exit_status, 0) << train.err;
  EXPECT_NE(train.err.find("n00000002_truncated.JPEG"), std::string::npos)
      << "the skipped record is named in a warning:\n"
      << train.err;
  const io::TrialLogContents log = io::read_trial_log(only_file(dir_->path() / "run", ".h5"));
  EXPECT_EQ(std::get<std::string>(log.attributes.at("status")), "complete");
  EXPECT_EQ(log.final_values.at("skipped_samples"), 1.0);
  // 32 records in batches of 8: 4 steps (one batch is 7 images: the corrupt one is skipped).
  EXPECT_EQ(log.final_values.at("steps"), 4.0);
  for (const std::string metric : {"test_acc_final", "test_top5_final", "test_acc_ensemble",
                                   "test_top5_ensemble", "test_top5_head0"}) {
    ASSERT_EQ(log.tables.at("epoch").count(metric), 1u) << metric;
    const double value = log.tables.at("epoch").at(metric).at(0);
    EXPECT_GE(value, 0.0) << metric;
    EXPECT_LE(value, 1.0) << metric;
  }
  // Top-5 of 6 classes is at least top-1.
  EXPECT_GE(log.tables.at("epoch").at("test_top5_final").at(0),
            log.tables.at("epoch").at("test_acc_final").at(0));

  const ProcessResult predict = run_metadistill(
      {"predict", "--checkpoint", only_file(dir_->path() / "run", ".ckpt.h5"), "--config", config,
       "--out", dir_->file("predictions.h5"), "--device", "cpu"});
  ASSERT_EQ(predict.exit_status, 0) << predict.err;
  EXPECT_NE(predict.out.find("test_acc_ensemble"), std::string::npos) << predict.out;
}

TEST_F(ImagenetE2e, LocalCopyStagesTheShardsUnderSlurmTmpdir) {
  const std::string config = dir_->file("local.yaml");
  write_text(config,
             trial_config(dir_->file("shards"), "baseline", 1) + "augment: {flip: false}\n");
  std::string text = read_bytes(config);
  text.replace(text.find("min_scale: 0.25}"), 16, "min_scale: 0.25, local_copy: true}");
  write_text(config, text);
  setenv("SLURM_TMPDIR", dir_->file("node_local").c_str(), 1);
  const ProcessResult train = run_metadistill(
      {"train", "--config", config, "--out", dir_->file("local_run"), "--progress", "off"});
  unsetenv("SLURM_TMPDIR");
  ASSERT_EQ(train.exit_status, 0) << train.err;
  EXPECT_NE(train.err.find("shards staged from"), std::string::npos) << train.err;
  int manifests = 0;
  for (const auto& entry : fs::recursive_directory_iterator(dir_->path() / "node_local")) {
    manifests += entry.path().filename() == "manifest.yaml";
  }
  EXPECT_EQ(manifests, 1) << "one staged copy under $SLURM_TMPDIR/metadistill-shards/";
}

TEST_F(ImagenetE2e, DataParallelTrialOverTwoRanks) {
  if (std::system("command -v mpirun > /dev/null 2>&1") != 0) GTEST_SKIP() << "mpirun not found";
  setenv("OMPI_ALLOW_RUN_AS_ROOT", "1", 0);
  setenv("OMPI_ALLOW_RUN_AS_ROOT_CONFIRM", "1", 0);
  setenv("OMPI_MCA_rmaps_base_oversubscribe", "1", 0);
  write_text(dir_->file("dp_trial.yaml"), trial_config(dir_->file("shards"), "byot", 2));
  write_text(dir_->file("dp.yaml"), "name: dp\nbase: " + dir_->file("dp_trial.yaml") + "\n");
  RunOptions options;
  options.launcher = {"mpirun", "-np", "2"};
  const ProcessResult sweep =
      run_metadistill({"sweep", dir_->file("dp.yaml"), "--out", dir_->file("dp")}, options);
  ASSERT_EQ(sweep.exit_status, 0) << sweep.out << sweep.err;
  EXPECT_NE(sweep.out.find("1 group(s) of 2 rank(s)"), std::string::npos) << sweep.out;
  const io::TrialLogContents log = io::read_trial_log(only_file(dir_->path() / "dp", ".h5"));
  EXPECT_EQ(std::get<std::string>(log.attributes.at("status")), "complete");
  EXPECT_EQ(std::get<std::int64_t>(log.attributes.at("ranks")), 2);
  // Each rank reads its half of the 32 records in batches of 4: 4 steps.
  EXPECT_EQ(log.final_values.at("steps"), 4.0);
  EXPECT_EQ(log.final_values.at("skipped_samples"), 1.0);
}

}  // namespace
}  // namespace md::e2e
