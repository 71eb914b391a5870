// Every method learns (DESIGN.md §8): resnet20 on Fashion-MNIST through the real `metadistill
// train` binary, the same short budget for baseline, BYOT and MetaDistiller (60 batches of 50
// images, evaluation on the first 1000 test images). Each final head must be far above chance
// (0.1); the self-distillation methods must also train their auxiliary heads and ensemble, and
// MetaDistiller must log finite meta losses and non-zero generator gradients.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>

#include "e2e_support.h"
#include "io/trial_log.h"

namespace md::e2e {
namespace {

class MethodLearnsTest : public ::testing::TestWithParam<std::string> {};

TEST_P(MethodLearnsTest, ShortFashionMnistRunIsFarAboveChance) {
  const std::string method = GetParam();
  TempDir dir("method_" + method);
  const std::string config = dir.file("trial.yaml");
  write_text(config, fashion_config(
                         {{"method", "{name: " + method +
                                         ", temperature: 3.0, alpha: 0.3, "
                                         "meta: {every: 1, epsilon: 0.01, generator_width: 32}}"},
                          {"optim",
                           "{epochs: 1, batch_size: 50, lr: 0.05, weight_decay: 5.0e-4, "
                           "schedule: {name: cosine}}"},
                          {"runtime",
                           "{device: cpu, threads: 2, seed: 1, log_every: 20, "
                           "max_train_batches: 60, max_eval_batches: 20}"}}));
  const std::string out = dir.file("out");
  RunOptions options;
  options.timeout_s = 900;
  const ProcessResult result =
      run_metadistill({"train", "--config", config, "--out", out, "--progress", "off"}, options);
  ASSERT_EQ(result.exit_status, 0) << result.err;

  const std::string log_path = only_file(out, ".h5");
  const io::TrialLogContents log = io::read_trial_log(log_path);
  EXPECT_EQ(io::attribute_string(log.attributes, "status", log_path), "complete");
  const auto& epoch = log.tables.at("epoch");
  const double final_accuracy = epoch.at("test_acc_final").back();
  std::printf("%s: final head %.3f, ensemble %.3f\n", method.c_str(), final_accuracy,
              epoch.at("test_acc_ensemble").back());
  EXPECT_GT(final_accuracy, 0.5) << method << ": test accuracy of the final head after 60 batches";
  if (method == "baseline") {
    EXPECT_EQ(epoch.count("test_acc_head1"), 0u) << "a baseline student has one head";
    return;
  }
  // resnet20: two auxiliary heads (stages 1 and 2) and the final one.
  for (const char* head : {"test_acc_head0", "test_acc_head1"}) {
    ASSERT_EQ(epoch.count(head), 1u) << head;
    EXPECT_GT(epoch.at(head).back(), 0.25) << method << ": " << head;
  }
  EXPECT_GT(epoch.at("test_acc_ensemble").back(), 0.5) << method;
  const auto& train = log.tables.at("train");
  for (const double kd : train.at("loss_kd")) EXPECT_GT(kd, 0.0) << method << ": KD term";
  if (method != "metadistiller") return;
  ASSERT_EQ(train.count("loss_meta"), 1u);
  for (const double meta : train.at("loss_meta")) EXPECT_TRUE(std::isfinite(meta) && meta > 0.0);
  for (const double norm : train.at("generator_grad_norm")) EXPECT_GT(norm, 0.0);
}

INSTANTIATE_TEST_SUITE_P(Methods, MethodLearnsTest,
                         ::testing::Values("baseline", "byot", "metadistiller"),
                         [](const ::testing::TestParamInfo<std::string>& method) {
                           return method.param;
                         });

}  // namespace
}  // namespace md::e2e
