// Weights move from PyTorch into metadistill: a checkpoint written by PyTorch + h5py as
// docs/formats.md shows (tests/e2e/make_torch_checkpoint.py: resnet20 with random weights and BN
// statistics, one input channel, 10 classes) is read by `metadistill predict --input`, whose logits
// must equal PyTorch's eval-mode logits for the same x within 1e-4 relative. `predict --config`
// normalizes the test set as training did, also when MetaDistiller held part of the training
// set out (the statistics are those of the part it trained on), and prints the accuracies the
// trial's log recorded for the same checkpoint and test set.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <map>
#include <sstream>

#include "data/idx.h"
#include "data/image_set.h"
#include "e2e_support.h"
#include "io/trial_log.h"

namespace md::e2e {
namespace {

TEST(PredictTest, TorchCheckpointGivesTorchLogits) {
  const std::string fixtures = std::string(MD_SOURCE_DIR) + "/tests/fixtures/";
  const std::string checkpoint = fixtures + "torch_resnet20.h5";
  const std::string input = fixtures + "torch_resnet20_io.h5";
  TempDir dir("predict_torch");
  const std::string out = dir.file("y.h5");
  const ProcessResult result = run_metadistill(
      {"predict", "--checkpoint", checkpoint, "--input", input, "--out", out, "--device", "cpu"});
  ASSERT_EQ(result.exit_status, 0) << result.err;
  EXPECT_NE(result.out.find("4 images, 1 heads"), std::string::npos) << result.out;

  const Tensor expected = io::read_array(input, "logits");
  const Tensor actual = io::read_array(out, "logits");
  ASSERT_EQ(actual.shape(), (Shape{4, 10}));
  ASSERT_EQ(actual.shape(), expected.shape());
  const std::vector<float> want = expected.to_vector<float>();
  const std::vector<float> got = actual.to_vector<float>();
  double scale = 0.0, worst = 0.0;
  for (float value : want) scale = std::max(scale, std::fabs(static_cast<double>(value)));
  ASSERT_GT(scale, 0.05) << "degenerate reference logits";
  for (std::size_t i = 0; i < want.size(); ++i) {
    worst = std::max(worst, std::fabs(static_cast<double>(got[i]) - want[i]));
  }
  EXPECT_LE(worst / scale, 1e-4) << "largest difference " << worst << " against logits up to "
                                 << scale;
}

TEST(PredictTest, ConfigNormalizesAsTrainingDidWithAHoldout) {
  // 32 training images of 8x8 whose brightness grows with the index, so that the statistics of
  // the half MetaDistiller trains on differ clearly from those of the whole set; 4 test images.
  TempDir dir("predict_holdout");
  const std::string root = dir.file("idx");
  std::filesystem::create_directories(root);
  auto images = [](int count, int brightness_step) {
    std::string pixels;
    for (int i = 0; i < count; ++i) {
      for (int p = 0; p < 64; ++p) pixels.push_back(static_cast<char>(i * brightness_step + p % 8));
    }
    return pixels;
  };
  auto labels = [](int count) {
    std::string values;
    for (int i = 0; i < count; ++i) values.push_back(static_cast<char>(i % 2));
    return values;
  };
  write_idx(root + "/train-images", 0x803, {32, 8, 8}, images(32, 7));
  write_idx(root + "/train-labels", 0x801, {32}, labels(32));
  write_idx(root + "/test-images", 0x803, {4, 8, 8}, images(4, 50));
  write_idx(root + "/test-labels", 0x801, {4}, labels(4));
  const std::string config = dir.file("trial.yaml");
  write_text(
      config,
      fashion_config({{"dataset", "{name: idx, root: " + root +
                                      ", train_images: train-images, train_labels: train-labels, "
                                      "test_images: test-images, test_labels: test-labels}"},
                      {"method",
                       "{name: metadistiller, meta: {data: holdout, holdout_fraction: 0.5, "
                       "generator_width: 16}}"},
                      {"optim", "{epochs: 1, batch_size: 8}"},
                      {"runtime", "{device: cpu, threads: 1, seed: 3}"}}));
  const ProcessResult trained =
      run_metadistill({"train", "--config", config, "--out", dir.file("out")});
  ASSERT_EQ(trained.exit_status, 0) << trained.err;
  const std::string checkpoint = only_file(dir.path() / "out", ".ckpt.h5");
  const ProcessResult predicted =
      run_metadistill({"predict", "--checkpoint", checkpoint, "--config", config, "--out",
                       dir.file("config.h5"), "--batch", "8", "--device", "cpu"});
  ASSERT_EQ(predicted.exit_status, 0) << predicted.err;

  // predict prints the accuracies the log recorded for the same checkpoint and test set: every
  // head's, the final head's and the ensemble's, by one evaluation routine (train/evaluation.h).
  const std::string log_path = only_file(dir.path() / "out", ".h5");
  const io::TrialLogContents log = io::read_trial_log(log_path);
  std::map<std::string, double> logged;
  for (const auto& [metric, values] : log.tables.at("epoch")) {
    if (metric.rfind("test_acc_", 0) == 0 || metric.rfind("test_top5_", 0) == 0) {
      logged[metric] = values.back();
    }
  }
  std::map<std::string, double> printed;
  std::istringstream lines(predicted.out);
  std::string metric;
  double value = 0.0;
  while (lines >> metric >> value) printed[metric] = value;
  EXPECT_GE(logged.count("test_acc_head1"), 1u) << "a MetaDistiller student has several heads";
  ASSERT_EQ(printed.size(), logged.size()) << predicted.out;
  for (const auto& [name, accuracy] : logged) {
    ASSERT_EQ(printed.count(name), 1u) << name << " missing from: " << predicted.out;
    EXPECT_NEAR(printed.at(name), accuracy, 5e-5) << name;  // printed with 4 decimals
  }

  // The same images normalized here, through --input: with the statistics of the trained-on
  // part they give the same logits; with those of the whole set (the statistics predict used
  // to take) clearly different ones.
  const data::ImageSet train = data::load_idx(root + "/train-images", root + "/train-labels");
  const data::ImageSet test = data::load_idx(root + "/test-images", root + "/test-labels");
  auto logits_for = [&](const data::Normalization& normalization, const std::string& name) {
    std::vector<float> x(test.pixels.size());
    for (std::size_t i = 0; i < x.size(); ++i) {
      x[i] = (static_cast<float>(test.pixels[i]) / 255.0f - normalization.mean[0]) /
             normalization.std[0];
    }
    const std::string input = dir.file(name + "_x.h5");
    io::write_arrays(input, {{"x", Tensor::from_vector<float>({4, 1, 8, 8}, x)}});
    const ProcessResult direct =
        run_metadistill({"predict", "--checkpoint", checkpoint, "--input", input, "--out",
                         dir.file(name + ".h5"), "--device", "cpu"});
    EXPECT_EQ(direct.exit_status, 0) << direct.err;
    return io::read_array(dir.file(name + ".h5"), "logits").to_vector<float>();
  };
  const std::vector<float> from_config =
      io::read_array(dir.file("config.h5"), "logits").to_vector<float>();
  const std::vector<float> trained_part = logits_for(
      data::compute_normalization(data::split_holdout(train, 0.5, 3).first), "trained_part");
  const std::vector<float> whole_set = logits_for(data::compute_normalization(train), "whole_set");
  ASSERT_EQ(from_config.size(), trained_part.size());
  ASSERT_EQ(from_config.size(), whole_set.size());
  double off_whole = 0.0;
  for (std::size_t i = 0; i < from_config.size(); ++i) {
    EXPECT_NEAR(from_config[i], trained_part[i], 1e-4 * (1.0 + std::fabs(trained_part[i])))
        << "logit " << i;
    off_whole = std::max(off_whole, std::fabs(static_cast<double>(from_config[i]) - whole_set[i]));
  }
  EXPECT_GT(off_whole, 1e-3) << "the holdout does not change the normalization enough to tell";
}

}  // namespace
}  // namespace md::e2e
