// Fused optimizer steps against PyTorch's algorithms written out step by step (torch.optim.SGD
// with its "buffer = gradient on the first step" rule, torch.optim.Adam), for three steps.
#include <gtest/gtest.h>

#include <cmath>

#include "cpu_test_util.h"

namespace md::test {
namespace {

const std::vector<std::vector<double>> kGradients = {
    {0.5, -1.0, 0.25, 2.0}, {-0.3, 0.7, 1.5, -0.2}, {0.1, 0.1, -2.0, 0.9}};
const std::vector<double> kStart = {1.0, -0.5, 0.2, 3.0};

// torch.optim.SGD.step, dampening 0
std::vector<double> pytorch_sgd(const SgdParams& params) {
  std::vector<double> param = kStart;
  std::vector<double> buffer;
  for (const auto& grad : kGradients) {
    std::vector<double> d_p(4);
    for (std::size_t i = 0; i < 4; ++i) d_p[i] = grad[i] + params.weight_decay * param[i];
    if (params.momentum != 0) {
      if (buffer.empty()) {
        buffer = d_p;
      } else {
        for (std::size_t i = 0; i < 4; ++i) buffer[i] = params.momentum * buffer[i] + d_p[i];
      }
      for (std::size_t i = 0; i < 4; ++i) {
        d_p[i] = params.nesterov ? d_p[i] + params.momentum * buffer[i] : buffer[i];
      }
    }
    for (std::size_t i = 0; i < 4; ++i) param[i] -= params.learning_rate * d_p[i];
  }
  return param;
}

// torch.optim.Adam.step (amsgrad off, L2 weight decay)
std::vector<double> pytorch_adam(const AdamParams& params) {
  std::vector<double> param = kStart, m(4, 0.0), v(4, 0.0);
  int step = 0;
  for (const auto& grad : kGradients) {
    ++step;
    const double bias_correction1 = 1 - std::pow(params.beta1, step);
    const double bias_correction2 = 1 - std::pow(params.beta2, step);
    for (std::size_t i = 0; i < 4; ++i) {
      const double g = grad[i] + params.weight_decay * param[i];
      m[i] = params.beta1 * m[i] + (1 - params.beta1) * g;
      v[i] = params.beta2 * v[i] + (1 - params.beta2) * g * g;
      const double denom = std::sqrt(v[i]) / std::sqrt(bias_correction2) + params.epsilon;
      param[i] -= params.learning_rate / bias_correction1 * m[i] / denom;
    }
  }
  return param;
}

TEST(CpuOptimizer, SgdMatchesPyTorchOverThreeSteps) {
  const std::vector<SgdParams> settings = {
      {.learning_rate = 0.1, .momentum = 0.0, .weight_decay = 0.0, .nesterov = false},
      {.learning_rate = 0.1, .momentum = 0.9, .weight_decay = 0.0, .nesterov = false},
      {.learning_rate = 0.05, .momentum = 0.9, .weight_decay = 5e-4, .nesterov = false},
      {.learning_rate = 0.05, .momentum = 0.8, .weight_decay = 1e-2, .nesterov = true},
  };
  for (DType dtype : {DType::Float64, DType::Float32}) {
    for (const SgdParams& params : settings) {
      Tensor param = Tensor::from_vector<double>({4}, kStart).to_dtype(dtype);
      Tensor buffer = Tensor::zeros({4}, dtype);
      for (const auto& grad : kGradients) {
        Tensor gradient = Tensor::from_vector<double>({4}, grad).to_dtype(dtype);
        cpu_backend().sgd_update(param, gradient, buffer, params);
      }
      const std::vector<double> expected = pytorch_sgd(params);
      const std::vector<double> got = as_doubles(param);
      const double tolerance = dtype == DType::Float64 ? 1e-14 : 2e-6;
      for (std::size_t i = 0; i < 4; ++i) {
        EXPECT_NEAR(got[i], expected[i], tolerance)
            << dtype_name(dtype) << " momentum " << params.momentum << " nesterov "
            << params.nesterov << " weight decay " << params.weight_decay << " element " << i;
      }
    }
  }
}

TEST(CpuOptimizer, AdamMatchesPyTorchOverThreeSteps) {
  const std::vector<AdamParams> settings = {
      {.learning_rate = 1e-3},
      {.learning_rate = 0.01, .beta1 = 0.8, .beta2 = 0.99, .epsilon = 1e-6, .weight_decay = 0.1},
  };
  for (DType dtype : {DType::Float64, DType::Float32}) {
    for (AdamParams params : settings) {
      Tensor param = Tensor::from_vector<double>({4}, kStart).to_dtype(dtype);
      Tensor exp_avg = Tensor::zeros({4}, dtype);
      Tensor exp_avg_sq = Tensor::zeros({4}, dtype);
      params.step = 0;
      for (const auto& grad : kGradients) {
        ++params.step;
        Tensor gradient = Tensor::from_vector<double>({4}, grad).to_dtype(dtype);
        cpu_backend().adam_update(param, gradient, exp_avg, exp_avg_sq, params);
      }
      const std::vector<double> expected = pytorch_adam(params);
      const std::vector<double> got = as_doubles(param);
      const double tolerance = dtype == DType::Float64 ? 1e-14 : 2e-6;
      for (std::size_t i = 0; i < 4; ++i) {
        EXPECT_NEAR(got[i], expected[i], tolerance) << dtype_name(dtype) << " element " << i;
      }
    }
  }
}

}  // namespace
}  // namespace md::test
