// Nearest and bilinear resize (PyTorch semantics, align_corners=False) through the kernels of
// resize.cu; the backward is a deterministic gather.
#include "backend/cuda/cuda_backend_impl.h"
#include "backend/cuda/kernels.h"
#include "core/error.h"

namespace md::cuda {
namespace {

kernels::ResizeGeometry geometry(const char* op, const Tensor& input, const Tensor& output) {
  MD_CHECK(input.ndim() == 4 && output.ndim() == 4 && input.dim(0) == output.dim(0) &&
               input.dim(1) == output.dim(1),
           op, ": input ", input.describe(), " and output ", output.describe(),
           " must be (N, C, H, W) with the same N and C");
  MD_CHECK(output.numel() == 0 || (input.dim(2) > 0 && input.dim(3) > 0), op,
           ": cannot resize the empty input ", input.describe());
  return kernels::ResizeGeometry{input.dim(0) * input.dim(1), input.dim(2), input.dim(3),
                                 output.dim(2), output.dim(3)};
}

}  // namespace

void CudaBackend::resize_forward(const Tensor& x, Tensor& y, ResizeMode mode) {
  expect_float32("resize_forward", {&x, &y});
  const kernels::ResizeGeometry shape = geometry("resize_forward", x, y);
  DeviceGuard guard(device_index_);
  if (mode == ResizeMode::Nearest) {
    kernels::resize_nearest_forward(x.data<float>(), y.data<float>(), shape, context_.stream);
  } else {
    kernels::resize_bilinear_forward(x.data<float>(), y.data<float>(), shape, context_.stream);
  }
}

void CudaBackend::resize_backward(const Tensor& grad_y, Tensor& grad_x, ResizeMode mode,
                                  Write write) {
  expect_float32("resize_backward", {&grad_y, &grad_x});
  const kernels::ResizeGeometry shape = geometry("resize_backward", grad_x, grad_y);
  if (grad_x.numel() == 0) return;
  if (grad_y.numel() == 0) {
    if (write == Write::Overwrite) fill(grad_x, 0.0);
    return;
  }
  DeviceGuard guard(device_index_);
  if (mode == ResizeMode::Nearest) {
    kernels::resize_nearest_backward(grad_y.data<float>(), grad_x.data<float>(), shape,
                                     write_beta(write), context_.stream);
  } else {
    kernels::resize_bilinear_backward(grad_y.data<float>(), grad_x.data<float>(), shape,
                                      write_beta(write), context_.stream);
  }
}

}  // namespace md::cuda
