// Batch norm through cuDNN's spatial mode: per channel over (N, H, W), and over N for (N, C)
// inputs (seen as N×C×1×1). cuDNN's conventions are PyTorch's: the running average factor is
// the momentum, the running variance is the unbiased batch variance, save_invstd is
// 1/sqrt(biased variance + eps). RunningStatsUpdate::Skip passes no running statistics.
#include <cudnn.h>

#include "backend/cuda/cuda_backend_impl.h"
#include "backend/cuda/cuda_check.h"
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

}  // namespace md::cuda
