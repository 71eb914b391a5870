// conv2d: forward through the backend, backward to the input, the weight and the bias.
#include "autograd/functions.h"
#include "backend/backend.h"

namespace md::autograd {

Variable conv2d(const Variable& x, const Variable& weight, const Variable& bias,
                const Conv2dParams& params) {
  Backend& backend = backend::of(x.value());
  Tensor y = Tensor::empty(conv2d_output_shape(x.shape(), weight.shape(), params),
                           x.value().dtype(), x.value().device());
  backend.conv2d_forward(x.value(), weight.value(), y, params);
  if (bias.defined()) backend.add_channel_bias(y, bias.value());
  Variable out = make_result(std::move(y), any_requires_grad({&x, &weight, &bias}));
  if (out.requires_grad()) {
    current_tape().record({out}, [x, weight, bias, out, params, &backend]() {
      const Tensor& grad_y = out.grad();
      if (GradSlot slot = slot_of(x)) {
        backend.conv2d_backward_data(grad_y, weight.value(), *slot.tensor, params, slot.write);
      }
      if (GradSlot slot = slot_of(weight)) {
        backend.conv2d_backward_filter(x.value(), grad_y, *slot.tensor, params, slot.write);
      }
      if (GradSlot slot = slot_of(bias)) {
        backend.channel_bias_backward(grad_y, *slot.tensor, slot.write);
      }
    });
  }
  return out;
}

}  // namespace md::autograd
