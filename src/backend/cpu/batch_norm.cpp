// Batch norm on the CPU over (N, H, W) per channel: training forward (batch statistics, and the
// running statistics moved only when asked), eval forward (running statistics), and the
// training backward. PyTorch semantics: the batch variance is biased in the normalization and
// unbiased (n / (n - 1)) in the running update; running = (1 - momentum)·running +
// momentum·batch. Each (sample, channel) plane is summed in T over fixed interleaved lanes (a
// loop the compiler vectorizes), and the plane sums of a channel are added in double in sample
// order: the bits do not depend on the thread count. The per-element passes run in T with
// per-channel coefficients computed once in double. Every pass walks the planes in memory
// order (parallel over samples, not channels): a channel's planes lie a whole sample apart, and
// a channel-major walk restarts the hardware prefetcher on every plane. The fused
// batch_norm_add_relu ops are these functions with an epilogue (add a residual, ReLU) in the
// per-element pass, and a backward that masks grad_y by y > 0 on the fly.
#include <cmath>
#include <vector>

#include "backend/cpu/cpu_backend.h"
#include "backend/cpu/cpu_common.h"
#include "backend/element_math.h"

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

// Lanes of the plane sums: 8 independent accumulators, added in lane order at the end.
constexpr std::int64_t sum_lanes = 8;

// Sum over i in [0, length) of term(i), in T over sum_lanes interleaved lanes.
template <typename T, typename Term>
T plane_sum(std::int64_t length, const Term& term) {
  T partial[sum_lanes] = {};
  std::int64_t i = 0;
  for (; i + sum_lanes <= length; i += sum_lanes) {
    for (std::int64_t lane = 0; lane < sum_lanes; ++lane) partial[lane] += term(i + lane);
  }
  T total = T(0);
  for (; i < length; ++i) total += term(i);
  for (std::int64_t lane = 0; lane < sum_lanes; ++lane) total += partial[lane];
  return total;
}

// Calls body(plane_index, channel) for every (sample, channel) plane in memory order, the
// samples in parallel (one pass over a sample's channels per item: no division per plane,
// which costs as much as a 4x4 plane's sum).
template <typename Body>
void for_each_plane(const ChannelLayout& layout, std::int64_t work_per_element, const Body& body) {
  parallel_for(layout.batch, layout.channels * layout.inner * work_per_element,
               [&](std::int64_t sample) {
                 for (std::int64_t channel = 0; channel < layout.channels; ++channel) {
                   body(sample * layout.channels + channel, channel);
                 }
               });
}

// What the per-element pass of a forward adds after the affine map x·alpha + beta.
enum class Epilogue { None, Relu, AddRelu };

// y = epilogue(x·alpha[c] + beta[c] [+ residual]) over every plane. Each case is its own loop
// so that the compiler vectorizes it; the arithmetic is the unfused ops' (batch norm, add,
// relu), so the fused result equals theirs bit for bit.
template <typename T>
void affine_pass(const ChannelLayout& layout, const T* input, const T* residual, Epilogue epilogue,
                 const std::vector<T>& alphas, const std::vector<T>& betas, T* output) {
  for_each_plane(layout, 1, [&](std::int64_t plane_index, std::int64_t channel) {
    const T alpha_t = alphas[static_cast<std::size_t>(channel)];
    const T beta_t = betas[static_cast<std::size_t>(channel)];
    const std::int64_t offset = plane_index * layout.inner;
    const T* in = input + offset;
    T* out = output + offset;
    switch (epilogue) {
      case Epilogue::None:
        for (std::int64_t i = 0; i < layout.inner; ++i) out[i] = in[i] * alpha_t + beta_t;
        break;
      case Epilogue::Relu:
        for (std::int64_t i = 0; i < layout.inner; ++i) {
          const T normalized = in[i] * alpha_t + beta_t;
          out[i] = math::relu(normalized);
        }
        break;
      case Epilogue::AddRelu: {
        const T* add = residual + offset;
        for (std::int64_t i = 0; i < layout.inner; ++i) {
          const T normalized = in[i] * alpha_t + beta_t;
          out[i] = math::relu(T(normalized + add[i]));
        }
        break;
      }
    }
  });
}

// The epilogue of the fused ops: a residual is optional.
Epilogue fused_epilogue(const Tensor& residual) {
  return residual.defined() ? Epilogue::AddRelu : Epilogue::Relu;
}

// The training forward: batch statistics, running statistics when asked, then affine_pass.
void forward_train(const char* op, Epilogue epilogue, const Tensor& x, const Tensor& gamma,
                   const Tensor& beta, const Tensor* residual, Tensor& y, Tensor& save_mean,
                   Tensor& save_invstd, Tensor& running_mean, Tensor& running_var,
                   const BatchNormParams& params, RunningStatsUpdate update) {
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
    if (epilogue == Epilogue::AddRelu)
      check_tensor(op, "residual", *residual, x.dtype(), x.shape());
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
    const std::int64_t planes = layout.batch * layout.channels;
    std::vector<T> plane_sums(static_cast<std::size_t>(planes));  // (N, C)
    // Sum over samples, in sample order and in double, of the plane sums of each channel.
    const auto channel_totals = [&](std::vector<double>& totals) {
      totals.assign(static_cast<std::size_t>(layout.channels), 0.0);
      for (std::int64_t sample = 0; sample < layout.batch; ++sample) {
        for (std::int64_t channel = 0; channel < layout.channels; ++channel) {
          totals[static_cast<std::size_t>(channel)] += static_cast<double>(
              plane_sums[static_cast<std::size_t>(sample * layout.channels + channel)]);
        }
      }
    };
    for_each_plane(layout, 1, [&](std::int64_t plane_index, std::int64_t) {
      const T* plane = input + plane_index * layout.inner;
      plane_sums[static_cast<std::size_t>(plane_index)] =
          plane_sum<T>(layout.inner, [plane](std::int64_t i) { return plane[i]; });
    });
    std::vector<double> means;
    channel_totals(means);
    std::vector<T> means_t(static_cast<std::size_t>(layout.channels));
    for (std::int64_t channel = 0; channel < layout.channels; ++channel) {
      means[static_cast<std::size_t>(channel)] /= static_cast<double>(count);
      means_t[static_cast<std::size_t>(channel)] =
          static_cast<T>(means[static_cast<std::size_t>(channel)]);
    }
    for_each_plane(layout, 1, [&](std::int64_t plane_index, std::int64_t channel) {
      const T* plane = input + plane_index * layout.inner;
      const T mean_t = means_t[static_cast<std::size_t>(channel)];
      plane_sums[static_cast<std::size_t>(plane_index)] =
          plane_sum<T>(layout.inner, [plane, mean_t](std::int64_t i) {
            const T centered = plane[i] - mean_t;
            return centered * centered;
          });
    });
    std::vector<double> squares;
    channel_totals(squares);
    std::vector<T> alphas(static_cast<std::size_t>(layout.channels));
    std::vector<T> betas(static_cast<std::size_t>(layout.channels));
    for (std::int64_t channel = 0; channel < layout.channels; ++channel) {
      const auto at = static_cast<std::size_t>(channel);
      const double mean = means[at];
      const double variance = squares[at] / static_cast<double>(count);
      const double invstd = 1.0 / std::sqrt(variance + params.epsilon);
      mean_out[channel] = static_cast<T>(mean);
      invstd_out[channel] = static_cast<T>(invstd);
      if (update_stats) {
        const double unbiased = squares[at] / static_cast<double>(count - 1);
        running_mean_data[channel] = static_cast<T>(
            (1.0 - momentum) * static_cast<double>(running_mean_data[channel]) + momentum * mean);
        running_var_data[channel] =
            static_cast<T>((1.0 - momentum) * static_cast<double>(running_var_data[channel]) +
                           momentum * unbiased);
      }
      const double alpha = invstd * static_cast<double>(scale[channel]);
      alphas[at] = static_cast<T>(alpha);
      betas[at] = static_cast<T>(static_cast<double>(shift[channel]) - mean * alpha);
    }
    affine_pass<T>(layout, input, epilogue == Epilogue::AddRelu ? residual->data<T>() : nullptr,
                   epilogue, alphas, betas, output);
  });
}

void forward_eval(const char* op, Epilogue epilogue, const Tensor& x, const Tensor& gamma,
                  const Tensor& beta, const Tensor* residual, const Tensor& running_mean,
                  const Tensor& running_var, Tensor& y, const BatchNormParams& params) {
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
    if (epilogue == Epilogue::AddRelu)
      check_tensor(op, "residual", *residual, x.dtype(), x.shape());
    const T* scale = gamma.data<T>();
    const T* shift = beta.data<T>();
    const T* mean = running_mean.data<T>();
    const T* variance = running_var.data<T>();
    std::vector<T> alphas(static_cast<std::size_t>(layout.channels));
    std::vector<T> betas(static_cast<std::size_t>(layout.channels));
    for (std::int64_t channel = 0; channel < layout.channels; ++channel) {
      const double invstd =
          1.0 / std::sqrt(static_cast<double>(variance[channel]) + params.epsilon);
      const double alpha = invstd * static_cast<double>(scale[channel]);
      alphas[static_cast<std::size_t>(channel)] = static_cast<T>(alpha);
      betas[static_cast<std::size_t>(channel)] = static_cast<T>(
          static_cast<double>(shift[channel]) - static_cast<double>(mean[channel]) * alpha);
    }
    affine_pass<T>(layout, x.data<T>(),
                   epilogue == Epilogue::AddRelu ? residual->data<T>() : nullptr, epilogue, alphas,
                   betas, y.data<T>());
  });
}

// The training backward of the forward above. With a ReLU epilogue the upstream gradient is
// g = grad_y·[y > 0], formed on the fly in both passes and written to grad_residual (when
// defined) in the first; without one (relu_output == nullptr) g = grad_y.
void backward(const char* op, const Tensor& x, const Tensor* relu_output, const Tensor& grad_y,
              const Tensor& gamma, const Tensor& save_mean, const Tensor& save_invstd,
              Tensor& grad_x, Tensor& grad_gamma, Tensor& grad_beta, Tensor* grad_residual,
              Write write) {
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
    if (relu_output != nullptr) check_tensor(op, "y", *relu_output, x.dtype(), x.shape());
    const bool wants_residual = grad_residual != nullptr && grad_residual->defined();
    if (wants_residual) {
      check_tensor(op, "grad_residual", *grad_residual, x.dtype(), x.shape());
      MD_CHECK(!grad_x.defined() || grad_x.raw_data() != grad_residual->raw_data(), "cpu ", op,
               ": grad_residual aliases grad_x");
    }
    const T* input = x.data<T>();
    const T* upstream = grad_y.data<T>();
    const T* mask = relu_output != nullptr ? relu_output->data<T>() : nullptr;
    T* residual_out = wants_residual ? grad_residual->data<T>() : nullptr;
    const T* scale = gamma.data<T>();
    const T* means = save_mean.data<T>();
    const T* invstds = save_invstd.data<T>();
    T* grad_input = grad_x.defined() ? grad_x.data<T>() : nullptr;
    T* grad_scale = grad_gamma.defined() ? grad_gamma.data<T>() : nullptr;
    T* grad_shift = grad_beta.defined() ? grad_beta.data<T>() : nullptr;
    const double count = static_cast<double>(layout.count());
    const std::int64_t planes = layout.batch * layout.channels;
    // Per plane: the sum of grad_y and the sum of grad_y · (x − mean), (N, C) each.
    std::vector<T> grad_sums(static_cast<std::size_t>(planes));
    std::vector<T> centered_sums(static_cast<std::size_t>(planes));
    // With a ReLU epilogue, a plane's g = grad_y·[y > 0] is formed once by a plain loop (the
    // ternary inside the lane sums defeats vectorization): straight into grad_residual when
    // that is overwritten, else into a per-thread plane buffer. masked_plane returns it.
    const bool g_in_residual = residual_out != nullptr && write == Write::Overwrite;
    const auto masked_plane = [&](std::int64_t offset) -> const T* {
      const T* grad_plane = upstream + offset;
      if (mask == nullptr) return grad_plane;
      thread_local std::vector<T> buffer;
      if (!g_in_residual) buffer.resize(static_cast<std::size_t>(layout.inner));
      const T* mask_plane = mask + offset;
      T* g = g_in_residual ? residual_out + offset : buffer.data();
      for (std::int64_t i = 0; i < layout.inner; ++i) {
        g[i] = math::relu_grad(mask_plane[i], grad_plane[i]);
      }
      return g;
    };
    for_each_plane(layout, 2, [&](std::int64_t plane_index, std::int64_t channel) {
      const std::int64_t offset = plane_index * layout.inner;
      const T* x_plane = input + offset;
      const T* grad_plane = masked_plane(offset);
      if (residual_out != nullptr && !g_in_residual) {
        T* residual_plane = residual_out + offset;
        for (std::int64_t i = 0; i < layout.inner; ++i) residual_plane[i] += grad_plane[i];
      }
      const T mean_t = means[channel];
      const auto at = static_cast<std::size_t>(plane_index);
      // Two passes over a plane that stays in L1: each sum is a loop the compiler vectorizes.
      grad_sums[at] =
          plane_sum<T>(layout.inner, [grad_plane](std::int64_t i) { return grad_plane[i]; });
      centered_sums[at] = plane_sum<T>(layout.inner, [x_plane, grad_plane, mean_t](std::int64_t i) {
        return grad_plane[i] * (x_plane[i] - mean_t);
      });
    });
    // grad_x = gamma·invstd·(grad_y − mean(grad_y) − x̂·mean(grad_y·x̂)), x̂ = (x − mean)·invstd,
    // as grad_x = grad_gain·grad_y + centered_gain·(x − mean) + shift per channel.
    std::vector<T> grad_gains(static_cast<std::size_t>(layout.channels));
    std::vector<T> centered_gains(static_cast<std::size_t>(layout.channels));
    std::vector<T> shifts(static_cast<std::size_t>(layout.channels));
    // Per channel, the plane sums added in double in sample order, walked sample by sample
    // (the planes of a sample are adjacent; a channel's are a whole sample apart).
    std::vector<double> grad_totals(static_cast<std::size_t>(layout.channels), 0.0);
    std::vector<double> centered_totals(static_cast<std::size_t>(layout.channels), 0.0);
    for (std::int64_t sample = 0; sample < layout.batch; ++sample) {
      const std::size_t first = static_cast<std::size_t>(sample * layout.channels);
      for (std::size_t channel = 0; channel < grad_totals.size(); ++channel) {
        grad_totals[channel] += static_cast<double>(grad_sums[first + channel]);
        centered_totals[channel] += static_cast<double>(centered_sums[first + channel]);
      }
    }
    for (std::int64_t channel = 0; channel < layout.channels; ++channel) {
      const auto at = static_cast<std::size_t>(channel);
      const double sum_grad = grad_totals[at];
      const double sum_grad_centered = centered_totals[at];  // sum of grad_y · (x - mean)
      const double invstd = static_cast<double>(invstds[channel]);
      if (grad_scale != nullptr) {
        write_value(grad_scale[channel], static_cast<T>(sum_grad_centered * invstd), write);
      }
      if (grad_shift != nullptr) write_value(grad_shift[channel], static_cast<T>(sum_grad), write);
      const double gain = static_cast<double>(scale[channel]) * invstd;
      const double mean_grad = sum_grad / count;
      const double projection = sum_grad_centered * invstd * invstd / count;
      grad_gains[at] = static_cast<T>(gain);
      centered_gains[at] = static_cast<T>(-gain * projection);
      shifts[at] = static_cast<T>(-gain * mean_grad);
    }
    if (grad_input == nullptr) return;
    for_each_plane(layout, 2, [&](std::int64_t plane_index, std::int64_t channel) {
      const auto at = static_cast<std::size_t>(channel);
      const T mean_t = means[channel];
      const T grad_gain = grad_gains[at];
      const T centered_gain = centered_gains[at];
      const T shift = shifts[at];
      const std::int64_t offset = plane_index * layout.inner;
      const T* x_plane = input + offset;
      // g again: grad_residual holds it when it was overwritten, else it is formed anew.
      const T* grad_plane = g_in_residual ? residual_out + offset : masked_plane(offset);
      T* out = grad_input + offset;
      if (write == Write::Accumulate) {
        for (std::int64_t i = 0; i < layout.inner; ++i) {
          out[i] += grad_gain * grad_plane[i] + centered_gain * (x_plane[i] - mean_t) + shift;
        }
      } else {
        for (std::int64_t i = 0; i < layout.inner; ++i) {
          out[i] = grad_gain * grad_plane[i] + centered_gain * (x_plane[i] - mean_t) + shift;
        }
      }
    });
  });
}

}  // namespace

void CpuBackend::batch_norm_forward_train(const Tensor& x, const Tensor& gamma, const Tensor& beta,
                                          Tensor& y, Tensor& save_mean, Tensor& save_invstd,
                                          Tensor& running_mean, Tensor& running_var,
                                          const BatchNormParams& params,
                                          RunningStatsUpdate update) {
  forward_train("batch_norm_forward_train", Epilogue::None, x, gamma, beta, nullptr, y, save_mean,
                save_invstd, running_mean, running_var, params, update);
}

void CpuBackend::batch_norm_forward_eval(const Tensor& x, const Tensor& gamma, const Tensor& beta,
                                         const Tensor& running_mean, const Tensor& running_var,
                                         Tensor& y, const BatchNormParams& params) {
  forward_eval("batch_norm_forward_eval", Epilogue::None, x, gamma, beta, nullptr, running_mean,
               running_var, y, params);
}

void CpuBackend::batch_norm_backward(const Tensor& x, const Tensor& grad_y, const Tensor& gamma,
                                     const Tensor& save_mean, const Tensor& save_invstd,
                                     Tensor& grad_x, Tensor& grad_gamma, Tensor& grad_beta,
                                     Write write) {
  backward("batch_norm_backward", x, nullptr, grad_y, gamma, save_mean, save_invstd, grad_x,
           grad_gamma, grad_beta, nullptr, write);
}

void CpuBackend::batch_norm_add_relu_forward_train(
    const Tensor& x, const Tensor& gamma, const Tensor& beta, const Tensor& residual, Tensor& y,
    Tensor& save_mean, Tensor& save_invstd, Tensor& running_mean, Tensor& running_var,
    const BatchNormParams& params, RunningStatsUpdate update) {
  forward_train("batch_norm_add_relu_forward_train", fused_epilogue(residual), x, gamma, beta,
                &residual, y, save_mean, save_invstd, running_mean, running_var, params, update);
}

void CpuBackend::batch_norm_add_relu_forward_eval(const Tensor& x, const Tensor& gamma,
                                                  const Tensor& beta, const Tensor& residual,
                                                  const Tensor& running_mean,
                                                  const Tensor& running_var, Tensor& y,
                                                  const BatchNormParams& params) {
  forward_eval("batch_norm_add_relu_forward_eval", fused_epilogue(residual), x, gamma, beta,
               &residual, running_mean, running_var, y, params);
}

void CpuBackend::batch_norm_add_relu_backward(const Tensor& x, const Tensor& y,
                                              const Tensor& grad_y, const Tensor& gamma,
                                              const Tensor& save_mean, const Tensor& save_invstd,
                                              Tensor& grad_x, Tensor& grad_gamma, Tensor& grad_beta,
                                              Tensor& grad_residual, Write write) {
  backward("batch_norm_add_relu_backward", x, &y, grad_y, gamma, save_mean, save_invstd, grad_x,
           grad_gamma, grad_beta, &grad_residual, write);
}

}  // namespace md::cpu
