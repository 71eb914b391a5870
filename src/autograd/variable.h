// Reverse-mode autograd, first order, as a tape (a Wengert list): each differentiable function
// computes its forward with the backend and, when grad mode is on and an input requires a
// gradient, appends a closure that computes its backward. Tape::backward(loss) replays the
// closures in reverse and clears the tape. Parameters carry a gradient slot that is a view
// into a caller's flat gradient buffer: gradients accumulate there (the caller zeroes it).
// No MPI, HDF5 or YAML here, and no knowledge of models.
#pragma once

#include <functional>
#include <memory>
#include <vector>

#include "backend/params.h"
#include "core/tensor.h"

namespace md::autograd {

struct VariableImpl {
  Tensor value;
  Tensor grad;  // undefined until a gradient arrives, unless grad_external
  bool requires_grad = false;
  bool grad_external = false;  // grad is a view into a caller's buffer: always accumulate
};

// Where a backward op writes one input's gradient, and how.
struct GradSlot {
  Tensor* tensor = nullptr;  // nullptr: this input needs no gradient
  Write write = Write::Overwrite;
  explicit operator bool() const { return tensor != nullptr; }
};

class Variable {
 public:
  Variable() = default;
  explicit Variable(Tensor value, bool requires_grad = false);
  // A leaf whose gradient accumulates into `grad_buffer` (same shape as value).
  static Variable with_grad_buffer(Tensor value, Tensor grad_buffer);

  bool defined() const { return impl_ != nullptr; }
  const Tensor& value() const;
  bool requires_grad() const { return impl_ && impl_->requires_grad; }
  bool has_grad() const { return impl_ && impl_->grad.defined(); }
  const Tensor& grad() const;
  // Allocates this variable's gradient on first use (Overwrite), then Accumulate.
  GradSlot grad_slot() const;  // a handle: mutates the shared impl
  // The same value, cut from the tape: no gradient flows through it.
  Variable detach() const { return Variable(value(), false); }
  const Shape& shape() const { return value().shape(); }

  const std::shared_ptr<VariableImpl>& impl() const { return impl_; }

 private:
  std::shared_ptr<VariableImpl> impl_;
};

class Tape {
 public:
  // Appends a backward closure for `outputs` (run only if one of them received a gradient).
  void record(std::vector<Variable> outputs, std::function<void()> backward);
  // Seeds d(root)/d(root) = seed (root must be a scalar), runs the closures in reverse, clears.
  void backward(const Variable& root, double seed = 1.0);
  // The same with a seed gradient of root's shape (d(sum(seed ⊙ root))/d(inputs)).
  void backward(const Variable& root, const Tensor& seed_grad);
  // Several roots at once, each with its seed gradient: d(Σ_r sum(seed_r ⊙ root_r))/d(inputs).
  void backward(const std::vector<std::pair<Variable, Tensor>>& roots);
  void clear() { entries_.clear(); }
  std::size_t size() const { return entries_.size(); }

 private:
  struct Entry {
    std::vector<std::shared_ptr<VariableImpl>> outputs;
    std::function<void()> backward;
  };
  std::vector<Entry> entries_;
};

// The tape functions record onto: a per-thread default, or the one a TapeScope installed.
Tape& current_tape();
// Convenience: current_tape().backward(root).
void backward(const Variable& root, double seed = 1.0);

class TapeScope {
 public:
  explicit TapeScope(Tape& tape);
  ~TapeScope();
  TapeScope(const TapeScope&) = delete;
  TapeScope& operator=(const TapeScope&) = delete;

 private:
  Tape* previous_;
};

bool grad_enabled();
// Inside a NoGrad scope nothing is recorded and results never require gradients.
class NoGrad {
 public:
  NoGrad();
  ~NoGrad();
  NoGrad(const NoGrad&) = delete;
  NoGrad& operator=(const NoGrad&) = delete;

 private:
  bool previous_;
};

// Helpers for implementing differentiable functions.
// True when grad mode is on and any defined input requires a gradient.
bool any_requires_grad(std::initializer_list<const Variable*> inputs);
// Wraps a forward result; it requires a gradient iff `needs_grad`.
Variable make_result(Tensor value, bool needs_grad);
// The gradient slot of an input if it requires one, else an empty slot.
GradSlot slot_of(const Variable& input);
// A tensor for a backend call: the slot's tensor, or an undefined tensor if no slot.
Tensor& slot_tensor(GradSlot& slot);

}  // namespace md::autograd
