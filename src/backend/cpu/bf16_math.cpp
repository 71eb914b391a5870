// MathPrecision::Bf16 on the CPU (backend.h): the convolution and linear ops round their float32
// operands to bfloat16 (round to nearest even, math::round_to_bfloat16, the function the CUDA
// conversion kernels use), compute in float32 on the rounded values (a product of two bfloat16
// values is exact in float32, so only the order of the float32 sums differs from the GPU), and
// round a convolution's result to bfloat16, as cuDNN writes bf16 tensors. A gradient written in
// Accumulate mode is rounded before it is added. Other precisions and float64 run the exact ops.
#include "backend/cpu/cpu_backend.h"
#include "backend/cpu/cpu_common.h"
#include "backend/element_math.h"

namespace md::cpu {
namespace {

bool rounds_to_bf16(const Tensor& operand) {
  return operand.defined() && operand.dtype() == DType::Float32 &&
         backend::compute_options().precision == backend::MathPrecision::Bf16;
}

// A copy of a float32 tensor with every value rounded to bfloat16.
Tensor rounded(const Tensor& tensor) {
  Tensor out = Tensor::empty(tensor.shape(), tensor.dtype(), tensor.device());
  const float* in = tensor.data<float>();
  float* values = out.data<float>();
  parallel_range(tensor.numel(), [&](std::int64_t begin, std::int64_t end) {
    for (std::int64_t i = begin; i < end; ++i) values[i] = math::round_to_bfloat16(in[i]);
  });
  return out;
}

void round_in_place(Tensor& tensor) {
  float* values = tensor.data<float>();
  parallel_range(tensor.numel(), [&](std::int64_t begin, std::int64_t end) {
    for (std::int64_t i = begin; i < end; ++i) values[i] = math::round_to_bfloat16(values[i]);
  });
}

// Runs `compute(target, Write::Overwrite)` and writes its result, rounded to bfloat16, into
// `out` with `write`: in place for Overwrite, through a temporary for Accumulate.
template <typename Compute>
void write_rounded(Tensor& out, Write write, const Compute& compute) {
  if (!out.defined()) return;
  if (write == Write::Overwrite) {
    compute(out);
    round_in_place(out);
    return;
  }
  Tensor result = Tensor::empty(out.shape(), out.dtype(), out.device());
  compute(result);
  const float* in = result.data<float>();
  float* values = out.data<float>();
  parallel_range(out.numel(), [&](std::int64_t begin, std::int64_t end) {
    for (std::int64_t i = begin; i < end; ++i) values[i] += math::round_to_bfloat16(in[i]);
  });
}

}  // namespace

void CpuBackend::conv2d_forward(const Tensor& x, const Tensor& weight, Tensor& y,
                                const Conv2dParams& params) {
  if (!rounds_to_bf16(x)) {
    conv2d_forward_exact(x, weight, y, params);
    return;
  }
  conv2d_forward_exact(rounded(x), rounded(weight), y, params);
  round_in_place(y);
}

void CpuBackend::conv2d_backward_data(const Tensor& grad_y, const Tensor& weight, Tensor& grad_x,
                                      const Conv2dParams& params, Write write) {
  if (!rounds_to_bf16(grad_y)) {
    conv2d_backward_data_exact(grad_y, weight, grad_x, params, write);
    return;
  }
  const Tensor grad_y_bf16 = rounded(grad_y);
  const Tensor weight_bf16 = rounded(weight);
  write_rounded(grad_x, write, [&](Tensor& target) {
    conv2d_backward_data_exact(grad_y_bf16, weight_bf16, target, params, Write::Overwrite);
  });
}

void CpuBackend::conv2d_backward_filter(const Tensor& x, const Tensor& grad_y, Tensor& grad_weight,
                                        const Conv2dParams& params, Write write) {
  if (!rounds_to_bf16(x)) {
    conv2d_backward_filter_exact(x, grad_y, grad_weight, params, write);
    return;
  }
  const Tensor x_bf16 = rounded(x);
  const Tensor grad_y_bf16 = rounded(grad_y);
  write_rounded(grad_weight, write, [&](Tensor& target) {
    conv2d_backward_filter_exact(x_bf16, grad_y_bf16, target, params, Write::Overwrite);
  });
}

void CpuBackend::linear_forward(const Tensor& x, const Tensor& weight, const Tensor& bias,
                                Tensor& y) {
  if (!rounds_to_bf16(x)) {
    linear_forward_exact(x, weight, bias, y);
    return;
  }
  linear_forward_exact(rounded(x), rounded(weight), bias, y);
}

void CpuBackend::linear_backward(const Tensor& x, const Tensor& weight, const Tensor& grad_y,
                                 Tensor& grad_x, Tensor& grad_weight, Tensor& grad_bias,
                                 Write write) {
  if (!rounds_to_bf16(x)) {
    linear_backward_exact(x, weight, grad_y, grad_x, grad_weight, grad_bias, write);
    return;
  }
  // The products from rounded operands, float32 results; the bias gradient from grad_y as is.
  Tensor no_bias;
  linear_backward_exact(rounded(x), rounded(weight), rounded(grad_y), grad_x, grad_weight, no_bias,
                        write);
  if (grad_bias.defined()) {
    Tensor no_x, no_weight;
    linear_backward_exact(x, weight, grad_y, no_x, no_weight, grad_bias, write);
  }
}

}  // namespace md::cpu
