// ReLU and sigmoid on the CPU: elementwise loops over md::math (element_math.h), the same
// per-element functions the CUDA kernels run. Backward ops read the forward output y. Loops run
// over contiguous ranges (parallel_range) so that the compiler vectorizes them.
#include "backend/cpu/cpu_backend.h"
#include "backend/cpu/cpu_common.h"
#include "backend/element_math.h"

namespace md::cpu {
namespace {

// y[i] = function(x[i]) over same-shape tensors.
template <typename Function>
void unary_forward(const char* op, const Tensor& x, Tensor& y, const Function& function) {
  dispatch_float(x.dtype(), op, [&](auto tag) {
    using T = decltype(tag);
    check_tensor(op, "x", x, x.dtype());
    check_tensor(op, "y", y, x.dtype(), x.shape());
    const T* input = x.data<T>();
    T* output = y.data<T>();
    parallel_range(x.numel(), [&](std::int64_t begin, std::int64_t end) {
      for (std::int64_t i = begin; i < end; ++i) output[i] = function(input[i]);
    });
  });
}

// grad_x[i] (+)= gradient(y[i], grad_y[i]).
template <typename Gradient>
void unary_backward(const char* op, const Tensor& y, const Tensor& grad_y, Tensor& grad_x,
                    Write write, const Gradient& gradient) {
  dispatch_float(y.dtype(), op, [&](auto tag) {
    using T = decltype(tag);
    check_tensor(op, "y", y, y.dtype());
    check_tensor(op, "grad_y", grad_y, y.dtype(), y.shape());
    check_tensor(op, "grad_x", grad_x, y.dtype(), y.shape());
    const T* output = y.data<T>();
    const T* upstream = grad_y.data<T>();
    T* downstream = grad_x.data<T>();
    parallel_range(y.numel(), [&](std::int64_t begin, std::int64_t end) {
      if (write == Write::Accumulate) {
        for (std::int64_t i = begin; i < end; ++i) {
          downstream[i] += gradient(output[i], upstream[i]);
        }
      } else {
        for (std::int64_t i = begin; i < end; ++i) downstream[i] = gradient(output[i], upstream[i]);
      }
    });
  });
}

}  // namespace

void CpuBackend::relu_forward(const Tensor& x, Tensor& y) {
  unary_forward("relu_forward", x, y, [](auto value) { return math::relu(value); });
}

void CpuBackend::relu_backward(const Tensor& y, const Tensor& grad_y, Tensor& grad_x, Write write) {
  unary_backward("relu_backward", y, grad_y, grad_x, write,
                 [](auto output, auto grad) { return math::relu_grad(output, grad); });
}

void CpuBackend::sigmoid_forward(const Tensor& x, Tensor& y) {
  unary_forward("sigmoid_forward", x, y, [](auto value) { return math::sigmoid(value); });
}

void CpuBackend::sigmoid_backward(const Tensor& y, const Tensor& grad_y, Tensor& grad_x,
                                  Write write) {
  unary_backward("sigmoid_backward", y, grad_y, grad_x, write,
                 [](auto output, auto grad) { return math::sigmoid_grad(output, grad); });
}

}  // namespace md::cpu
