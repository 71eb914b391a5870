// Internal helpers of the function files in this folder: how a backward closure writes its
// inputs' gradients. Each input's GradSlot has its own Write mode (a fresh gradient is
// overwritten, a used-before or external one accumulates), while a backend call that produces
// several gradients takes one mode: by_write_mode splits such a call by mode. Not a public API.
#pragma once

#include <array>
#include <cstddef>

#include "autograd/variable.h"
#include "backend/backend.h"

namespace md::autograd::detail {

// Calls call(targets, write) once per Write mode present among `slots`, Overwrite first (so a
// variable that is two inputs of one function is first written, then added to). targets[i] is
// slot i's tensor when its mode is `write`, undefined otherwise.
template <std::size_t N, typename Call>
void by_write_mode(const std::array<GradSlot, N>& slots, const Call& call) {
  for (Write write : {Write::Overwrite, Write::Accumulate}) {
    std::array<Tensor, N> targets;
    bool any = false;
    for (std::size_t i = 0; i < N; ++i) {
      if (slots[i] && slots[i].write == write) {
        targets[i] = *slots[i].tensor;  // a handle: writes land in the slot's storage
        any = true;
      }
    }
    if (any) call(targets, write);
  }
}

// The slot's gradient (+)= factor · source, where source has the slot's number of elements.
inline void write_gradient(Backend& backend, const Tensor& source, const GradSlot& slot,
                           double factor = 1.0) {
  backend.axpby(factor, source, slot.write == Write::Accumulate ? 1.0 : 0.0, *slot.tensor);
}

// True when grad mode is on and any defined variable of `inputs` requires a gradient.
template <typename Range>
bool any_requires_grad_in(const Range& inputs) {
  if (!grad_enabled()) return false;
  for (const Variable& input : inputs) {
    if (input.defined() && input.requires_grad()) return true;
  }
  return false;
}

}  // namespace md::autograd::detail
