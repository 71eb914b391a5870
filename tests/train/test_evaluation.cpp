// The one evaluation routine of train and predict (train/evaluation.h): the tie rule (the first
// maximum wins, as torch.argmax; ranks for top-5 as a stable descending sort; NaN above every
// number), the ensemble's ties, the metric names, and agreement with std::max_element (first
// maximum) on logits full of ties.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <random>
#include <vector>

#include "core/error.h"
#include "train/evaluation.h"

namespace md::train {
namespace {

const double kNaN = std::numeric_limits<double>::quiet_NaN();

TEST(Evaluation, TiesGoToTheLowerClassIndex) {
  const std::vector<double> scores{1.0, 3.0, 3.0, 2.0};
  EXPECT_EQ(label_rank(scores.data(), 4, 1), 0);  // the first maximum: the prediction
  EXPECT_EQ(label_rank(scores.data(), 4, 2), 1);  // tied with class 1, which comes first
  EXPECT_EQ(label_rank(scores.data(), 4, 3), 2);
  EXPECT_EQ(label_rank(scores.data(), 4, 0), 3);

  const std::vector<double> flat(10, 0.5);  // every class tied: ranks are the indices
  for (std::int64_t label = 0; label < 10; ++label) {
    EXPECT_EQ(label_rank(flat.data(), 10, label), label);
  }
}

TEST(Evaluation, NanRanksAboveEveryNumber) {
  const std::vector<double> scores{1.0, kNaN, 5.0, kNaN};
  EXPECT_EQ(label_rank(scores.data(), 4, 1), 0);  // torch.argmax gives the first NaN
  EXPECT_EQ(label_rank(scores.data(), 4, 3), 1);
  EXPECT_EQ(label_rank(scores.data(), 4, 2), 2);
  EXPECT_EQ(label_rank(scores.data(), 4, 0), 3);
}

TEST(Evaluation, CountsHeadsAndTheEnsembleWithTheTieRule) {
  // Two heads, 2 classes, 3 images. Image 0: head0 says 0, head1 says 1, the ensemble ties
  // (1 + 0 = 0 + 1) and so says 0. Image 1: both heads tie, so both say 0.
  const Tensor head0 = Tensor::from_vector<float>({3, 2}, {1.0f, 0.0f, 2.0f, 2.0f, 0.0f, 1.0f});
  const Tensor head1 = Tensor::from_vector<float>({3, 2}, {0.0f, 1.0f, 2.0f, 2.0f, 0.0f, 1.0f});
  const Tensor labels = Tensor::from_vector<std::int32_t>({3}, {1, 1, 1});
  AccuracyCounts counts(2);
  count_hits(counts, {head0, head1}, labels);
  EXPECT_EQ(counts.count, 3.0);
  EXPECT_EQ(counts.top1, (std::vector<double>{1.0, 2.0, 1.0}));  // head0, head1, ensemble
  EXPECT_EQ(counts.top5, (std::vector<double>{3.0, 3.0, 3.0}));

  const std::map<std::string, double> metrics = accuracy_metrics(counts, 2);
  const std::map<std::string, double> expected{{"test_acc_head0", 1.0 / 3.0},
                                               {"test_acc_head1", 2.0 / 3.0},
                                               {"test_acc_final", 2.0 / 3.0},
                                               {"test_acc_ensemble", 1.0 / 3.0}};
  EXPECT_EQ(metrics, expected);
}

TEST(Evaluation, TopFiveMetricsWithMoreThanFiveClasses) {
  // 6 classes, all tied: label 4 is top-5 (ranks 0..4), label 5 is not; only label 0 is top-1.
  const Tensor logits = Tensor::full({3, 6}, 0.25);
  AccuracyCounts counts(1);
  count_hits(counts, {logits}, Tensor::from_vector<std::int32_t>({3}, {0, 4, 5}));
  const std::map<std::string, double> metrics = accuracy_metrics(counts, 6);
  EXPECT_DOUBLE_EQ(metrics.at("test_acc_head0"), 1.0 / 3.0);
  EXPECT_DOUBLE_EQ(metrics.at("test_acc_final"), 1.0 / 3.0);
  EXPECT_DOUBLE_EQ(metrics.at("test_acc_ensemble"), 1.0 / 3.0);
  EXPECT_DOUBLE_EQ(metrics.at("test_top5_head0"), 2.0 / 3.0);
  EXPECT_DOUBLE_EQ(metrics.at("test_top5_final"), 2.0 / 3.0);
  EXPECT_DOUBLE_EQ(metrics.at("test_top5_ensemble"), 2.0 / 3.0);
  EXPECT_EQ(metrics.size(), 6u);
}

TEST(Evaluation, TopOneIsTheFirstArgmaxOnLogitsWithManyTies) {
  std::mt19937 generator(7);
  std::uniform_int_distribution<int> level(0, 3);  // four values over 10 classes: many ties
  const std::int64_t rows = 500, classes = 10;
  std::vector<float> values(static_cast<std::size_t>(rows * classes));
  std::vector<std::int32_t> labels(static_cast<std::size_t>(rows));
  for (float& value : values) value = static_cast<float>(level(generator));
  for (std::int32_t& label : labels) label = static_cast<std::int32_t>(generator() % classes);
  double first_argmax_hits = 0.0;
  for (std::int64_t i = 0; i < rows; ++i) {
    const float* row = values.data() + i * classes;
    first_argmax_hits += (std::max_element(row, row + classes) - row) == labels[i];
  }
  AccuracyCounts counts(1);
  count_hits(counts, {Tensor::from_vector<float>({rows, classes}, values)},
             Tensor::from_vector<std::int32_t>({rows}, labels));
  EXPECT_EQ(counts.top1[0], first_argmax_hits);
  EXPECT_EQ(counts.top1[1], first_argmax_hits);  // one head: the ensemble is that head
}

TEST(Evaluation, MismatchedShapesAndLabelsAreErrors) {
  AccuracyCounts counts(1);
  const Tensor logits = Tensor::zeros({2, 3});
  EXPECT_THROW(count_hits(counts, {logits}, Tensor::from_vector<std::int32_t>({3}, {0, 1, 2})),
               Error);
  EXPECT_THROW(count_hits(counts, {logits}, Tensor::from_vector<std::int32_t>({2}, {0, 3})), Error);
  EXPECT_THROW(count_hits(counts, {logits, logits}, Tensor::from_vector<std::int32_t>({2}, {0, 1})),
               Error);
}

}  // namespace
}  // namespace md::train
