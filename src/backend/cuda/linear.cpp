// Linear layers through cuBLAS. Our tensors are row-major; cuBLAS is column-major, so a
// row-major (R, C) matrix is a column-major (C, R) one and every product is written for the
// transposes:  y = x·Wᵀ      ->  yᵀ (Out×N)  = W_cm(In×Out)ᵀ · x_cm(In×N)
//              grad_x = gy·W ->  grad_xᵀ (In×N) = W_cm(In×Out) · gy_cm(Out×N)
//              grad_W = gyᵀ·x -> grad_Wᵀ (In×Out) = x_cm(In×N) · gy_cm(Out×N)ᵀ
// The bias goes through the per-channel bias ops (an (N, Out) tensor is N×Out×1×1).
// TF32 tensor-core math is used only when the runtime switch allows it. MathMode::Bf16 converts
// the operands to bfloat16 and runs cublasGemmEx with float32 results and accumulation.
#include <deque>

#include "backend/cuda/cuda_backend_impl.h"
#include "backend/cuda/cuda_check.h"
#include "backend/cuda/kernels.h"
#include "core/error.h"

namespace md::cuda {
namespace {

cublasMath_t cublas_math(const Options& options) {
  return options.math == MathMode::Tf32 ? CUBLAS_TF32_TENSOR_OP_MATH : CUBLAS_DEFAULT_MATH;
}

// A column-major operand of a GEMM: float32 as it is, or its bfloat16 copy (MathMode::Bf16).
struct GemmOperand {
  const void* data = nullptr;
  cudaDataType_t type = CUDA_R_32F;
};

// C (m×n, float32) = alpha·op(A)·op(B) + beta·C with float32 accumulation; A and B float32 or
// bfloat16 (both the same type).
void gemm(cublasHandle_t handle, cublasOperation_t op_a, cublasOperation_t op_b, int m, int n,
          int k, const GemmOperand& a, int lda, const GemmOperand& b, int ldb, float beta, float* c,
          int ldc) {
  const float one = 1.0f;
  if (a.type == CUDA_R_32F) {
    MD_CUBLAS_CHECK(cublasSgemm(handle, op_a, op_b, m, n, k, &one,
                                static_cast<const float*>(a.data), lda,
                                static_cast<const float*>(b.data), ldb, &beta, c, ldc));
    return;
  }
  MD_CUBLAS_CHECK(cublasGemmEx(handle, op_a, op_b, m, n, k, &one, a.data, a.type, lda, b.data,
                               b.type, ldb, &beta, c, CUDA_R_32F, ldc, CUBLAS_COMPUTE_32F,
                               CUBLAS_GEMM_DEFAULT));
}

// The operands of one linear call, converted to bfloat16 under MathMode::Bf16; the copies live
// as long as this object.
class GemmOperands {
 public:
  GemmOperands(CachingAllocator& allocator, cudaStream_t stream, const Options& options)
      : allocator_(allocator), stream_(stream), bf16_(options.math == MathMode::Bf16) {}
  GemmOperand operator()(const Tensor& tensor) {
    if (!bf16_) return GemmOperand{tensor.raw_data(), CUDA_R_32F};
    DeviceBuffer& copy = buffers_.emplace_back(
        allocator_, static_cast<std::size_t>(tensor.numel()) * sizeof(std::uint16_t));
    kernels::to_bfloat16(tensor.data<float>(), copy.as<std::uint16_t>(), tensor.numel(), stream_);
    return GemmOperand{copy.data(), CUDA_R_16BF};
  }

 private:
  CachingAllocator& allocator_;
  cudaStream_t stream_;
  bool bf16_;
  std::deque<DeviceBuffer> buffers_;
};

}  // namespace

void CudaBackend::linear_forward(const Tensor& x, const Tensor& weight, const Tensor& bias,
                                 Tensor& y) {
  expect_float32("linear_forward", {&x, &weight, &bias, &y});
  MD_CHECK(x.ndim() == 2 && weight.ndim() == 2 && x.dim(1) == weight.dim(1), "linear_forward: x ",
           x.describe(), " and weight ", weight.describe());
  const std::int64_t batch = x.dim(0);
  const std::int64_t in_features = x.dim(1);
  const std::int64_t out_features = weight.dim(0);
  MD_CHECK(y.shape() == Shape({batch, out_features}), "linear_forward: y ", y.describe(), " for x ",
           x.describe(), " and weight ", weight.describe());
  MD_CHECK(!bias.defined() || bias.numel() == out_features, "linear_forward: bias ",
           bias.describe(), " for weight ", weight.describe());
  if (y.numel() == 0) return;
  if (in_features == 0) {
    fill(y, 0.0);
  } else {
    DeviceGuard guard(device_index_);
    const Options current = options();
    MD_CUBLAS_CHECK(cublasSetMathMode(cublas_.get(), cublas_math(current)));
    GemmOperands operand(*context_.allocator, context_.stream, current);
    gemm(cublas_.get(), CUBLAS_OP_T, CUBLAS_OP_N, to_int(out_features, "linear out_features"),
         to_int(batch, "linear batch"), to_int(in_features, "linear in_features"), operand(weight),
         to_int(in_features, "linear in_features"), operand(x),
         to_int(in_features, "linear in_features"), 0.0f, y.data<float>(),
         to_int(out_features, "linear out_features"));
  }
  if (bias.defined()) add_channel_bias(y, bias);
}

void CudaBackend::linear_backward(const Tensor& x, const Tensor& weight, const Tensor& grad_y,
                                  Tensor& grad_x, Tensor& grad_weight, Tensor& grad_bias,
                                  Write write) {
  expect_float32("linear_backward", {&x, &weight, &grad_y, &grad_x, &grad_weight, &grad_bias});
  MD_CHECK(x.ndim() == 2 && weight.ndim() == 2 && x.dim(1) == weight.dim(1), "linear_backward: x ",
           x.describe(), " and weight ", weight.describe());
  const std::int64_t batch = x.dim(0);
  const std::int64_t in_features = x.dim(1);
  const std::int64_t out_features = weight.dim(0);
  MD_CHECK(grad_y.shape() == Shape({batch, out_features}), "linear_backward: grad_y ",
           grad_y.describe(), " for x ", x.describe(), " and weight ", weight.describe());
  MD_CHECK(!grad_x.defined() || grad_x.shape() == x.shape(), "linear_backward: grad_x ",
           grad_x.describe(), " for x ", x.describe());
  MD_CHECK(!grad_weight.defined() || grad_weight.shape() == weight.shape(),
           "linear_backward: grad_weight ", grad_weight.describe(), " for weight ",
           weight.describe());
  MD_CHECK(!grad_bias.defined() || grad_bias.numel() == out_features, "linear_backward: grad_bias ",
           grad_bias.describe(), " for weight ", weight.describe());
  DeviceGuard guard(device_index_);
  const Options current = options();
  MD_CUBLAS_CHECK(cublasSetMathMode(cublas_.get(), cublas_math(current)));
  GemmOperands operand(*context_.allocator, context_.stream, current);
  const GemmOperand upstream = operand(grad_y);
  const float beta = write_beta(write);
  // With an empty sum (no batch rows or no outputs) cuBLAS leaves C untouched: zero it first.
  const bool empty_sum = batch == 0 || out_features == 0;
  if (grad_x.defined() && grad_x.numel() > 0) {
    if (out_features == 0) {
      if (write == Write::Overwrite) fill(grad_x, 0.0);
    } else {
      gemm(cublas_.get(), CUBLAS_OP_N, CUBLAS_OP_N, to_int(in_features, "linear in_features"),
           to_int(batch, "linear batch"), to_int(out_features, "linear out_features"),
           operand(weight), to_int(in_features, "linear in_features"), upstream,
           to_int(out_features, "linear out_features"), beta, grad_x.data<float>(),
           to_int(in_features, "linear in_features"));
    }
  }
  if (grad_weight.defined() && grad_weight.numel() > 0) {
    if (empty_sum) {
      if (write == Write::Overwrite) fill(grad_weight, 0.0);
    } else {
      gemm(cublas_.get(), CUBLAS_OP_N, CUBLAS_OP_T, to_int(in_features, "linear in_features"),
           to_int(out_features, "linear out_features"), to_int(batch, "linear batch"), operand(x),
           to_int(in_features, "linear in_features"), upstream,
           to_int(out_features, "linear out_features"), beta, grad_weight.data<float>(),
           to_int(in_features, "linear in_features"));
    }
  }
  if (grad_bias.defined()) channel_bias_backward(grad_y, grad_bias, write);
}

}  // namespace md::cuda
