// Elementwise arithmetic over Variables (add, mul, scale, weighted_sum) and the shape views
// reshape and flatten, which share storage with their input and pass gradients through.
#include "autograd/functions.h"
#include "autograd/grad_write.h"
#include "backend/backend.h"

namespace md::autograd {

Variable add(const Variable& a, const Variable& b) {
  MD_CHECK(a.shape() == b.shape(), "add: shapes ", shape_str(a.shape()), " and ",
           shape_str(b.shape()), " differ");
  Backend& backend = backend::of(a.value());
  Tensor y = Tensor::empty(a.shape(), a.value().dtype(), a.value().device());
  backend.add(a.value(), b.value(), y);
  Variable out = make_result(std::move(y), any_requires_grad({&a, &b}));
  if (out.requires_grad()) {
    current_tape().record({out}, [a, b, out, &backend]() {
      if (GradSlot slot = slot_of(a)) detail::write_gradient(backend, out.grad(), slot);
      if (GradSlot slot = slot_of(b)) detail::write_gradient(backend, out.grad(), slot);
    });
  }
  return out;
}

Variable mul(const Variable& a, const Variable& b) {
  MD_CHECK(a.shape() == b.shape(), "mul: shapes ", shape_str(a.shape()), " and ",
           shape_str(b.shape()), " differ");
  Backend& backend = backend::of(a.value());
  Tensor y = Tensor::empty(a.shape(), a.value().dtype(), a.value().device());
  backend.mul(a.value(), b.value(), y, Write::Overwrite);
  Variable out = make_result(std::move(y), any_requires_grad({&a, &b}));
  if (out.requires_grad()) {
    current_tape().record({out}, [a, b, out, &backend]() {
      if (GradSlot slot = slot_of(a)) backend.mul(out.grad(), b.value(), *slot.tensor, slot.write);
      if (GradSlot slot = slot_of(b)) backend.mul(out.grad(), a.value(), *slot.tensor, slot.write);
    });
  }
  return out;
}

Variable scale(const Variable& x, double factor) {
  Backend& backend = backend::of(x.value());
  Tensor y = Tensor::empty(x.shape(), x.value().dtype(), x.value().device());
  backend.axpby(factor, x.value(), 0.0, y);
  Variable out = make_result(std::move(y), any_requires_grad({&x}));
  if (out.requires_grad()) {
    current_tape().record({out}, [x, out, factor, &backend]() {
      if (GradSlot slot = slot_of(x)) detail::write_gradient(backend, out.grad(), slot, factor);
    });
  }
  return out;
}

Variable weighted_sum(const std::vector<Variable>& terms, const std::vector<double>& weights) {
  MD_CHECK(!terms.empty() && terms.size() == weights.size(), "weighted_sum: ", terms.size(),
           " terms and ", weights.size(), " weights");
  const Tensor& first = terms.front().value();
  for (const Variable& term : terms) {
    MD_CHECK(term.shape() == first.shape(), "weighted_sum: term ", term.value().describe(),
             " does not match ", first.describe());
  }
  Backend& backend = backend::of(first);
  Tensor y = Tensor::empty(first.shape(), first.dtype(), first.device());
  for (std::size_t i = 0; i < terms.size(); ++i) {
    backend.axpby(weights[i], terms[i].value(), i == 0 ? 0.0 : 1.0, y);
  }
  Variable out = make_result(std::move(y), detail::any_requires_grad_in(terms));
  if (out.requires_grad()) {
    current_tape().record({out}, [terms, weights, out, &backend]() {
      for (std::size_t i = 0; i < terms.size(); ++i) {
        if (GradSlot slot = slot_of(terms[i])) {
          detail::write_gradient(backend, out.grad(), slot, weights[i]);
        }
      }
    });
  }
  return out;
}

Variable reshape(const Variable& x, const Shape& shape) {
  Variable out = make_result(x.value().view(shape), any_requires_grad({&x}));
  if (out.requires_grad()) {
    Backend& backend = backend::of(x.value());
    current_tape().record({out}, [x, out, &backend]() {
      if (GradSlot slot = slot_of(x)) detail::write_gradient(backend, out.grad(), slot);
    });
  }
  return out;
}

Variable flatten(const Variable& x) {
  MD_CHECK(x.value().ndim() >= 1, "flatten: x ", x.value().describe(), " has no batch axis");
  const std::int64_t batch = x.shape()[0];
  return reshape(x, {batch, batch == 0 ? 0 : x.value().numel() / batch});
}

}  // namespace md::autograd
