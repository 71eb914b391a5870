// batch_norm: Train mode normalizes with the batch statistics (the running statistics move only
// with RunningStatsUpdate::Update) and back-propagates through them; Eval mode normalizes with
// the running statistics, an affine map per channel, whose backward is spelled with backend
// calls: grad_x = grad_y·gamma·invstd (an eval batch norm of grad_y with zero mean and shift),
// grad_gamma = Σ grad_y·x̂, grad_beta = Σ grad_y. The running statistics are buffers, never
// differentiated. batch_norm_add_relu is the fused op of backend.h: its backward runs from x
// and the result y alone.
#include "autograd/functions.h"
#include "autograd/grad_write.h"
#include "backend/backend.h"

namespace md::autograd {
namespace {

Variable batch_norm_train(const Variable& x, const Variable& gamma, const Variable& beta,
                          Tensor& running_mean, Tensor& running_var, RunningStatsUpdate update,
                          const BatchNormParams& params) {
  Backend& backend = backend::of(x.value());
  const Tensor& input = x.value();
  const std::int64_t channels = input.dim(1);
  Tensor y = Tensor::empty(input.shape(), input.dtype(), input.device());
  Tensor save_mean = Tensor::empty({channels}, input.dtype(), input.device());
  Tensor save_invstd = Tensor::empty({channels}, input.dtype(), input.device());
  backend.batch_norm_forward_train(input, gamma.value(), beta.value(), y, save_mean, save_invstd,
                                   running_mean, running_var, params, update);
  Variable out = make_result(std::move(y), any_requires_grad({&x, &gamma, &beta}));
  if (out.requires_grad()) {
    current_tape().record({out}, [x, gamma, beta, out, save_mean, save_invstd, &backend]() {
      const std::array<GradSlot, 3> slots{slot_of(x), slot_of(gamma), slot_of(beta)};
      detail::in_one_call(backend, slots, [&](std::array<Tensor, 3>& targets, Write write) {
        backend.batch_norm_backward(x.value(), out.grad(), gamma.value(), save_mean, save_invstd,
                                    targets[0], targets[1], targets[2], write);
      });
    });
  }
  return out;
}

Variable batch_norm_eval(const Variable& x, const Variable& gamma, const Variable& beta,
                         const Tensor& running_mean, const Tensor& running_var,
                         const BatchNormParams& params) {
  Backend& backend = backend::of(x.value());
  const Tensor& input = x.value();
  Tensor y = Tensor::empty(input.shape(), input.dtype(), input.device());
  backend.batch_norm_forward_eval(input, gamma.value(), beta.value(), running_mean, running_var, y,
                                  params);
  Variable out = make_result(std::move(y), any_requires_grad({&x, &gamma, &beta}));
  if (out.requires_grad()) {
    current_tape().record({out}, [x, gamma, beta, out, running_mean, running_var, params,
                                  &backend]() {
      const Tensor& grad_y = out.grad();
      const Tensor& input_value = x.value();
      const Shape channel_shape{input_value.dim(1)};
      const Tensor zeros = Tensor::zeros(channel_shape, input_value.dtype(), input_value.device());
      if (GradSlot slot = slot_of(x)) {
        if (slot.write == Write::Overwrite) {
          backend.batch_norm_forward_eval(grad_y, gamma.value(), zeros, zeros, running_var,
                                          *slot.tensor, params);
        } else {
          Tensor grad_x =
              Tensor::empty(input_value.shape(), input_value.dtype(), input_value.device());
          backend.batch_norm_forward_eval(grad_y, gamma.value(), zeros, zeros, running_var, grad_x,
                                          params);
          backend.axpby(1.0, grad_x, 1.0, *slot.tensor);
        }
      }
      if (GradSlot slot = slot_of(gamma)) {
        const Tensor ones =
            Tensor::full(channel_shape, 1.0, input_value.dtype(), input_value.device());
        Tensor normalized =
            Tensor::empty(input_value.shape(), input_value.dtype(), input_value.device());
        backend.batch_norm_forward_eval(input_value, ones, zeros, running_mean, running_var,
                                        normalized, params);
        Tensor product =
            Tensor::empty(input_value.shape(), input_value.dtype(), input_value.device());
        backend.mul(grad_y, normalized, product, Write::Overwrite);
        backend.channel_bias_backward(product, *slot.tensor, slot.write);
      }
      if (GradSlot slot = slot_of(beta)) {
        backend.channel_bias_backward(grad_y, *slot.tensor, slot.write);
      }
    });
  }
  return out;
}

}  // namespace

Variable batch_norm(const Variable& x, const Variable& gamma, const Variable& beta,
                    Tensor& running_mean, Tensor& running_var, BatchNormMode mode,
                    RunningStatsUpdate update, const BatchNormParams& params) {
  MD_CHECK(x.value().ndim() >= 2, "batch_norm: x ", x.value().describe(), " is not (N, C, ...)");
  MD_CHECK(gamma.defined() && beta.defined(), "batch_norm: gamma and beta are required");
  if (mode == BatchNormMode::Train) {
    return batch_norm_train(x, gamma, beta, running_mean, running_var, update, params);
  }
  return batch_norm_eval(x, gamma, beta, running_mean, running_var, params);
}

Variable batch_norm_add_relu(const Variable& x, const Variable& gamma, const Variable& beta,
                             const Variable& residual, Tensor& running_mean, Tensor& running_var,
                             BatchNormMode mode, RunningStatsUpdate update,
                             const BatchNormParams& params) {
  MD_CHECK(x.value().ndim() >= 2, "batch_norm_add_relu: x ", x.value().describe(),
           " is not (N, C, ...)");
  MD_CHECK(gamma.defined() && beta.defined(), "batch_norm_add_relu: gamma and beta are required");
  MD_CHECK(!residual.defined() || residual.shape() == x.shape(), "batch_norm_add_relu: residual ",
           residual.value().describe(), " for x ", x.value().describe());
  Backend& backend = backend::of(x.value());
  const Tensor& input = x.value();
  const Tensor residual_value = residual.defined() ? residual.value() : Tensor();
  const bool needs_grad = any_requires_grad({&x, &gamma, &beta, &residual});
  Tensor y = Tensor::empty(input.shape(), input.dtype(), input.device());
  if (mode == BatchNormMode::Eval) {
    if (needs_grad) {
      const Variable normalized =
          batch_norm_eval(x, gamma, beta, running_mean, running_var, params);
      return relu(residual.defined() ? add(normalized, residual) : normalized);
    }
    backend.batch_norm_add_relu_forward_eval(input, gamma.value(), beta.value(), residual_value,
                                             running_mean, running_var, y, params);
    return make_result(std::move(y), false);
  }
  const std::int64_t channels = input.dim(1);
  Tensor save_mean = Tensor::empty({channels}, input.dtype(), input.device());
  Tensor save_invstd = Tensor::empty({channels}, input.dtype(), input.device());
  backend.batch_norm_add_relu_forward_train(input, gamma.value(), beta.value(), residual_value, y,
                                            save_mean, save_invstd, running_mean, running_var,
                                            params, update);
  Variable out = make_result(std::move(y), needs_grad);
  if (out.requires_grad()) {
    current_tape().record(
        {out}, [x, gamma, beta, residual, out, save_mean, save_invstd, &backend]() {
          const std::array<GradSlot, 4> slots{slot_of(x), slot_of(gamma), slot_of(beta),
                                              slot_of(residual)};
          detail::in_one_call(backend, slots, [&](std::array<Tensor, 4>& targets, Write write) {
            backend.batch_norm_add_relu_backward(x.value(), out.value(), out.grad(), gamma.value(),
                                                 save_mean, save_invstd, targets[0], targets[1],
                                                 targets[2], targets[3], write);
          });
        });
  }
  return out;
}

}  // namespace md::autograd
