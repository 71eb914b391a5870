// Batch norm on the CPU: the training forward normalizes with the biased batch variance and
// moves the running statistics with the unbiased one (PyTorch momentum semantics) only under
// RunningStatsUpdate::Update; the eval forward uses the running statistics.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>

#include "cpu_test_util.h"

namespace md::test {
namespace {

struct ChannelStats {
  std::vector<double> mean;
  std::vector<double> biased_var;
  std::vector<double> unbiased_var;
};

// x: (N, C, H, W), float64
ChannelStats naive_stats(const Tensor& x) {
  const std::int64_t batch = x.dim(0), channels = x.dim(1), inner = x.dim(2) * x.dim(3);
  const double* data = x.data<double>();
  ChannelStats stats;
  for (std::int64_t c = 0; c < channels; ++c) {
    double total = 0;
    for (std::int64_t n = 0; n < batch; ++n)
      for (std::int64_t i = 0; i < inner; ++i) total += data[(n * channels + c) * inner + i];
    const double count = static_cast<double>(batch * inner);
    const double mean = total / count;
    double squares = 0;
    for (std::int64_t n = 0; n < batch; ++n)
      for (std::int64_t i = 0; i < inner; ++i) {
        const double d = data[(n * channels + c) * inner + i] - mean;
        squares += d * d;
      }
    stats.mean.push_back(mean);
    stats.biased_var.push_back(squares / count);
    stats.unbiased_var.push_back(squares / (count - 1));
  }
  return stats;
}

TEST(CpuBatchNorm, TrainForwardNormalizesAndUpdatesRunningStatsWithUnbiasedVariance) {
  Backend& backend = cpu_backend();
  const std::int64_t channels = 3;
  Tensor x = random_tensor({4, channels, 3, 5}, 21, -2.0, 3.0);
  Tensor gamma = Tensor::from_vector<double>({channels}, {1.5, -0.5, 2.0});
  Tensor beta = Tensor::from_vector<double>({channels}, {0.1, 0.2, -0.3});
  Tensor running_mean = Tensor::from_vector<double>({channels}, {0.5, -1.0, 0.0});
  Tensor running_var = Tensor::from_vector<double>({channels}, {2.0, 0.5, 1.0});
  Tensor y = Tensor::empty(x.shape(), DType::Float64);
  Tensor save_mean = Tensor::empty({channels}, DType::Float64);
  Tensor save_invstd = Tensor::empty({channels}, DType::Float64);
  const BatchNormParams params{.momentum = 0.3, .epsilon = 1e-5};
  backend.batch_norm_forward_train(x, gamma, beta, y, save_mean, save_invstd, running_mean,
                                   running_var, params, RunningStatsUpdate::Update);
  const ChannelStats stats = naive_stats(x);
  const std::vector<double> old_mean{0.5, -1.0, 0.0}, old_var{2.0, 0.5, 1.0};
  for (std::size_t c = 0; c < 3; ++c) {
    const double invstd = 1.0 / std::sqrt(stats.biased_var[c] + 1e-5);
    EXPECT_NEAR(save_mean.data<double>()[c], stats.mean[c], 1e-14);
    EXPECT_NEAR(save_invstd.data<double>()[c], invstd, 1e-13);
    EXPECT_NEAR(running_mean.data<double>()[c], 0.7 * old_mean[c] + 0.3 * stats.mean[c], 1e-14);
    EXPECT_NEAR(running_var.data<double>()[c], 0.7 * old_var[c] + 0.3 * stats.unbiased_var[c],
                1e-14);
    const auto channel = static_cast<std::int64_t>(c);
    for (std::int64_t n = 0; n < 4; ++n) {
      for (std::int64_t i = 0; i < 15; ++i) {
        const std::int64_t index = (n * channels + channel) * 15 + i;
        const double expected =
            (x.data<double>()[index] - stats.mean[c]) * invstd * gamma.data<double>()[c] +
            beta.data<double>()[c];
        EXPECT_NEAR(y.data<double>()[index], expected, 1e-13);
      }
    }
  }
}

TEST(CpuBatchNorm, SkipLeavesRunningStatsUntouched) {
  Backend& backend = cpu_backend();
  Tensor x = random_tensor({3, 2, 4, 4}, 22);
  Tensor gamma = Tensor::full({2}, 1.0, DType::Float64);
  Tensor beta = Tensor::zeros({2}, DType::Float64);
  Tensor running_mean = Tensor::from_vector<double>({2}, {0.25, -0.75});
  Tensor running_var = Tensor::from_vector<double>({2}, {1.5, 0.125});
  const std::vector<double> mean_before = running_mean.to_vector<double>();
  const std::vector<double> var_before = running_var.to_vector<double>();
  Tensor y = Tensor::empty(x.shape(), DType::Float64);
  Tensor skipped_y = Tensor::empty(x.shape(), DType::Float64);
  Tensor save_mean = Tensor::empty({2}, DType::Float64);
  Tensor save_invstd = Tensor::empty({2}, DType::Float64);
  backend.batch_norm_forward_train(x, gamma, beta, skipped_y, save_mean, save_invstd, running_mean,
                                   running_var, {}, RunningStatsUpdate::Skip);
  EXPECT_EQ(running_mean.to_vector<double>(), mean_before);
  EXPECT_EQ(running_var.to_vector<double>(), var_before);
  // Skip changes nothing else: the output equals an updating pass.
  backend.batch_norm_forward_train(x, gamma, beta, y, save_mean, save_invstd, running_mean,
                                   running_var, {}, RunningStatsUpdate::Update);
  EXPECT_NE(running_mean.to_vector<double>(), mean_before);
  EXPECT_EQ(std::memcmp(y.raw_data(), skipped_y.raw_data(), y.nbytes()), 0);
  // Each channel of a unit-gamma zero-beta output has mean 0 and biased variance ~1.
  const ChannelStats out_stats = naive_stats(y);
  for (std::size_t c = 0; c < 2; ++c) {
    EXPECT_NEAR(out_stats.mean[c], 0.0, 1e-14);
    EXPECT_NEAR(out_stats.biased_var[c], 1.0, 1e-3);
  }
}

TEST(CpuBatchNorm, EvalUsesRunningStatsAndAcceptsTwoDimensionalInput) {
  Backend& backend = cpu_backend();
  Tensor x = Tensor::from_vector<double>({2, 2}, {1.0, 2.0, 3.0, -4.0});
  Tensor gamma = Tensor::from_vector<double>({2}, {2.0, 0.5});
  Tensor beta = Tensor::from_vector<double>({2}, {1.0, -1.0});
  Tensor running_mean = Tensor::from_vector<double>({2}, {0.5, -1.0});
  Tensor running_var = Tensor::from_vector<double>({2}, {4.0, 0.25});
  Tensor y = Tensor::empty({2, 2}, DType::Float64);
  const BatchNormParams params{.epsilon = 1e-5};
  backend.batch_norm_forward_eval(x, gamma, beta, running_mean, running_var, y, params);
  const double invstd0 = 1 / std::sqrt(4.0 + 1e-5), invstd1 = 1 / std::sqrt(0.25 + 1e-5);
  const std::vector<double> expected{(1.0 - 0.5) * invstd0 * 2 + 1, (2.0 + 1.0) * invstd1 * 0.5 - 1,
                                     (3.0 - 0.5) * invstd0 * 2 + 1,
                                     (-4.0 + 1.0) * invstd1 * 0.5 - 1};
  for (std::size_t i = 0; i < 4; ++i) EXPECT_NEAR(y.to_vector<double>()[i], expected[i], 1e-14);
}

TEST(CpuBatchNorm, TrainingNeedsMoreThanOneValuePerChannel) {
  Backend& backend = cpu_backend();
  Tensor x = random_tensor({1, 2}, 1);
  Tensor ones = Tensor::full({2}, 1.0, DType::Float64);
  Tensor y = Tensor::empty({1, 2}, DType::Float64);
  Tensor mean = Tensor::empty({2}, DType::Float64), invstd = Tensor::empty({2}, DType::Float64);
  EXPECT_THROW(backend.batch_norm_forward_train(x, ones, ones, y, mean, invstd, mean, invstd, {},
                                                RunningStatsUpdate::Skip),
               Error);
}

}  // namespace
}  // namespace md::test
