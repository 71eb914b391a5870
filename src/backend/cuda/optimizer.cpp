// SGD (momentum, Nesterov, L2 weight decay) and Adam over whole flat buffers, PyTorch
// semantics, through optimizer.cu (element_math.h's per-element steps, as on the CPU).
#include <cmath>

#include "backend/cuda/cuda_backend_impl.h"
#include "backend/cuda/kernels.h"
#include "core/error.h"

namespace md::cuda {
namespace {

void check_numel(const char* op, const char* name, const Tensor& tensor, std::int64_t numel) {
  MD_CHECK(tensor.defined() && tensor.numel() == numel, op, ": ", name, " ", tensor.describe(),
           " needs ", numel, " elements");
}

}  // namespace

void CudaBackend::sgd_update(Tensor& param, const Tensor& grad, Tensor& momentum_buffer,
                             const SgdParams& params) {
  const char* op = "sgd_update";
  const bool with_momentum = params.momentum != 0.0;
  expect_float32(op, {&param, &grad, with_momentum ? &momentum_buffer : nullptr});
  check_numel(op, "grad", grad, param.numel());
  if (with_momentum) check_numel(op, "momentum_buffer", momentum_buffer, param.numel());
  MD_CHECK(!params.nesterov || with_momentum, op, ": nesterov needs a momentum");
  DeviceGuard guard(device_index_);
  const kernels::SgdStep step{static_cast<float>(params.learning_rate),
                              static_cast<float>(params.momentum),
                              static_cast<float>(params.weight_decay), params.nesterov};
  kernels::sgd_update(param.data<float>(), grad.data<float>(),
                      with_momentum ? momentum_buffer.data<float>() : nullptr, param.numel(), step,
                      context_.stream);
}

void CudaBackend::adam_update(Tensor& param, const Tensor& grad, Tensor& exp_avg,
                              Tensor& exp_avg_sq, const AdamParams& params) {
  const char* op = "adam_update";
  expect_float32(op, {&param, &grad, &exp_avg, &exp_avg_sq});
  check_numel(op, "grad", grad, param.numel());
  check_numel(op, "exp_avg", exp_avg, param.numel());
  check_numel(op, "exp_avg_sq", exp_avg_sq, param.numel());
  MD_CHECK(params.step >= 1, op, ": step ", params.step, " is not 1-based");
  DeviceGuard guard(device_index_);
  const kernels::AdamStep step =
      math::adam_coefficients<float>(params.learning_rate, params.beta1, params.beta2,
                                     params.epsilon, params.weight_decay, params.step);
  kernels::adam_update(param.data<float>(), grad.data<float>(), exp_avg.data<float>(),
                       exp_avg_sq.data<float>(), param.numel(), step, context_.stream);
}

}  // namespace md::cuda
