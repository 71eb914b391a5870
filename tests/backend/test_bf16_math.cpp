// The bf16 compute precision on the CPU backend (backend::MathPrecision::Bf16): the rounding
// itself against PyTorch's float32 -> bfloat16 conversion (values printed by torch 1.13), and
// every convolution and linear op against float64 sums of the rounded operands written here,
// rounded again where the op's result is a bfloat16 tensor on the GPU. Float32 results of the
// same ops differ from them (the precision is not a no-op), float64 tensors are never rounded,
// and PrecisionScope restores what it found.
#include <gtest/gtest.h>

#include <cmath>
#include <limits>

#include "backend/element_math.h"
#include "cpu_test_util.h"

namespace md::test {
namespace {

TEST(Bfloat16Rounding, MatchesPyTorchsConversion) {
  struct Case {
    float value;
    float expected;
  };
  // torch.tensor([v]).bfloat16().float(): round to nearest, ties to even.
  const Case cases[] = {{0.1f, 0.10009765625f},
                        {1.00390625f, 1.0f},       // a tie: to the even 1.0
                        {1.01171875f, 1.015625f},  // a tie: to the even 1 + 2^-6
                        {-0.0024999999441206455f, -0.00250244140625f},
                        {3.4028234663852886e38f, std::numeric_limits<float>::infinity()},
                        {9.99994610111476e-41f, 9.183549615799121e-41f},  // subnormal
                        {65504.0f, 65536.0f},
                        {1.0f / 3.0f, 0.333984375f},
                        {-0.0f, -0.0f}};
  for (const Case& c : cases) {
    EXPECT_EQ(math::round_to_bfloat16(c.value), c.expected) << c.value;
  }
  EXPECT_TRUE(std::isnan(math::round_to_bfloat16(std::numeric_limits<float>::quiet_NaN())));
  EXPECT_EQ(math::round_to_bfloat16(-std::numeric_limits<float>::infinity()),
            -std::numeric_limits<float>::infinity());
  // A NaN whose payload sits in the low 16 bits only stays a NaN (not infinity).
  EXPECT_TRUE(std::isnan(math::round_to_bfloat16(math::bits_float(0x7f800001u))));
}

Tensor rounded_copy(const Tensor& tensor) {
  Tensor out = tensor.clone();
  float* values = out.data<float>();
  for (std::int64_t i = 0; i < out.numel(); ++i) values[i] = math::round_to_bfloat16(values[i]);
  return out;
}

// |actual − expected| within `ulps` bfloat16 steps of |expected| (plus a floor for values near
// 0), element by element: the float32 sums of the op and the float64 sums here may round to
// neighbouring bfloat16 values.
void expect_within_bf16_steps(const Tensor& actual, const Tensor& expected, double ulps,
                              const char* what) {
  const std::vector<double> a = as_doubles(actual);
  const std::vector<double> e = as_doubles(expected);
  ASSERT_EQ(a.size(), e.size()) << what;
  double scale = 0.0;
  for (double value : e) scale = std::max(scale, std::abs(value));
  int failures = 0;
  for (std::size_t i = 0; i < a.size(); ++i) {
    const double allowed = ulps * std::ldexp(std::max(std::abs(e[i]), 1e-3 * scale), -7);
    if (std::abs(a[i] - e[i]) > allowed && ++failures <= 5) {
      ADD_FAILURE() << what << "[" << i << "] = " << a[i] << ", expected " << e[i];
    }
  }
}

// The float32 values of t as a float64 tensor.
Tensor to_float64(const Tensor& t) {
  return t.to_dtype(DType::Float64);
}

Tensor rounded_result(const Tensor& float64_result) {
  return rounded_copy(float64_result.to_dtype(DType::Float32));
}

TEST(Bf16Math, ConvolutionsAreSumsOfRoundedOperandsRoundedToBfloat16) {
  Backend& b = cpu_backend();
  struct Setup {
    const char* name;
    Shape x, weight;
    Conv2dParams params;
  };
  for (const Setup& setup :
       {Setup{"3x3 winograd", {2, 4, 8, 8}, {6, 4, 3, 3}, {.padding = 1}},
        Setup{"strided gemm", {2, 3, 9, 7}, {5, 3, 3, 3}, {.stride = 2, .padding = 1}},
        Setup{"depthwise", {2, 4, 6, 6}, {4, 1, 3, 3}, {.padding = 1, .groups = 4}}}) {
    SCOPED_TRACE(setup.name);
    const Tensor x = random_tensor(setup.x, 1, -1, 1, DType::Float32);
    const Tensor weight = random_tensor(setup.weight, 2, -1, 1, DType::Float32);
    const Shape y_shape = conv2d_output_shape(setup.x, setup.weight, setup.params);
    const Tensor grad_y = random_tensor(y_shape, 3, -1, 1, DType::Float32);
    const Tensor x_bf16 = rounded_copy(x), weight_bf16 = rounded_copy(weight),
                 grad_y_bf16 = rounded_copy(grad_y);

    Tensor y_fp32 = Tensor::empty(y_shape);
    b.conv2d_forward(x, weight, y_fp32, setup.params);
    Tensor y = Tensor::empty(y_shape);
    Tensor grad_x = Tensor::empty(setup.x);
    Tensor grad_weight_start = random_tensor(setup.weight, 4, -1, 1, DType::Float32);
    Tensor grad_weight = grad_weight_start.clone();
    {
      backend::PrecisionScope bf16(backend::MathPrecision::Bf16);
      b.conv2d_forward(x, weight, y, setup.params);
      b.conv2d_backward_data(grad_y, weight, grad_x, setup.params, Write::Overwrite);
      b.conv2d_backward_filter(x, grad_y, grad_weight, setup.params, Write::Accumulate);
    }
    EXPECT_EQ(backend::compute_options().precision, backend::MathPrecision::Fp32);

    // References: float64 sums of the rounded operands (the CPU backend's float64 path, whose
    // operands are never rounded), rounded to bfloat16.
    Tensor y_ref = Tensor::empty(y_shape, DType::Float64);
    b.conv2d_forward(to_float64(x_bf16), to_float64(weight_bf16), y_ref, setup.params);
    expect_within_bf16_steps(y, rounded_result(y_ref), 1.0, "y");
    EXPECT_EQ(as_doubles(y), as_doubles(rounded_copy(y)))
        << "the forward result is not a bfloat16 value";
    EXPECT_GT(relative_norm_error(y, y_fp32), 1e-4) << "bf16 computed what fp32 computes";

    Tensor grad_x_ref = Tensor::empty(setup.x, DType::Float64);
    b.conv2d_backward_data(to_float64(grad_y_bf16), to_float64(weight_bf16), grad_x_ref,
                           setup.params, Write::Overwrite);
    expect_within_bf16_steps(grad_x, rounded_result(grad_x_ref), 1.0, "grad_x");

    Tensor grad_weight_ref = Tensor::empty(setup.weight, DType::Float64);
    b.conv2d_backward_filter(to_float64(x_bf16), to_float64(grad_y_bf16), grad_weight_ref,
                             setup.params, Write::Overwrite);
    // Accumulate adds the rounded result to what was there, in float32.
    Tensor expected_weight = rounded_result(grad_weight_ref);
    float* expected = expected_weight.data<float>();
    const float* start = grad_weight_start.data<float>();
    for (std::int64_t i = 0; i < expected_weight.numel(); ++i) expected[i] += start[i];
    expect_within_bf16_steps(grad_weight, expected_weight, 2.0, "grad_weight (accumulate)");
  }
}

TEST(Bf16Math, LinearRoundsItsOperandsButNotItsResults) {
  Backend& b = cpu_backend();
  const Tensor x = random_tensor({5, 7}, 5, -1, 1, DType::Float32);
  const Tensor weight = random_tensor({4, 7}, 6, -1, 1, DType::Float32);
  const Tensor bias = random_tensor({4}, 7, -1, 1, DType::Float32);
  const Tensor grad_y = random_tensor({5, 4}, 8, -1, 1, DType::Float32);
  Tensor y = Tensor::empty({5, 4});
  Tensor grad_x = Tensor::empty({5, 7}), grad_weight = Tensor::empty({4, 7});
  Tensor grad_bias = Tensor::empty({4});
  {
    backend::PrecisionScope bf16(backend::MathPrecision::Bf16);
    b.linear_forward(x, weight, bias, y);
    b.linear_backward(x, weight, grad_y, grad_x, grad_weight, grad_bias, Write::Overwrite);
  }
  const Tensor x64 = to_float64(rounded_copy(x)), weight64 = to_float64(rounded_copy(weight));
  const Tensor grad_y64 = to_float64(rounded_copy(grad_y));
  Tensor y_ref = Tensor::empty({5, 4}, DType::Float64);
  b.linear_forward(x64, weight64, to_float64(bias), y_ref);
  EXPECT_LT(relative_norm_error(y, y_ref), 1e-6);
  Tensor grad_x_ref = Tensor::empty({5, 7}, DType::Float64);
  Tensor grad_weight_ref = Tensor::empty({4, 7}, DType::Float64), no_bias;
  b.linear_backward(x64, weight64, grad_y64, grad_x_ref, grad_weight_ref, no_bias,
                    Write::Overwrite);
  EXPECT_LT(relative_norm_error(grad_x, grad_x_ref), 1e-6);
  EXPECT_LT(relative_norm_error(grad_weight, grad_weight_ref), 1e-6);
  // The bias gradient sums grad_y as it is.
  Tensor grad_bias_ref = Tensor::empty({4}, DType::Float64), none_x, none_w;
  b.linear_backward(to_float64(x), to_float64(weight), to_float64(grad_y), none_x, none_w,
                    grad_bias_ref, Write::Overwrite);
  EXPECT_LT(relative_norm_error(grad_bias, grad_bias_ref), 1e-6);
}

TEST(Bf16Math, Float64IsNeverRounded) {
  Backend& b = cpu_backend();
  const Tensor x = random_tensor({2, 3, 5, 5}, 9);
  const Tensor weight = random_tensor({4, 3, 3, 3}, 10);
  const Conv2dParams params{.padding = 1};
  Tensor exact = Tensor::empty({2, 4, 5, 5}, DType::Float64);
  b.conv2d_forward(x, weight, exact, params);
  Tensor under_bf16 = Tensor::empty({2, 4, 5, 5}, DType::Float64);
  {
    backend::PrecisionScope bf16(backend::MathPrecision::Bf16);
    b.conv2d_forward(x, weight, under_bf16, params);
  }
  EXPECT_EQ(as_doubles(under_bf16), as_doubles(exact));
}

}  // namespace
}  // namespace md::test
