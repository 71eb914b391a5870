// The fused batch_norm_add_relu ops equal batch norm, add and ReLU run one after the other, bit
// for bit, in float32 and float64: forward in training mode (with the saved and running
// statistics) and in eval mode, backward with and without a residual, and every gradient
// alone. A grad_residual that aliases grad_x is an error.
#include <gtest/gtest.h>

#include <array>
#include <cstring>

#include "cpu_test_util.h"

namespace md::test {
namespace {

void expect_bit_identical(const Tensor& actual, const Tensor& expected, const char* what) {
  ASSERT_EQ(actual.shape(), expected.shape()) << what;
  ASSERT_EQ(actual.dtype(), expected.dtype()) << what;
  EXPECT_EQ(std::memcmp(actual.raw_data(), expected.raw_data(), actual.nbytes()), 0)
      << what << " differs from the unfused ops";
}

struct Inputs {
  Tensor x, gamma, beta, residual, grad_y, running_mean, running_var;
};

Inputs inputs(DType dtype, const Shape& shape) {
  const std::int64_t channels = shape[1];
  return {random_tensor(shape, 1, -2, 3, dtype),
          random_tensor({channels}, 2, 0.5, 1.5, dtype),
          random_tensor({channels}, 3, -0.5, 0.5, dtype),
          random_tensor(shape, 4, -1, 1, dtype),
          random_tensor(shape, 5, -1, 1, dtype),
          random_tensor({channels}, 6, -0.2, 0.2, dtype),
          random_tensor({channels}, 7, 0.5, 2.0, dtype)};
}

// relu(normalized + residual) (relu(normalized) without a residual) by the unfused ops.
Tensor unfused_epilogue(const Tensor& normalized, const Tensor& residual) {
  Backend& b = cpu_backend();
  Tensor summed = normalized;
  if (residual.defined()) {
    summed = Tensor::empty(normalized.shape(), normalized.dtype());
    b.add(normalized, residual, summed);
  }
  Tensor y = Tensor::empty(normalized.shape(), normalized.dtype());
  b.relu_forward(summed, y);
  return y;
}

class FusedBatchNorm : public ::testing::TestWithParam<DType> {};

TEST_P(FusedBatchNorm, TrainingForwardAndBackwardEqualTheUnfusedOps) {
  Backend& b = cpu_backend();
  const DType dtype = GetParam();
  for (const Shape& shape : {Shape{4, 3, 5, 6}, Shape{6, 5}, Shape{2, 16, 4, 4}}) {
    for (bool with_residual : {true, false}) {
      SCOPED_TRACE(shape_str(shape) + (with_residual ? " with residual" : " without residual"));
      const Inputs in = inputs(dtype, shape);
      const std::int64_t channels = shape[1];
      const Tensor residual = with_residual ? in.residual : Tensor();
      const auto channel = [&] { return Tensor::empty({channels}, dtype); };

      // Unfused: batch norm, add, relu; backward: relu, add (a copy), batch norm.
      Tensor mean = channel(), invstd = channel();
      Tensor running_mean = in.running_mean.clone(), running_var = in.running_var.clone();
      Tensor normalized = Tensor::empty(shape, dtype);
      b.batch_norm_forward_train(in.x, in.gamma, in.beta, normalized, mean, invstd, running_mean,
                                 running_var, {}, RunningStatsUpdate::Update);
      const Tensor y = unfused_epilogue(normalized, residual);
      Tensor masked = Tensor::empty(shape, dtype);
      b.relu_backward(y, in.grad_y, masked, Write::Overwrite);
      Tensor grad_x = Tensor::empty(shape, dtype), grad_gamma = channel(), grad_beta = channel();
      b.batch_norm_backward(in.x, masked, in.gamma, mean, invstd, grad_x, grad_gamma, grad_beta,
                            Write::Overwrite);

      // Fused.
      Tensor fused_mean = channel(), fused_invstd = channel();
      Tensor fused_running_mean = in.running_mean.clone();
      Tensor fused_running_var = in.running_var.clone();
      Tensor fused_y = Tensor::empty(shape, dtype);
      b.batch_norm_add_relu_forward_train(in.x, in.gamma, in.beta, residual, fused_y, fused_mean,
                                          fused_invstd, fused_running_mean, fused_running_var, {},
                                          RunningStatsUpdate::Update);
      expect_bit_identical(fused_y, y, "y");
      expect_bit_identical(fused_mean, mean, "save_mean");
      expect_bit_identical(fused_invstd, invstd, "save_invstd");
      expect_bit_identical(fused_running_mean, running_mean, "running_mean");
      expect_bit_identical(fused_running_var, running_var, "running_var");

      Tensor fused_grad_x = Tensor::full(shape, 7.0, dtype);  // overwritten, never read
      Tensor fused_grad_gamma = channel(), fused_grad_beta = channel();
      Tensor fused_grad_residual = with_residual ? Tensor::full(shape, 7.0, dtype) : Tensor();
      b.batch_norm_add_relu_backward(in.x, fused_y, in.grad_y, in.gamma, fused_mean, fused_invstd,
                                     fused_grad_x, fused_grad_gamma, fused_grad_beta,
                                     fused_grad_residual, Write::Overwrite);
      expect_bit_identical(fused_grad_x, grad_x, "grad_x");
      expect_bit_identical(fused_grad_gamma, grad_gamma, "grad_gamma");
      expect_bit_identical(fused_grad_beta, grad_beta, "grad_beta");
      if (with_residual) expect_bit_identical(fused_grad_residual, masked, "grad_residual");

      // Each gradient alone is the same as with all of them.
      Tensor none;
      Tensor only_residual = Tensor::empty(shape, dtype);
      b.batch_norm_add_relu_backward(in.x, fused_y, in.grad_y, in.gamma, fused_mean, fused_invstd,
                                     none, none, none, only_residual, Write::Overwrite);
      expect_bit_identical(only_residual, masked, "grad_residual alone");
      Tensor only_x = Tensor::empty(shape, dtype);
      b.batch_norm_add_relu_backward(in.x, fused_y, in.grad_y, in.gamma, fused_mean, fused_invstd,
                                     only_x, none, none, none, Write::Overwrite);
      expect_bit_identical(only_x, grad_x, "grad_x alone");
    }
  }
}

TEST_P(FusedBatchNorm, EvalForwardEqualsTheUnfusedOps) {
  Backend& b = cpu_backend();
  const DType dtype = GetParam();
  const Shape shape{3, 4, 5, 5};
  const Inputs in = inputs(dtype, shape);
  for (bool with_residual : {true, false}) {
    SCOPED_TRACE(with_residual ? "with residual" : "without residual");
    const Tensor residual = with_residual ? in.residual : Tensor();
    Tensor normalized = Tensor::empty(shape, dtype);
    b.batch_norm_forward_eval(in.x, in.gamma, in.beta, in.running_mean, in.running_var, normalized,
                              {});
    const Tensor y = unfused_epilogue(normalized, residual);
    Tensor fused_y = Tensor::empty(shape, dtype);
    b.batch_norm_add_relu_forward_eval(in.x, in.gamma, in.beta, residual, in.running_mean,
                                       in.running_var, fused_y, {});
    expect_bit_identical(fused_y, y, "eval y");
  }
}

INSTANTIATE_TEST_SUITE_P(Dtypes, FusedBatchNorm, ::testing::Values(DType::Float32, DType::Float64),
                         [](const ::testing::TestParamInfo<DType>& param_info) {
                           return std::string(dtype_name(param_info.param));
                         });

TEST(FusedBatchNormErrors, ResidualOfAnotherShapeAndAliasedGradientsAreErrors) {
  Backend& b = cpu_backend();
  const Inputs in = inputs(DType::Float32, {2, 3, 4, 4});
  Tensor mean = Tensor::empty({3}), invstd = Tensor::empty({3}), none;
  Tensor y = Tensor::empty(in.x.shape());
  const Tensor wrong = Tensor::zeros({2, 3, 4, 5});
  EXPECT_THROW(b.batch_norm_add_relu_forward_train(in.x, in.gamma, in.beta, wrong, y, mean, invstd,
                                                   none, none, {}, RunningStatsUpdate::Skip),
               Error);
  b.batch_norm_add_relu_forward_train(in.x, in.gamma, in.beta, in.residual, y, mean, invstd, none,
                                      none, {}, RunningStatsUpdate::Skip);
  Tensor grad = Tensor::empty(in.x.shape());
  EXPECT_THROW(b.batch_norm_add_relu_backward(in.x, y, in.grad_y, in.gamma, mean, invstd, grad,
                                              none, none, grad, Write::Overwrite),
               Error);
}

}  // namespace
}  // namespace md::test
