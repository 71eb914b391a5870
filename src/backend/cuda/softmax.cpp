// Softmax and log-softmax over the last axis through cuDNN (instance mode on a rows×K×1×1
// view; CUDNN_SOFTMAX_ACCURATE subtracts the row maximum, CUDNN_SOFTMAX_LOG gives
// log-probabilities). Backward reads the forward output y, as the interface asks.
#include "backend/cuda/cuda_backend_impl.h"
#include "backend/cuda/cuda_check.h"
#include "core/error.h"

namespace md::cuda {
namespace {

Nchw rows_view(const char* op, const Tensor& x) {
  MD_CHECK(x.ndim() >= 1 && x.dim(-1) > 0, op, ": x ", x.describe(),
           " has no last axis to normalize");
  return Nchw{x.numel() / x.dim(-1), x.dim(-1), 1, 1};
}

}  // namespace

void CudaBackend::softmax_forward_with(const Tensor& x, Tensor& y,
                                       cudnnSoftmaxAlgorithm_t algorithm, const char* op) {
  expect_float32(op, {&x, &y});
  MD_CHECK(y.shape() == x.shape(), op, ": y ", y.describe(), " for x ", x.describe());
  const Nchw view = rows_view(op, x);
  if (x.numel() == 0) return;
  DeviceGuard guard(device_index_);
  const TensorDescriptor descriptor = make_tensor_descriptor(view);
  const float one = 1.0f;
  const float zero = 0.0f;
  MD_CUDNN_CHECK(cudnnSoftmaxForward(cudnn_.get(), algorithm, CUDNN_SOFTMAX_MODE_INSTANCE, &one,
                                     descriptor.get(), x.raw_data(), &zero, descriptor.get(),
                                     y.raw_data()));
}

void CudaBackend::softmax_backward_with(const Tensor& y, const Tensor& grad_y, Tensor& grad_x,
                                        Write write, cudnnSoftmaxAlgorithm_t algorithm,
                                        const char* op) {
  expect_float32(op, {&y, &grad_y, &grad_x});
  MD_CHECK(grad_y.shape() == y.shape() && grad_x.shape() == y.shape(), op, ": grad_y ",
           grad_y.describe(), " and grad_x ", grad_x.describe(), " for y ", y.describe());
  const Nchw view = rows_view(op, y);
  if (y.numel() == 0) return;
  DeviceGuard guard(device_index_);
  const TensorDescriptor descriptor = make_tensor_descriptor(view);
  const float one = 1.0f;
  const float beta = write_beta(write);
  MD_CUDNN_CHECK(cudnnSoftmaxBackward(
      cudnn_.get(), algorithm, CUDNN_SOFTMAX_MODE_INSTANCE, &one, descriptor.get(), y.raw_data(),
      descriptor.get(), grad_y.raw_data(), &beta, descriptor.get(), grad_x.raw_data()));
}

void CudaBackend::softmax_forward(const Tensor& x, Tensor& y) {
  softmax_forward_with(x, y, CUDNN_SOFTMAX_ACCURATE, "softmax_forward");
}

void CudaBackend::softmax_backward(const Tensor& y, const Tensor& grad_y, Tensor& grad_x,
                                   Write write) {
  softmax_backward_with(y, grad_y, grad_x, write, CUDNN_SOFTMAX_ACCURATE, "softmax_backward");
}

void CudaBackend::log_softmax_forward(const Tensor& x, Tensor& y) {
  softmax_forward_with(x, y, CUDNN_SOFTMAX_LOG, "log_softmax_forward");
}

void CudaBackend::log_softmax_backward(const Tensor& y, const Tensor& grad_y, Tensor& grad_x,
                                       Write write) {
  softmax_backward_with(y, grad_y, grad_x, write, CUDNN_SOFTMAX_LOG, "log_softmax_backward");
}

}  // namespace md::cuda
