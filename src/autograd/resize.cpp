// resize (nearest, bilinear): forward through the backend, backward to the input.
#include "autograd/functions.h"
#include "backend/backend.h"

namespace md::autograd {

Variable resize(const Variable& x, std::int64_t out_height, std::int64_t out_width,
                ResizeMode mode) {
  MD_CHECK(x.value().ndim() == 4, "resize: x ", x.value().describe(), " is not (N, C, H, W)");
  MD_CHECK(out_height > 0 && out_width > 0, "resize: output size ", out_height, "x", out_width,
           " is empty");
  Backend& backend = backend::of(x.value());
  Tensor y = Tensor::empty({x.shape()[0], x.shape()[1], out_height, out_width}, x.value().dtype(),
                           x.value().device());
  backend.resize_forward(x.value(), y, mode);
  Variable out = make_result(std::move(y), any_requires_grad({&x}));
  if (out.requires_grad()) {
    current_tape().record({out}, [x, out, mode, &backend]() {
      if (GradSlot slot = slot_of(x)) {
        backend.resize_backward(out.grad(), *slot.tensor, mode, slot.write);
      }
    });
  }
  return out;
}

}  // namespace md::autograd
