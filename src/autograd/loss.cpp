// Losses over Variables, means over the batch with scalar (shape {}) results: cross entropy
// with label smoothing, the temperature-scaled KL divergence (gradients to the student and the
// teacher), and the mean squared error.
#include "autograd/functions.h"
#include "autograd/grad_write.h"
#include "backend/backend.h"

namespace md::autograd {

Variable cross_entropy(const Variable& logits, const Tensor& labels, double label_smoothing) {
  Backend& backend = backend::of(logits.value());
  MD_CHECK(labels.defined() && labels.dtype() == DType::Int32 &&
               labels.device() == logits.value().device(),
           "cross_entropy: labels ",
           labels.defined() ? labels.describe() : std::string("undefined"), " are not int32 on ",
           logits.value().device().str());
  Tensor loss = Tensor::empty({}, logits.value().dtype(), logits.value().device());
  backend.cross_entropy_forward(logits.value(), labels, loss, label_smoothing);
  Variable out = make_result(std::move(loss), any_requires_grad({&logits}));
  if (out.requires_grad()) {
    current_tape().record({out}, [logits, labels, out, label_smoothing, &backend]() {
      if (GradSlot slot = slot_of(logits)) {
        backend.cross_entropy_backward(logits.value(), labels, out.grad(), *slot.tensor,
                                       label_smoothing, slot.write);
      }
    });
  }
  return out;
}

Variable kl_div(const Variable& student, const Variable& teacher, double temperature) {
  Backend& backend = backend::of(student.value());
  Tensor loss = Tensor::empty({}, student.value().dtype(), student.value().device());
  backend.kl_div_forward(student.value(), teacher.value(), loss, temperature);
  Variable out = make_result(std::move(loss), any_requires_grad({&student, &teacher}));
  if (out.requires_grad()) {
    current_tape().record({out}, [student, teacher, out, temperature, &backend]() {
      const std::array<GradSlot, 2> slots{slot_of(student), slot_of(teacher)};
      detail::by_write_mode(slots, [&](std::array<Tensor, 2>& targets, Write write) {
        backend.kl_div_backward(student.value(), teacher.value(), out.grad(), targets[0],
                                targets[1], temperature, write);
      });
    });
  }
  return out;
}

Variable mse(const Variable& a, const Variable& b) {
  Backend& backend = backend::of(a.value());
  Tensor loss = Tensor::empty({}, a.value().dtype(), a.value().device());
  backend.mse_forward(a.value(), b.value(), loss);
  Variable out = make_result(std::move(loss), any_requires_grad({&a, &b}));
  if (out.requires_grad()) {
    current_tape().record({out}, [a, b, out, &backend]() {
      const std::array<GradSlot, 2> slots{slot_of(a), slot_of(b)};
      detail::by_write_mode(slots, [&](std::array<Tensor, 2>& targets, Write write) {
        backend.mse_backward(a.value(), b.value(), out.grad(), targets[0], targets[1], write);
      });
    });
  }
  return out;
}

}  // namespace md::autograd
