// linear: forward through the backend, backward to the input, the weight and the bias.
#include "autograd/functions.h"
#include "autograd/grad_write.h"
#include "backend/backend.h"

namespace md::autograd {

Variable linear(const Variable& x, const Variable& weight, const Variable& bias) {
  MD_CHECK(x.value().ndim() == 2 && weight.value().ndim() == 2, "linear: x ", x.value().describe(),
           " and weight ", weight.value().describe(), " are not (N, In) and (Out, In)");
  Backend& backend = backend::of(x.value());
  Tensor y =
      Tensor::empty({x.shape()[0], weight.shape()[0]}, x.value().dtype(), x.value().device());
  backend.linear_forward(x.value(), weight.value(), bias.defined() ? bias.value() : Tensor(), y);
  Variable out = make_result(std::move(y), any_requires_grad({&x, &weight, &bias}));
  if (out.requires_grad()) {
    current_tape().record({out}, [x, weight, bias, out, &backend]() {
      const std::array<GradSlot, 3> slots{slot_of(x), slot_of(weight), slot_of(bias)};
      detail::by_write_mode(slots, [&](std::array<Tensor, 3>& targets, Write write) {
        backend.linear_backward(x.value(), weight.value(), out.grad(), targets[0], targets[1],
                                targets[2], write);
      });
    });
  }
  return out;
}

}  // namespace md::autograd
