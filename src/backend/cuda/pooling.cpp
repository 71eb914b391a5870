// Max and average pooling through cuDNN (average counts padded zeros, PyTorch's
// count_include_pad=True; max pooling propagates NaN and ignores padding), and global average
// pooling through the kernels of pooling.cu. In deterministic mode max-pool backward uses
// cuDNN's deterministic variant.
#include "backend/cuda/cuda_backend_impl.h"
#include "backend/cuda/cuda_check.h"
#include "backend/cuda/kernels.h"
#include "core/error.h"

namespace md::cuda {
namespace {

void check_pool_shapes(const char* op, const Shape& x, const Shape& y, const Pool2dParams& params) {
  MD_CHECK(x.size() == 4, op, ": x must be (N, C, H, W), got ", shape_str(x));
  const Shape expected = pool2d_output_shape(x, params);
  MD_CHECK(y == expected, op, ": output ", shape_str(y), " but x ", shape_str(x), " gives ",
           shape_str(expected));
}

Nchw nchw(const Shape& shape) {
  return Nchw{shape[0], shape[1], shape[2], shape[3]};
}

}  // namespace

void CudaBackend::pool2d_forward(const Tensor& x, Tensor& y, PoolKind kind,
                                 const Pool2dParams& params) {
  expect_float32("pool2d_forward", {&x, &y});
  check_pool_shapes("pool2d_forward", x.shape(), y.shape(), params);
  if (y.numel() == 0) return;
  DeviceGuard guard(device_index_);
  const PoolingDescriptor pooling = make_pooling_descriptor(kind, params, options().determinism);
  const TensorDescriptor x_descriptor = make_tensor_descriptor(nchw(x.shape()));
  const TensorDescriptor y_descriptor = make_tensor_descriptor(nchw(y.shape()));
  const float one = 1.0f;
  const float zero = 0.0f;
  MD_CUDNN_CHECK(cudnnPoolingForward(cudnn_.get(), pooling.get(), &one, x_descriptor.get(),
                                     x.raw_data(), &zero, y_descriptor.get(), y.raw_data()));
}

void CudaBackend::pool2d_backward(const Tensor& x, const Tensor& y, const Tensor& grad_y,
                                  Tensor& grad_x, PoolKind kind, const Pool2dParams& params,
                                  Write write) {
  expect_float32("pool2d_backward", {&x, &y, &grad_y, &grad_x});
  check_pool_shapes("pool2d_backward", x.shape(), y.shape(), params);
  MD_CHECK(grad_y.shape() == y.shape() && grad_x.shape() == x.shape(), "pool2d_backward: grad_y ",
           grad_y.describe(), " and grad_x ", grad_x.describe(), " for y ", y.describe(), " and x ",
           x.describe());
  if (grad_x.numel() == 0) return;
  if (grad_y.numel() == 0) {
    if (write == Write::Overwrite) fill(grad_x, 0.0);
    return;
  }
  DeviceGuard guard(device_index_);
  const PoolingDescriptor pooling = make_pooling_descriptor(kind, params, options().determinism);
  const TensorDescriptor x_descriptor = make_tensor_descriptor(nchw(x.shape()));
  const TensorDescriptor y_descriptor = make_tensor_descriptor(nchw(y.shape()));
  const float one = 1.0f;
  const float beta = write_beta(write);
  MD_CUDNN_CHECK(cudnnPoolingBackward(cudnn_.get(), pooling.get(), &one, y_descriptor.get(),
                                      y.raw_data(), y_descriptor.get(), grad_y.raw_data(),
                                      x_descriptor.get(), x.raw_data(), &beta, x_descriptor.get(),
                                      grad_x.raw_data()));
}

void CudaBackend::global_avg_pool_forward(const Tensor& x, Tensor& y) {
  expect_float32("global_avg_pool_forward", {&x, &y});
  MD_CHECK(x.ndim() == 4 && y.shape() == Shape({x.dim(0), x.dim(1)}), "global_avg_pool_forward: x ",
           x.describe(), " -> y ", y.describe());
  DeviceGuard guard(device_index_);
  kernels::global_avg_pool_forward(x.data<float>(), y.data<float>(), x.dim(0) * x.dim(1),
                                   x.dim(2) * x.dim(3), context_.stream);
}

void CudaBackend::global_avg_pool_backward(const Tensor& grad_y, Tensor& grad_x, Write write) {
  expect_float32("global_avg_pool_backward", {&grad_y, &grad_x});
  MD_CHECK(grad_x.ndim() == 4 && grad_y.shape() == Shape({grad_x.dim(0), grad_x.dim(1)}),
           "global_avg_pool_backward: grad_y ", grad_y.describe(), " for grad_x ",
           grad_x.describe());
  DeviceGuard guard(device_index_);
  kernels::global_avg_pool_backward(grad_y.data<float>(), grad_x.data<float>(),
                                    grad_x.dim(0) * grad_x.dim(1), grad_x.dim(2) * grad_x.dim(3),
                                    write_beta(write), context_.stream);
}

}  // namespace md::cuda
