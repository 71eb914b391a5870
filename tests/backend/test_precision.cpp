// Float32 results of the CPU backend agree with its float64 results to 1e-5 relative, on every
// op, for the same (float32-representable) inputs.
#include <gtest/gtest.h>

#include <functional>

#include "cpu_test_util.h"

namespace md::test {
namespace {

// The same values in either dtype: drawn in float64, rounded to float32.
Tensor input(const Shape& shape, std::uint64_t seed, DType dtype, double low = -1.0,
             double high = 1.0) {
  return random_tensor(shape, seed, low, high, DType::Float32).to_dtype(dtype);
}

Tensor empty(const Shape& shape, DType dtype) {
  return Tensor::empty(shape, dtype);
}

Tensor scalar_loss(DType dtype) {
  return Tensor::empty({}, dtype);
}

struct PrecisionCase {
  std::string name;
  std::function<Tensor(DType)> run;
};

std::vector<PrecisionCase> precision_cases() {
  Backend& b = cpu_backend();
  const Shape image{3, 4, 9, 7};
  std::vector<PrecisionCase> cases;
  auto conv = [&b, image](Shape weight_shape, Conv2dParams params) {
    return [&b, image, weight_shape, params](DType dtype) {
      Tensor y = empty(conv2d_output_shape(image, weight_shape, params), dtype);
      b.conv2d_forward(input(image, 1, dtype), input(weight_shape, 2, dtype), y, params);
      return y;
    };
  };
  cases.push_back({"conv2d", conv({6, 2, 3, 3}, {.stride = 2, .padding = 1, .groups = 2})});
  cases.push_back(
      {"conv2d depthwise", conv({4, 1, 3, 3}, {.padding = 2, .dilation = 2, .groups = 4})});
  cases.push_back({"conv2d_backward_data", [&b, image](DType dtype) {
                     const Conv2dParams params{.stride = 1, .padding = 1};
                     Tensor grad_x = empty(image, dtype);
                     b.conv2d_backward_data(input({3, 5, 9, 7}, 3, dtype),
                                            input({5, 4, 3, 3}, 4, dtype), grad_x, params,
                                            Write::Overwrite);
                     return grad_x;
                   }});
  cases.push_back({"conv2d_backward_filter", [&b, image](DType dtype) {
                     const Conv2dParams params{.stride = 1, .padding = 1};
                     Tensor grad_weight = empty({5, 4, 3, 3}, dtype);
                     b.conv2d_backward_filter(input(image, 5, dtype), input({3, 5, 9, 7}, 6, dtype),
                                              grad_weight, params, Write::Overwrite);
                     return grad_weight;
                   }});
  cases.push_back({"add_channel_bias", [&b, image](DType dtype) {
                     Tensor y = input(image, 7, dtype);
                     b.add_channel_bias(y, input({4}, 8, dtype));
                     return y;
                   }});
  cases.push_back({"linear", [&b](DType dtype) {
                     Tensor y = empty({5, 3}, dtype);
                     b.linear_forward(input({5, 20}, 9, dtype), input({3, 20}, 10, dtype),
                                      input({3}, 11, dtype), y);
                     return y;
                   }});
  cases.push_back(
      {"batch_norm_forward_train", [&b, image](DType dtype) {
         Tensor y = empty(image, dtype), mean = empty({4}, dtype), invstd = empty({4}, dtype);
         Tensor running_mean = Tensor::zeros({4}, dtype);
         Tensor running_var = Tensor::full({4}, 1.0, dtype);
         b.batch_norm_forward_train(input(image, 12, dtype, -2, 3), input({4}, 13, dtype),
                                    input({4}, 14, dtype), y, mean, invstd, running_mean,
                                    running_var, {}, RunningStatsUpdate::Update);
         return y;
       }});
  cases.push_back({"batch_norm_backward", [&b, image](DType dtype) {
                     Tensor x = input(image, 15, dtype, -2, 3), gamma = input({4}, 16, dtype);
                     Tensor y = empty(image, dtype), mean = empty({4}, dtype),
                            invstd = empty({4}, dtype);
                     Tensor unused;
                     b.batch_norm_forward_train(x, gamma, input({4}, 17, dtype), y, mean, invstd,
                                                unused, unused, {}, RunningStatsUpdate::Skip);
                     Tensor grad_x = empty(image, dtype), grad_gamma = empty({4}, dtype);
                     b.batch_norm_backward(x, input(image, 18, dtype), gamma, mean, invstd, grad_x,
                                           grad_gamma, unused, Write::Overwrite);
                     return grad_x;
                   }});
  cases.push_back({"batch_norm_forward_eval", [&b, image](DType dtype) {
                     Tensor y = empty(image, dtype);
                     b.batch_norm_forward_eval(input(image, 19, dtype), input({4}, 20, dtype),
                                               input({4}, 21, dtype), input({4}, 22, dtype),
                                               input({4}, 23, dtype, 0.5, 2.0), y, {});
                     return y;
                   }});
  cases.push_back({"relu", [&b, image](DType dtype) {
                     Tensor y = empty(image, dtype);
                     b.relu_forward(input(image, 24, dtype), y);
                     return y;
                   }});
  cases.push_back({"sigmoid", [&b, image](DType dtype) {
                     Tensor y = empty(image, dtype);
                     b.sigmoid_forward(input(image, 25, dtype, -8, 8), y);
                     return y;
                   }});
  for (PoolKind kind : {PoolKind::Max, PoolKind::Average}) {
    cases.push_back(
        {kind == PoolKind::Max ? "max_pool2d" : "avg_pool2d", [&b, image, kind](DType dtype) {
           const Pool2dParams params{.kernel = 3, .stride = 2, .padding = 1};
           Tensor y = empty(pool2d_output_shape(image, params), dtype);
           b.pool2d_forward(input(image, 26, dtype), y, kind, params);
           return y;
         }});
  }
  cases.push_back({"global_avg_pool", [&b, image](DType dtype) {
                     Tensor y = empty({3, 4}, dtype);
                     b.global_avg_pool_forward(input(image, 27, dtype), y);
                     return y;
                   }});
  for (ResizeMode mode : {ResizeMode::Nearest, ResizeMode::Bilinear}) {
    cases.push_back({mode == ResizeMode::Nearest ? "resize nearest" : "resize bilinear",
                     [&b, image, mode](DType dtype) {
                       Tensor y = empty({3, 4, 13, 5}, dtype);
                       b.resize_forward(input(image, 28, dtype), y, mode);
                       return y;
                     }});
  }
  cases.push_back(
      {"concat_channels", [&b](DType dtype) {
         Tensor y = empty({2, 5, 3}, dtype);
         b.concat_channels({input({2, 2, 3}, 29, dtype), input({2, 3, 3}, 30, dtype)}, y);
         return y;
       }});
  cases.push_back({"softmax", [&b](DType dtype) {
                     Tensor y = empty({6, 10}, dtype);
                     b.softmax_forward(input({6, 10}, 31, dtype, -5, 5), y);
                     return y;
                   }});
  cases.push_back({"log_softmax", [&b](DType dtype) {
                     Tensor y = empty({6, 10}, dtype);
                     b.log_softmax_forward(input({6, 10}, 32, dtype, -5, 5), y);
                     return y;
                   }});
  const Tensor labels = Tensor::from_vector<std::int32_t>({6}, {0, 9, 3, 3, 7, 1});
  for (double smoothing : {0.0, 0.1}) {
    cases.push_back(
        {"cross_entropy smoothing " + std::to_string(smoothing),
         [&b, labels, smoothing](DType dtype) {
           Tensor loss = scalar_loss(dtype);
           b.cross_entropy_forward(input({6, 10}, 33, dtype, -5, 5), labels, loss, smoothing);
           return loss;
         }});
  }
  cases.push_back({"kl_div", [&b](DType dtype) {
                     Tensor loss = scalar_loss(dtype);
                     b.kl_div_forward(input({6, 10}, 34, dtype, -5, 5),
                                      input({6, 10}, 35, dtype, -5, 5), loss, 3.0);
                     return loss;
                   }});
  cases.push_back({"mse", [&b](DType dtype) {
                     Tensor loss = scalar_loss(dtype);
                     b.mse_forward(input({6, 10}, 36, dtype), input({6, 10}, 37, dtype), loss);
                     return loss;
                   }});
  cases.push_back({"add", [&b](DType dtype) {
                     Tensor y = empty({40}, dtype);
                     b.add(input({40}, 38, dtype), input({40}, 39, dtype), y);
                     return y;
                   }});
  cases.push_back({"mul", [&b](DType dtype) {
                     Tensor y = empty({40}, dtype);
                     b.mul(input({40}, 40, dtype), input({40}, 41, dtype), y, Write::Overwrite);
                     return y;
                   }});
  cases.push_back({"axpby", [&b](DType dtype) {
                     Tensor y = input({40}, 42, dtype);
                     b.axpby(0.3, input({40}, 43, dtype), -1.7, y);
                     return y;
                   }});
  return cases;
}

TEST(CpuPrecision, Float32AgreesWithFloat64) {
  for (const PrecisionCase& c : precision_cases()) {
    SCOPED_TRACE(c.name);
    const Tensor single = c.run(DType::Float32);
    const Tensor reference = c.run(DType::Float64);
    ASSERT_EQ(single.dtype(), DType::Float32);
    EXPECT_LT(relative_norm_error(single, reference), 1e-5);
    EXPECT_LT(max_relative_error(single, reference, 1.0), 1e-5);
  }
}

TEST(CpuPrecision, ReductionsOfFloat32AccumulateInDouble) {
  Backend& backend = cpu_backend();
  Tensor values = Tensor::full({1 << 20}, 0.1, DType::Float32);
  const double expected = static_cast<double>(0.1f) * (1 << 20);
  EXPECT_NEAR(backend.sum(values), expected, 1e-9 * expected);
  EXPECT_NEAR(backend.dot(values, values), static_cast<double>(0.1f) * expected, 1e-9 * expected);
}

}  // namespace
}  // namespace md::test
