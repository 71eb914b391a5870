#include "autograd/variable.h"

#include "backend/backend.h"
#include "core/error.h"

namespace md::autograd {
namespace {
thread_local Tape default_tape;
thread_local Tape* active_tape = nullptr;
thread_local bool grad_mode = true;
}  // namespace

Variable::Variable(Tensor value, bool requires_grad) : impl_(std::make_shared<VariableImpl>()) {
  impl_->value = std::move(value);
  impl_->requires_grad = requires_grad;
}

Variable Variable::with_grad_buffer(Tensor value, Tensor grad_buffer) {
  MD_CHECK(value.shape() == grad_buffer.shape() && value.dtype() == grad_buffer.dtype() &&
               value.device() == grad_buffer.device(),
           "gradient buffer ", grad_buffer.describe(), " does not match ", value.describe());
  Variable variable(std::move(value), true);
  variable.impl_->grad = std::move(grad_buffer);
  variable.impl_->grad_external = true;
  return variable;
}

const Tensor& Variable::value() const {
  MD_CHECK(impl_ != nullptr, "value of an undefined variable");
  return impl_->value;
}

const Tensor& Variable::grad() const {
  MD_CHECK(has_grad(), "variable has no gradient");
  return impl_->grad;
}

GradSlot Variable::grad_slot() const {
  if (!requires_grad()) return {};
  if (impl_->grad_external) return {&impl_->grad, Write::Accumulate};
  if (!impl_->grad.defined()) {
    impl_->grad = Tensor::empty(impl_->value.shape(), impl_->value.dtype(), impl_->value.device());
    return {&impl_->grad, Write::Overwrite};
  }
  return {&impl_->grad, Write::Accumulate};
}

void Tape::record(std::vector<Variable> outputs, std::function<void()> backward) {
  Entry entry;
  entry.outputs.reserve(outputs.size());
  for (auto& output : outputs) entry.outputs.push_back(output.impl());
  entry.backward = std::move(backward);
  entries_.push_back(std::move(entry));
}

void Tape::backward(const Variable& root, double seed) {
  MD_CHECK(root.defined() && root.value().numel() == 1, "backward from a non-scalar ",
           root.defined() ? root.value().describe() : std::string("undefined variable"));
  backward(root,
           Tensor::full(root.value().shape(), seed, root.value().dtype(), root.value().device()));
}

void Tape::backward(const Variable& root, const Tensor& seed_grad) {
  backward(std::vector<std::pair<Variable, Tensor>>{{root, seed_grad}});
}

void Tape::backward(const std::vector<std::pair<Variable, Tensor>>& roots) {
  for (const auto& [root, seed_grad] : roots) {
    MD_CHECK(root.defined() && root.requires_grad(),
             "backward from a value that does not require a gradient");
    MD_CHECK(seed_grad.shape() == root.value().shape(), "seed gradient ", seed_grad.describe(),
             " for ", root.value().describe());
    GradSlot slot = root.grad_slot();
    Backend& backend = backend::of(root.value());
    if (slot.write == Write::Overwrite) {
      backend.copy(seed_grad, *slot.tensor);
    } else {
      backend.axpby(1.0, seed_grad, 1.0, *slot.tensor);
    }
  }
  // Entries are released as they run, so intermediates are freed during the backward pass.
  std::vector<Entry> entries = std::move(entries_);
  entries_.clear();
  for (auto it = entries.rbegin(); it != entries.rend(); ++it) {
    bool has_upstream = false;
    for (const auto& output : it->outputs) has_upstream = has_upstream || output->grad.defined();
    if (has_upstream) it->backward();
    *it = Entry{};
  }
}

Tape& current_tape() {
  return active_tape != nullptr ? *active_tape : default_tape;
}

void backward(const Variable& root, double seed) {
  current_tape().backward(root, seed);
}

TapeScope::TapeScope(Tape& tape) : previous_(active_tape) {
  active_tape = &tape;
}
TapeScope::~TapeScope() {
  active_tape = previous_;
}

bool grad_enabled() {
  return grad_mode;
}
NoGrad::NoGrad() : previous_(grad_mode) {
  grad_mode = false;
}
NoGrad::~NoGrad() {
  grad_mode = previous_;
}

bool any_requires_grad(std::initializer_list<const Variable*> inputs) {
  if (!grad_mode) return false;
  for (const Variable* input : inputs) {
    if (input != nullptr && input->requires_grad()) return true;
  }
  return false;
}

Variable make_result(Tensor value, bool needs_grad) {
  return Variable(std::move(value), needs_grad);
}

GradSlot slot_of(const Variable& input) {
  if (!input.defined() || !input.requires_grad()) return {};
  return input.grad_slot();
}

Tensor& slot_tensor(GradSlot& slot) {
  static thread_local Tensor undefined;
  undefined = Tensor();
  return slot ? *slot.tensor : undefined;
}

}  // namespace md::autograd
