// A short real training run learns (DESIGN.md §8): resnet20, baseline, on Fashion-MNIST for a
// bounded number of batches, reaches a test accuracy far above chance (0.1) on the first 2000
// test images; `predict --config` on its checkpoint reproduces the accuracy the log recorded for
// those images; progress goes to stderr as plain lines (no carriage returns or escape codes when
// not on a terminal), the last one naming the last epoch.
#include <gtest/gtest.h>

#include <cstdio>
#include <sstream>

#include "e2e_support.h"
#include "io/trial_log.h"

namespace md::e2e {
namespace {

TEST(LearnsTest, ShortFashionMnistRunIsFarAboveChance) {
  TempDir dir("learns");
  const std::string config = dir.file("trial.yaml");
  // 100 batches of 100 images (1/6 of an epoch), then evaluation on 20 batches of 100 images.
  write_text(config,
             fashion_config({{"optim",
                              "{epochs: 1, batch_size: 100, lr: 0.05, weight_decay: 5.0e-4, "
                              "schedule: {name: cosine}}"},
                             {"runtime",
                              "{device: cpu, threads: 2, log_every: 25, "
                              "max_train_batches: 100, max_eval_batches: 20}"}}));
  const std::string out = dir.file("out");
  const ProcessResult result =
      run_metadistill({"train", "--config", config, "--out", out, "--progress", "lines"});
  ASSERT_EQ(result.exit_status, 0) << result.err;

  const std::string log_path = only_file(out, ".h5");
  const io::TrialLogContents log = io::read_trial_log(log_path);
  EXPECT_EQ(io::attribute_string(log.attributes, "status", log_path), "complete");
  const double accuracy = log.tables.at("epoch").at("test_acc_final").back();
  std::printf("test accuracy after 100 batches of 100 images: %.4f\n", accuracy);
  EXPECT_GT(accuracy, 0.6) << "test accuracy after 100 batches";
  EXPECT_EQ(log.final_values.at("last_acc_final"), accuracy);
  EXPECT_EQ(log.tables.at("train").at("step"), (std::vector<double>{25, 50, 75, 100}));

  // Progress: plain lines, four periodic ones and the end-of-epoch one, never "epoch 2/1".
  EXPECT_EQ(result.err.find('\r'), std::string::npos);
  EXPECT_EQ(result.err.find('\033'), std::string::npos);
  EXPECT_EQ(result.err.find("epoch 2/1"), std::string::npos) << result.err;
  std::istringstream lines(result.err);
  std::string line, last_progress;
  int progress_lines = 0;
  while (std::getline(lines, line)) {
    if (line.find(" epoch ") == std::string::npos) continue;
    ++progress_lines;
    last_progress = line;
  }
  EXPECT_EQ(progress_lines, 5) << result.err;
  EXPECT_NE(last_progress.find("epoch 1/1 batch 100/100"), std::string::npos) << last_progress;
  EXPECT_EQ(last_progress.find("test nan"), std::string::npos) << last_progress;

  // predict --config evaluates the whole test set; its first 2000 rows are the images the
  // trainer evaluated (same order, same normalization, same batch size).
  const std::string predictions = dir.file("predictions.h5");
  const ProcessResult predicted =
      run_metadistill({"predict", "--checkpoint", only_file(out, ".ckpt.h5"), "--config", config,
                       "--out", predictions, "--batch", "100", "--device", "cpu"});
  ASSERT_EQ(predicted.exit_status, 0) << predicted.err;
  EXPECT_NE(predicted.out.find("test_acc_head0"), std::string::npos) << predicted.out;
  const Tensor logits = io::read_array(predictions, "logits");
  const Tensor labels = io::read_array(predictions, "labels");
  ASSERT_EQ(logits.shape(), (Shape{10000, 10}));
  ASSERT_EQ(labels.shape(), (Shape{10000}));
  const std::vector<float> values = logits.to_vector<float>();
  const std::vector<std::int32_t> truth = labels.to_vector<std::int32_t>();
  int correct = 0;
  for (std::size_t i = 0; i < 2000; ++i) {
    const float* row = values.data() + i * 10;
    const auto best = static_cast<std::int32_t>(std::max_element(row, row + 10) - row);
    correct += best == truth[i];
  }
  EXPECT_DOUBLE_EQ(correct / 2000.0, accuracy);
}

// runtime.precision: bf16 (bfloat16 convolution and linear operands, emulated on the CPU) learns
// as well, and the log's config says which precision the trial ran in.
TEST(LearnsTest, Bf16RunLearnsToo) {
  TempDir dir("learns_bf16");
  const std::string config = dir.file("trial.yaml");
  write_text(config,
             fashion_config({{"optim",
                              "{epochs: 1, batch_size: 100, lr: 0.05, weight_decay: 5.0e-4, "
                              "schedule: {name: cosine}}"},
                             {"runtime",
                              "{device: cpu, threads: 2, precision: bf16, "
                              "log_every: 20, max_train_batches: 60, "
                              "max_eval_batches: 20}"}}));
  const std::string out = dir.file("out");
  const ProcessResult result = run_metadistill({"train", "--config", config, "--out", out});
  ASSERT_EQ(result.exit_status, 0) << result.err;
  const std::string log_path = only_file(out, ".h5");
  const io::TrialLogContents log = io::read_trial_log(log_path);
  EXPECT_EQ(io::attribute_string(log.attributes, "status", log_path), "complete");
  EXPECT_NE(io::attribute_string(log.attributes, "config", log_path).find("precision: bf16"),
            std::string::npos);
  const double accuracy = log.tables.at("epoch").at("test_acc_final").back();
  std::printf("bf16: test accuracy after 60 batches of 100 images: %.4f\n", accuracy);
  EXPECT_GT(accuracy, 0.5);
}

TEST(LearnsTest, TerminalProgressRewritesOneLine) {
  TempDir dir("terminal");
  const std::string config = dir.file("trial.yaml");
  write_text(config,
             fashion_config({{"optim", "{epochs: 2, batch_size: 16}"},
                             {"runtime",
                              "{device: cpu, threads: 1, log_every: 1, max_train_batches: 2, "
                              "max_eval_batches: 1}"}}));
  const ProcessResult result = run_metadistill(
      {"train", "--config", config, "--out", dir.file("out"), "--progress", "terminal"});
  ASSERT_EQ(result.exit_status, 0) << result.err;
  EXPECT_NE(result.err.find("\r["), std::string::npos) << result.err;
  EXPECT_NE(result.err.find("epoch 2/2 batch 2/2"), std::string::npos) << result.err;
  EXPECT_EQ(result.err.find("epoch 3/2"), std::string::npos) << result.err;
  const ProcessResult quiet = run_metadistill(
      {"train", "--config", config, "--out", dir.file("quiet"), "--progress", "off"});
  ASSERT_EQ(quiet.exit_status, 0) << quiet.err;
  EXPECT_EQ(quiet.err.find(" epoch "), std::string::npos) << quiet.err;
}

}  // namespace
}  // namespace md::e2e
