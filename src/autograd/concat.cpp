// concat_channels: forward through the backend, backward to every input that requires a
// gradient. The backend infers the channel range of a skipped (undefined) gradient only when it
// is unambiguous; when skipped entries lie on both sides of a wanted one, they get scratch
// tensors instead, so every range is known.
#include "autograd/functions.h"
#include "autograd/grad_write.h"
#include "backend/backend.h"

namespace md::autograd {
namespace {

// When a wanted gradient has skipped (undefined) entries on both sides, gives every skipped entry
// a scratch tensor, so that the backend knows each channel range.
void fill_ambiguous_gaps(std::vector<Tensor>& targets, const std::vector<Variable>& xs) {
  bool ambiguous = false;
  for (std::size_t i = 0; i < targets.size(); ++i) {
    if (!targets[i].defined()) continue;
    bool skipped_before = false;
    bool skipped_after = false;
    for (std::size_t j = 0; j < i; ++j) skipped_before = skipped_before || !targets[j].defined();
    for (std::size_t j = i + 1; j < targets.size(); ++j) {
      skipped_after = skipped_after || !targets[j].defined();
    }
    ambiguous = ambiguous || (skipped_before && skipped_after);
  }
  if (!ambiguous) return;
  for (std::size_t i = 0; i < targets.size(); ++i) {
    if (targets[i].defined()) continue;
    const Tensor& value = xs[i].value();
    targets[i] = Tensor::empty(value.shape(), value.dtype(), value.device());
  }
}

}  // namespace

Variable concat_channels(const std::vector<Variable>& xs) {
  MD_CHECK(!xs.empty(), "concat_channels: no inputs");
  const Tensor& first = xs.front().value();
  MD_CHECK(first.ndim() >= 2, "concat_channels: input ", first.describe(), " is not (N, C, ...)");
  Shape shape = first.shape();
  shape[1] = 0;
  std::vector<Tensor> values;
  for (const Variable& x : xs) {
    MD_CHECK(x.value().ndim() == first.ndim(), "concat_channels: input ", x.value().describe(),
             " does not match ", first.describe());
    shape[1] += x.value().dim(1);
    values.push_back(x.value());
  }
  Backend& backend = backend::of(first);
  Tensor y = Tensor::empty(shape, first.dtype(), first.device());
  backend.concat_channels(values, y);
  Variable out = make_result(std::move(y), detail::any_requires_grad_in(xs));
  if (out.requires_grad()) {
    current_tape().record({out}, [xs, out, &backend]() {
      std::vector<GradSlot> slots;
      for (const Variable& x : xs) slots.push_back(slot_of(x));
      for (Write write : {Write::Overwrite, Write::Accumulate}) {
        std::vector<Tensor> targets(xs.size());
        bool any = false;
        for (std::size_t i = 0; i < xs.size(); ++i) {
          if (slots[i] && slots[i].write == write) {
            targets[i] = *slots[i].tensor;
            any = true;
          }
        }
        if (!any) continue;
        fill_ambiguous_gaps(targets, xs);
        backend.concat_channels_backward(out.grad(), targets, write);
      }
    });
  }
  return out;
}

}  // namespace md::autograd
