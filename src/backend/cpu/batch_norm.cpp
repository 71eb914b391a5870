// Batch norm on the CPU over (N, H, W) per channel: training forward (batch statistics, and the
// running statistics moved only when asked), eval forward (running statistics), and the
// training backward. PyTorch semantics: the batch variance is biased in the normalization and
// unbiased (n / (n - 1)) in the running update; running = (1 - momentum)·running +
// momentum·batch. Statistics are summed in double, per channel, in a fixed order.
#include <cmath>

#include "backend/cpu/cpu_backend.h"
#include "backend/cpu/cpu_common.h"

namespace md::cpu {
namespace {

struct ChannelLayout {
  std::int64_t batch = 0;
  std::int64_t channels = 0;
  std::int64_t inner = 0;  // H·W, or 1 for (N, C)
  std::int64_t count() const { return batch * inner; }
};

ChannelLayout channel_layout(const char* op, const Tensor& x) {
  MD_CHECK(x.ndim() >= 2, "cpu ", op, ": x ", x.describe(), " is not (N, C, ...)");
  ChannelLayout layout;
  layout.batch = x.dim(0);
  layout.channels = x.dim(1);
  layout.inner =
      layout.batch * layout.channels == 0 ? 0 : x.numel() / (layout.batch * layout.channels);
  return layout;
}

}  // namespace

void CpuBackend::batch_norm_forward_train(const Tensor& x, const Tensor& gamma, const Tensor& beta,
                                          Tensor& y, Tensor& save_mean, Tensor& save_invstd,
                                          Tensor& running_mean, Tensor& running_var,
                                          const BatchNormParams& params,
                                          RunningStatsUpdate update) {
  const char* op = "batch_norm_forward_train";
  dispatch_float(x.dtype(), op, [&](auto tag) {
    using T = decltype(tag);
    check_tensor(op, "x", x, x.dtype());
    const ChannelLayout layout = channel_layout(op, x);
    const Shape channel_shape{layout.channels};
    check_tensor(op, "gamma", gamma, x.dtype(), channel_shape);
    check_tensor(op, "beta", beta, x.dtype(), channel_shape);
    check_tensor(op, "y", y, x.dtype(), x.shape());
    check_tensor(op, "save_mean", save_mean, x.dtype(), channel_shape);
    check_tensor(op, "save_invstd", save_invstd, x.dtype(), channel_shape);
    const bool update_stats = update == RunningStatsUpdate::Update;
    if (update_stats) {
      check_tensor(op, "running_mean", running_mean, x.dtype(), channel_shape);
      check_tensor(op, "running_var", running_var, x.dtype(), channel_shape);
    }
    MD_CHECK(layout.count() > 1, "cpu ", op, ": x ", x.describe(),
             " has one value per channel; training batch norm needs more");
    const std::int64_t count = layout.count();
    const T* input = x.data<T>();
    T* output = y.data<T>();
    const T* scale = gamma.data<T>();
    const T* shift = beta.data<T>();
    T* mean_out = save_mean.data<T>();
    T* invstd_out = save_invstd.data<T>();
    T* running_mean_data = update_stats ? running_mean.data<T>() : nullptr;
    T* running_var_data = update_stats ? running_var.data<T>() : nullptr;
    const double momentum = params.momentum;
    parallel_for(layout.channels, 3 * count, [&](std::int64_t channel) {
      double total = 0.0;
      for (std::int64_t sample = 0; sample < layout.batch; ++sample) {
        const T* plane = input + (sample * layout.channels + channel) * layout.inner;
        for (std::int64_t i = 0; i < layout.inner; ++i) total += static_cast<double>(plane[i]);
      }
      const double mean = total / static_cast<double>(count);
      double squares = 0.0;
      for (std::int64_t sample = 0; sample < layout.batch; ++sample) {
        const T* plane = input + (sample * layout.channels + channel) * layout.inner;
        for (std::int64_t i = 0; i < layout.inner; ++i) {
          const double centered = static_cast<double>(plane[i]) - mean;
          squares += centered * centered;
        }
      }
      const double variance = squares / static_cast<double>(count);
      const double invstd = 1.0 / std::sqrt(variance + params.epsilon);
      mean_out[channel] = static_cast<T>(mean);
      invstd_out[channel] = static_cast<T>(invstd);
      if (update_stats) {
        const double unbiased = squares / static_cast<double>(count - 1);
        running_mean_data[channel] = static_cast<T>(
            (1.0 - momentum) * static_cast<double>(running_mean_data[channel]) + momentum * mean);
        running_var_data[channel] =
            static_cast<T>((1.0 - momentum) * static_cast<double>(running_var_data[channel]) +
                           momentum * unbiased);
      }
      const double alpha = invstd * static_cast<double>(scale[channel]);
      const T alpha_t = static_cast<T>(alpha);
      const T beta_t = static_cast<T>(static_cast<double>(shift[channel]) - mean * alpha);
      for (std::int64_t sample = 0; sample < layout.batch; ++sample) {
        const std::int64_t offset = (sample * layout.channels + channel) * layout.inner;
        for (std::int64_t i = 0; i < layout.inner; ++i) {
          output[offset + i] = input[offset + i] * alpha_t + beta_t;
        }
      }
    });
  });
}

void CpuBackend::batch_norm_forward_eval(const Tensor& x, const Tensor& gamma, const Tensor& beta,
                                         const Tensor& running_mean, const Tensor& running_var,
                                         Tensor& y, const BatchNormParams& params) {
  const char* op = "batch_norm_forward_eval";
  dispatch_float(x.dtype(), op, [&](auto tag) {
    using T = decltype(tag);
    check_tensor(op, "x", x, x.dtype());
    const ChannelLayout layout = channel_layout(op, x);
    const Shape channel_shape{layout.channels};
    check_tensor(op, "gamma", gamma, x.dtype(), channel_shape);
    check_tensor(op, "beta", beta, x.dtype(), channel_shape);
    check_tensor(op, "running_mean", running_mean, x.dtype(), channel_shape);
    check_tensor(op, "running_var", running_var, x.dtype(), channel_shape);
    check_tensor(op, "y", y, x.dtype(), x.shape());
    const T* input = x.data<T>();
    T* output = y.data<T>();
    const T* scale = gamma.data<T>();
    const T* shift = beta.data<T>();
    const T* mean = running_mean.data<T>();
    const T* variance = running_var.data<T>();
    parallel_for(layout.batch * layout.channels, layout.inner, [&](std::int64_t plane_index) {
      const std::int64_t channel = plane_index % layout.channels;
      const double invstd =
          1.0 / std::sqrt(static_cast<double>(variance[channel]) + params.epsilon);
      const double alpha = invstd * static_cast<double>(scale[channel]);
      const T alpha_t = static_cast<T>(alpha);
      const T beta_t = static_cast<T>(static_cast<double>(shift[channel]) -
                                      static_cast<double>(mean[channel]) * alpha);
      const std::int64_t offset = plane_index * layout.inner;
      for (std::int64_t i = 0; i < layout.inner; ++i) {
        output[offset + i] = input[offset + i] * alpha_t + beta_t;
      }
    });
  });
}

void CpuBackend::batch_norm_backward(const Tensor& x, const Tensor& grad_y, const Tensor& gamma,
                                     const Tensor& save_mean, const Tensor& save_invstd,
                                     Tensor& grad_x, Tensor& grad_gamma, Tensor& grad_beta,
                                     Write write) {
  const char* op = "batch_norm_backward";
  dispatch_float(x.dtype(), op, [&](auto tag) {
    using T = decltype(tag);
    check_tensor(op, "x", x, x.dtype());
    const ChannelLayout layout = channel_layout(op, x);
    const Shape channel_shape{layout.channels};
    check_tensor(op, "grad_y", grad_y, x.dtype(), x.shape());
    check_tensor(op, "gamma", gamma, x.dtype(), channel_shape);
    check_tensor(op, "save_mean", save_mean, x.dtype(), channel_shape);
    check_tensor(op, "save_invstd", save_invstd, x.dtype(), channel_shape);
    if (grad_x.defined()) check_tensor(op, "grad_x", grad_x, x.dtype(), x.shape());
    if (grad_gamma.defined()) check_tensor(op, "grad_gamma", grad_gamma, x.dtype(), channel_shape);
    if (grad_beta.defined()) check_tensor(op, "grad_beta", grad_beta, x.dtype(), channel_shape);
    const T* input = x.data<T>();
    const T* upstream = grad_y.data<T>();
    const T* scale = gamma.data<T>();
    const T* means = save_mean.data<T>();
    const T* invstds = save_invstd.data<T>();
    T* grad_input = grad_x.defined() ? grad_x.data<T>() : nullptr;
    T* grad_scale = grad_gamma.defined() ? grad_gamma.data<T>() : nullptr;
    T* grad_shift = grad_beta.defined() ? grad_beta.data<T>() : nullptr;
    const double count = static_cast<double>(layout.count());
    parallel_for(layout.channels, 2 * layout.count(), [&](std::int64_t channel) {
      const double mean = static_cast<double>(means[channel]);
      const double invstd = static_cast<double>(invstds[channel]);
      double sum_grad = 0.0;
      double sum_grad_centered = 0.0;  // sum of grad_y · (x - mean)
      for (std::int64_t sample = 0; sample < layout.batch; ++sample) {
        const std::int64_t offset = (sample * layout.channels + channel) * layout.inner;
        for (std::int64_t i = 0; i < layout.inner; ++i) {
          const double grad = static_cast<double>(upstream[offset + i]);
          sum_grad += grad;
          sum_grad_centered += grad * (static_cast<double>(input[offset + i]) - mean);
        }
      }
      if (grad_scale != nullptr) {
        write_value(grad_scale[channel], static_cast<T>(sum_grad_centered * invstd), write);
      }
      if (grad_shift != nullptr) write_value(grad_shift[channel], static_cast<T>(sum_grad), write);
      if (grad_input == nullptr) return;
      // grad_x = gamma·invstd·(grad_y − mean(grad_y) − x̂·mean(grad_y·x̂)), x̂ = (x − mean)·invstd
      const double gain = static_cast<double>(scale[channel]) * invstd;
      const double mean_grad = sum_grad / count;
      const double projection = sum_grad_centered * invstd * invstd / count;
      for (std::int64_t sample = 0; sample < layout.batch; ++sample) {
        const std::int64_t offset = (sample * layout.channels + channel) * layout.inner;
        for (std::int64_t i = 0; i < layout.inner; ++i) {
          const double centered = static_cast<double>(input[offset + i]) - mean;
          const double value = gain * (static_cast<double>(upstream[offset + i]) - mean_grad -
                                       centered * projection);
          write_value(grad_input[offset + i], static_cast<T>(value), write);
        }
      }
    });
  });
}

}  // namespace md::cpu
