// softmax and log_softmax over the last axis: forward through the backend; the backward reads
// the forward output.
#include "autograd/functions.h"
#include "backend/backend.h"

namespace md::autograd {

Variable softmax(const Variable& x) {
  Backend& backend = backend::of(x.value());
  Tensor y = Tensor::empty(x.shape(), x.value().dtype(), x.value().device());
  backend.softmax_forward(x.value(), y);
  Variable out = make_result(std::move(y), any_requires_grad({&x}));
  if (out.requires_grad()) {
    current_tape().record({out}, [x, out, &backend]() {
      if (GradSlot slot = slot_of(x)) {
        backend.softmax_backward(out.value(), out.grad(), *slot.tensor, slot.write);
      }
    });
  }
  return out;
}

Variable log_softmax(const Variable& x) {
  Backend& backend = backend::of(x.value());
  Tensor y = Tensor::empty(x.shape(), x.value().dtype(), x.value().device());
  backend.log_softmax_forward(x.value(), y);
  Variable out = make_result(std::move(y), any_requires_grad({&x}));
  if (out.requires_grad()) {
    current_tape().record({out}, [x, out, &backend]() {
      if (GradSlot slot = slot_of(x)) {
        backend.log_softmax_backward(out.value(), out.grad(), *slot.tensor, slot.write);
      }
    });
  }
  return out;
}

}  // namespace md::autograd
