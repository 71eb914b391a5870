// Fused optimizer steps on the CPU over whole flat buffers (PyTorch semantics), through the
// per-element md::math steps that the CUDA kernels share. Element i touches only element i of
// each buffer, so the step is the same for every thread count.
#include <cmath>

#include "backend/cpu/cpu_backend.h"
#include "backend/cpu/cpu_common.h"
#include "backend/element_math.h"

namespace md::cpu {
void CpuBackend::sgd_update(Tensor& param, const Tensor& grad, Tensor& momentum_buffer,
                            const SgdParams& params) {
  const char* op = "sgd_update";
  dispatch_float(param.dtype(), op, [&](auto tag) {
    using T = decltype(tag);
    check_tensor(op, "param", param, param.dtype());
    check_numel(op, "grad", grad, param.dtype(), param.numel());
    const bool with_momentum = params.momentum != 0.0;
    if (with_momentum)
      check_numel(op, "momentum_buffer", momentum_buffer, param.dtype(), param.numel());
    MD_CHECK(!params.nesterov || with_momentum, "cpu ", op, ": nesterov needs a momentum");
    T* values = param.data<T>();
    const T* gradient = grad.data<T>();
    T* buffer = with_momentum ? momentum_buffer.data<T>() : nullptr;
    const T learning_rate = static_cast<T>(params.learning_rate);
    const T momentum = static_cast<T>(params.momentum);
    const T weight_decay = static_cast<T>(params.weight_decay);
    parallel_range(param.numel(), [&](std::int64_t begin, std::int64_t end) {
      if (buffer != nullptr) {
        for (std::int64_t i = begin; i < end; ++i) {
          math::sgd_step(values[i], gradient[i], buffer[i], learning_rate, momentum, weight_decay,
                         params.nesterov);
        }
      } else {
        for (std::int64_t i = begin; i < end; ++i) {
          T unused_buffer = T(0);
          math::sgd_step(values[i], gradient[i], unused_buffer, learning_rate, momentum,
                         weight_decay, params.nesterov);
        }
      }
    });
  });
}

void CpuBackend::adam_update(Tensor& param, const Tensor& grad, Tensor& exp_avg, Tensor& exp_avg_sq,
                             const AdamParams& params) {
  const char* op = "adam_update";
  dispatch_float(param.dtype(), op, [&](auto tag) {
    using T = decltype(tag);
    check_tensor(op, "param", param, param.dtype());
    check_numel(op, "grad", grad, param.dtype(), param.numel());
    check_numel(op, "exp_avg", exp_avg, param.dtype(), param.numel());
    check_numel(op, "exp_avg_sq", exp_avg_sq, param.dtype(), param.numel());
    MD_CHECK(params.step >= 1, "cpu ", op, ": step ", params.step, " is not 1-based");
    const auto coefficients =
        math::adam_coefficients<T>(params.learning_rate, params.beta1, params.beta2, params.epsilon,
                                   params.weight_decay, params.step);
    T* values = param.data<T>();
    const T* gradient = grad.data<T>();
    T* first_moment = exp_avg.data<T>();
    T* second_moment = exp_avg_sq.data<T>();
    parallel_range(param.numel(), [&](std::int64_t begin, std::int64_t end) {
      for (std::int64_t i = begin; i < end; ++i) {
        math::adam_step(values[i], gradient[i], first_moment[i], second_moment[i], coefficients);
      }
    });
  });
}

}  // namespace md::cpu
