// Batch norm through cuDNN's spatial mode: per channel over (N, H, W), and over N for (N, C)
// inputs (seen as N×C×1×1). cuDNN's conventions are PyTorch's: the running average factor is
// the momentum, the running variance is the unbiased batch variance, save_invstd is
// 1/sqrt(biased variance + eps). RunningStatsUpdate::Skip passes no running statistics.
// The fused batch_norm_add_relu ops run cuDNN's batch norm and then one in-place kernel for
// the residual add and the ReLU (forward), one for the ReLU mask (backward). cuDNN's own fused
// CUDNN_BATCHNORM_OPS_BN_ADD_ACTIVATION needs NHWC half-precision tensors, which the engine's
// float32 NCHW activations are not.
#include <cudnn.h>

#include "backend/cuda/cuda_backend_impl.h"
#include "backend/cuda/cuda_check.h"
#include "backend/cuda/kernels.h"
#include "core/error.h"

namespace md::cuda {
namespace {

void check_channels(const char* op, const Nchw& view,
                    std::initializer_list<const Tensor*> per_channel) {
  for (const Tensor* tensor : per_channel) {
    MD_CHECK(!tensor->defined() || tensor->numel() == view.c, op, ": per-channel tensor ",
             tensor->describe(), " for ", view.c, " channels");
  }
}

}  // namespace

void CudaBackend::batch_norm_forward_train(const Tensor& x, const Tensor& gamma, const Tensor& beta,
                                           Tensor& y, Tensor& save_mean, Tensor& save_invstd,
                                           Tensor& running_mean, Tensor& running_var,
                                           const BatchNormParams& params,
                                           RunningStatsUpdate update) {
  expect_float32("batch_norm_forward_train",
                 {&x, &gamma, &beta, &y, &save_mean, &save_invstd, &running_mean, &running_var});
  const Nchw view = channel_view(x.shape());
  MD_CHECK(y.shape() == x.shape(), "batch_norm_forward_train: y ", y.describe(), " for x ",
           x.describe());
  MD_CHECK(gamma.defined() && beta.defined() && save_mean.defined() && save_invstd.defined(),
           "batch_norm_forward_train: gamma, beta, save_mean and save_invstd are required");
  check_channels("batch_norm_forward_train", view,
                 {&gamma, &beta, &save_mean, &save_invstd, &running_mean, &running_var});
  const bool update_stats = update == RunningStatsUpdate::Update;
  MD_CHECK(!update_stats || (running_mean.defined() && running_var.defined()),
           "batch_norm_forward_train: updating running statistics needs running_mean/var");
  MD_CHECK(params.epsilon >= CUDNN_BN_MIN_EPSILON, "batch_norm_forward_train: epsilon ",
           params.epsilon, " is below cuDNN's minimum ", CUDNN_BN_MIN_EPSILON);
  MD_CHECK(view.n * view.h > 1, "batch_norm_forward_train: x ", x.describe(),
           " has one value per channel; training batch norm needs more");
  DeviceGuard guard(device_index_);
  const TensorDescriptor x_descriptor = make_tensor_descriptor(view);
  const TensorDescriptor channel_descriptor = make_tensor_descriptor(Nchw{1, view.c, 1, 1});
  const float one = 1.0f;
  const float zero = 0.0f;
  MD_CUDNN_CHECK(cudnnBatchNormalizationForwardTraining(
      cudnn_.get(), CUDNN_BATCHNORM_SPATIAL, &one, &zero, x_descriptor.get(), x.raw_data(),
      x_descriptor.get(), y.raw_data(), channel_descriptor.get(), gamma.raw_data(), beta.raw_data(),
      params.momentum, update_stats ? running_mean.raw_data() : nullptr,
      update_stats ? running_var.raw_data() : nullptr, params.epsilon, save_mean.raw_data(),
      save_invstd.raw_data()));
}

void CudaBackend::batch_norm_forward_eval(const Tensor& x, const Tensor& gamma, const Tensor& beta,
                                          const Tensor& running_mean, const Tensor& running_var,
                                          Tensor& y, const BatchNormParams& params) {
  expect_float32("batch_norm_forward_eval", {&x, &gamma, &beta, &running_mean, &running_var, &y});
  const Nchw view = channel_view(x.shape());
  MD_CHECK(y.shape() == x.shape(), "batch_norm_forward_eval: y ", y.describe(), " for x ",
           x.describe());
  MD_CHECK(gamma.defined() && beta.defined() && running_mean.defined() && running_var.defined(),
           "batch_norm_forward_eval: gamma, beta, running_mean and running_var are required");
  check_channels("batch_norm_forward_eval", view, {&gamma, &beta, &running_mean, &running_var});
  MD_CHECK(params.epsilon >= CUDNN_BN_MIN_EPSILON, "batch_norm_forward_eval: epsilon ",
           params.epsilon, " is below cuDNN's minimum ", CUDNN_BN_MIN_EPSILON);
  if (x.numel() == 0) return;
  DeviceGuard guard(device_index_);
  const TensorDescriptor x_descriptor = make_tensor_descriptor(view);
  const TensorDescriptor channel_descriptor = make_tensor_descriptor(Nchw{1, view.c, 1, 1});
  const float one = 1.0f;
  const float zero = 0.0f;
  MD_CUDNN_CHECK(cudnnBatchNormalizationForwardInference(
      cudnn_.get(), CUDNN_BATCHNORM_SPATIAL, &one, &zero, x_descriptor.get(), x.raw_data(),
      x_descriptor.get(), y.raw_data(), channel_descriptor.get(), gamma.raw_data(), beta.raw_data(),
      running_mean.raw_data(), running_var.raw_data(), params.epsilon));
}

void CudaBackend::batch_norm_backward(const Tensor& x, const Tensor& grad_y, const Tensor& gamma,
                                      const Tensor& save_mean, const Tensor& save_invstd,
                                      Tensor& grad_x, Tensor& grad_gamma, Tensor& grad_beta,
                                      Write write) {
  expect_float32("batch_norm_backward",
                 {&x, &grad_y, &gamma, &save_mean, &save_invstd, &grad_x, &grad_gamma, &grad_beta});
  const Nchw view = channel_view(x.shape());
  MD_CHECK(grad_y.shape() == x.shape() && (!grad_x.defined() || grad_x.shape() == x.shape()),
           "batch_norm_backward: grad_y ", grad_y.describe(), " and grad_x ", grad_x.describe(),
           " for x ", x.describe());
  check_channels("batch_norm_backward", view,
                 {&gamma, &save_mean, &save_invstd, &grad_gamma, &grad_beta});
  if (!grad_x.defined() && !grad_gamma.defined() && !grad_beta.defined()) return;
  if (x.numel() == 0) return;
  DeviceGuard guard(device_index_);
  CachingAllocator& allocator = *context_.allocator;
  // cuDNN writes all three gradients: the unwanted ones go to scratch blocks (zeroed, so that
  // a blend with beta = 1 reads no garbage), written with beta = 0 where they stand alone.
  const std::size_t channel_bytes = static_cast<std::size_t>(view.c) * sizeof(float);
  DeviceBuffer scratch_x(allocator, grad_x.defined() ? 0 : x.nbytes());
  DeviceBuffer scratch_gamma(allocator, grad_gamma.defined() ? 0 : channel_bytes);
  DeviceBuffer scratch_beta(allocator, grad_beta.defined() ? 0 : channel_bytes);
  for (const DeviceBuffer* scratch : {&scratch_gamma, &scratch_beta}) {
    if (scratch->bytes() > 0) {
      MD_CUDA_CHECK(cudaMemsetAsync(scratch->data(), 0, scratch->bytes(), context_.stream));
    }
  }
  void* grad_x_data = grad_x.defined() ? grad_x.raw_data() : scratch_x.data();
  void* grad_gamma_data = grad_gamma.defined() ? grad_gamma.raw_data() : scratch_gamma.data();
  void* grad_beta_data = grad_beta.defined() ? grad_beta.raw_data() : scratch_beta.data();
  const float one = 1.0f;
  const float data_beta = grad_x.defined() ? write_beta(write) : 0.0f;
  const float param_beta = write_beta(write);
  const TensorDescriptor x_descriptor = make_tensor_descriptor(view);
  const TensorDescriptor channel_descriptor = make_tensor_descriptor(Nchw{1, view.c, 1, 1});
  // epsilon is not used when the saved mean and inverse std are passed, but must be valid.
  const double unused_epsilon = 1e-5;
  MD_CUDNN_CHECK(cudnnBatchNormalizationBackward(
      cudnn_.get(), CUDNN_BATCHNORM_SPATIAL, &one, &data_beta, &one, &param_beta,
      x_descriptor.get(), x.raw_data(), x_descriptor.get(), grad_y.raw_data(), x_descriptor.get(),
      grad_x_data, channel_descriptor.get(), gamma.raw_data(), grad_gamma_data, grad_beta_data,
      unused_epsilon, save_mean.raw_data(), save_invstd.raw_data()));
}

void CudaBackend::batch_norm_add_relu_forward_train(
    const Tensor& x, const Tensor& gamma, const Tensor& beta, const Tensor& residual, Tensor& y,
    Tensor& save_mean, Tensor& save_invstd, Tensor& running_mean, Tensor& running_var,
    const BatchNormParams& params, RunningStatsUpdate update) {
  expect_float32("batch_norm_add_relu_forward_train", {&residual});
  MD_CHECK(!residual.defined() || residual.shape() == x.shape(),
           "batch_norm_add_relu_forward_train: residual ", residual.describe(), " for x ",
           x.describe());
  batch_norm_forward_train(x, gamma, beta, y, save_mean, save_invstd, running_mean, running_var,
                           params, update);
  DeviceGuard guard(device_index_);
  kernels::add_relu_forward(y.data<float>(), residual.defined() ? residual.data<float>() : nullptr,
                            y.data<float>(), y.numel(), context_.stream);
}

void CudaBackend::batch_norm_add_relu_forward_eval(const Tensor& x, const Tensor& gamma,
                                                   const Tensor& beta, const Tensor& residual,
                                                   const Tensor& running_mean,
                                                   const Tensor& running_var, Tensor& y,
                                                   const BatchNormParams& params) {
  expect_float32("batch_norm_add_relu_forward_eval", {&residual});
  MD_CHECK(!residual.defined() || residual.shape() == x.shape(),
           "batch_norm_add_relu_forward_eval: residual ", residual.describe(), " for x ",
           x.describe());
  batch_norm_forward_eval(x, gamma, beta, running_mean, running_var, y, params);
  DeviceGuard guard(device_index_);
  kernels::add_relu_forward(y.data<float>(), residual.defined() ? residual.data<float>() : nullptr,
                            y.data<float>(), y.numel(), context_.stream);
}

void CudaBackend::batch_norm_add_relu_backward(const Tensor& x, const Tensor& y,
                                               const Tensor& grad_y, const Tensor& gamma,
                                               const Tensor& save_mean, const Tensor& save_invstd,
                                               Tensor& grad_x, Tensor& grad_gamma,
                                               Tensor& grad_beta, Tensor& grad_residual,
                                               Write write) {
  expect_float32("batch_norm_add_relu_backward", {&y, &grad_y, &grad_residual});
  MD_CHECK(y.shape() == x.shape() && grad_y.shape() == x.shape() &&
               (!grad_residual.defined() || grad_residual.shape() == x.shape()),
           "batch_norm_add_relu_backward: y ", y.describe(), ", grad_y ", grad_y.describe(),
           " and grad_residual ", grad_residual.describe(), " for x ", x.describe());
  MD_CHECK(!grad_residual.defined() || !grad_x.defined() ||
               grad_residual.raw_data() != grad_x.raw_data(),
           "batch_norm_add_relu_backward: grad_residual aliases grad_x");
  DeviceGuard guard(device_index_);
  // g = grad_y·[y > 0]: straight into grad_residual when that is overwritten, else a temporary.
  const bool in_residual = grad_residual.defined() && write == Write::Overwrite;
  Tensor masked = in_residual ? grad_residual : Tensor::empty(x.shape(), x.dtype(), x.device());
  kernels::relu_backward(y.data<float>(), grad_y.data<float>(), masked.data<float>(), y.numel(),
                         0.0f, context_.stream);
  if (grad_residual.defined() && !in_residual) {
    kernels::axpby(1.0f, masked.data<float>(), 1.0f, grad_residual.data<float>(),
                   grad_residual.numel(), context_.stream);
  }
  batch_norm_backward(x, masked, gamma, save_mean, save_invstd, grad_x, grad_gamma, grad_beta,
                      write);
}

}  // namespace md::cuda
