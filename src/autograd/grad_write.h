// Internal helpers of the function files in this folder: how a backward closure writes its
// inputs' gradients. Each input's GradSlot has its own Write mode (a fresh gradient is
// overwritten, a used-before or external one accumulates), while a backend call that produces
// several gradients takes one mode: by_write_mode splits such a call by mode, in_one_call makes
// one call and folds the odd slots in from scratch tensors. Not a public API.
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

// Calls call(targets, write) once for all of `slots`: write is the mode of the first slot that
// wants a gradient (the data gradient, the large one, goes first), and a slot of the other mode
// gets a scratch tensor of its shape, folded into the slot afterwards. For batch norm this
// replaces by_write_mode's second pass over x and grad_y (the data gradient is fresh, the
// parameters' accumulate) by two per-channel additions. targets[i] is undefined for a slot
// that wants no gradient.
template <std::size_t N, typename Call>
void in_one_call(Backend& backend, const std::array<GradSlot, N>& slots, const Call& call) {
  Write write = Write::Overwrite;
  bool any = false;
  for (const GradSlot& slot : slots) {
    if (slot) {
      write = slot.write;
      any = true;
      break;
    }
  }
  if (!any) return;
  std::array<Tensor, N> targets;
  std::array<bool, N> scratch{};
  for (std::size_t i = 0; i < N; ++i) {
    if (!slots[i]) continue;
    if (slots[i].write == write) {
      targets[i] = *slots[i].tensor;
    } else {
      const Tensor& like = *slots[i].tensor;
      targets[i] = write == Write::Accumulate
                       ? Tensor::zeros(like.shape(), like.dtype(), like.device())
                       : Tensor::empty(like.shape(), like.dtype(), like.device());
      scratch[i] = true;
    }
  }
  call(targets, write);
  for (std::size_t i = 0; i < N; ++i) {
    if (scratch[i]) {
      backend.axpby(1.0, targets[i], slots[i].write == Write::Accumulate ? 1.0 : 0.0,
                    *slots[i].tensor);
    }
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
