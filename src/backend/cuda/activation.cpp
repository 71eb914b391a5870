// ReLU and sigmoid: element_math.h's functions through the kernels of activation.cu.
#include "backend/cuda/cuda_backend_impl.h"
#include "backend/cuda/kernels.h"
#include "core/error.h"

namespace md::cuda {
namespace {

void check_same_shapes(const char* op, std::initializer_list<const Tensor*> tensors) {
  const Tensor& first = **tensors.begin();
  for (const Tensor* tensor : tensors) {
    MD_CHECK(tensor->shape() == first.shape(), op, ": shapes differ: ", tensor->describe(), " vs ",
             first.describe());
  }
}

}  // namespace

void CudaBackend::relu_forward(const Tensor& x, Tensor& y) {
  expect_float32("relu_forward", {&x, &y});
  check_same_shapes("relu_forward", {&x, &y});
  DeviceGuard guard(device_index_);
  kernels::relu_forward(x.data<float>(), y.data<float>(), x.numel(), context_.stream);
}

void CudaBackend::relu_backward(const Tensor& y, const Tensor& grad_y, Tensor& grad_x,
                                Write write) {
  expect_float32("relu_backward", {&y, &grad_y, &grad_x});
  check_same_shapes("relu_backward", {&y, &grad_y, &grad_x});
  DeviceGuard guard(device_index_);
  kernels::relu_backward(y.data<float>(), grad_y.data<float>(), grad_x.data<float>(), y.numel(),
                         write_beta(write), context_.stream);
}

void CudaBackend::sigmoid_forward(const Tensor& x, Tensor& y) {
  expect_float32("sigmoid_forward", {&x, &y});
  check_same_shapes("sigmoid_forward", {&x, &y});
  DeviceGuard guard(device_index_);
  kernels::sigmoid_forward(x.data<float>(), y.data<float>(), x.numel(), context_.stream);
}

void CudaBackend::sigmoid_backward(const Tensor& y, const Tensor& grad_y, Tensor& grad_x,
                                   Write write) {
  expect_float32("sigmoid_backward", {&y, &grad_y, &grad_x});
  check_same_shapes("sigmoid_backward", {&y, &grad_y, &grad_x});
  DeviceGuard guard(device_index_);
  kernels::sigmoid_backward(y.data<float>(), grad_y.data<float>(), grad_x.data<float>(), y.numel(),
                            write_beta(write), context_.stream);
}

}  // namespace md::cuda
