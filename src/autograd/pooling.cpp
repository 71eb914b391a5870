// Max and average pooling and global average pooling: forward through the backend, backward to
// the input.
#include "autograd/functions.h"
#include "backend/backend.h"

namespace md::autograd {
namespace {

Variable pool2d(const Variable& x, PoolKind kind, const Pool2dParams& params) {
  Backend& backend = backend::of(x.value());
  Tensor y =
      Tensor::empty(pool2d_output_shape(x.shape(), params), x.value().dtype(), x.value().device());
  backend.pool2d_forward(x.value(), y, kind, params);
  Variable out = make_result(std::move(y), any_requires_grad({&x}));
  if (out.requires_grad()) {
    current_tape().record({out}, [x, out, kind, params, &backend]() {
      if (GradSlot slot = slot_of(x)) {
        backend.pool2d_backward(x.value(), out.value(), out.grad(), *slot.tensor, kind, params,
                                slot.write);
      }
    });
  }
  return out;
}

}  // namespace

Variable max_pool2d(const Variable& x, const Pool2dParams& params) {
  return pool2d(x, PoolKind::Max, params);
}

Variable avg_pool2d(const Variable& x, const Pool2dParams& params) {
  return pool2d(x, PoolKind::Average, params);
}

Variable global_avg_pool(const Variable& x) {
  MD_CHECK(x.value().ndim() == 4, "global_avg_pool: x ", x.value().describe(),
           " is not (N, C, H, W)");
  Backend& backend = backend::of(x.value());
  Tensor y = Tensor::empty({x.shape()[0], x.shape()[1]}, x.value().dtype(), x.value().device());
  backend.global_avg_pool_forward(x.value(), y);
  Variable out = make_result(std::move(y), any_requires_grad({&x}));
  if (out.requires_grad()) {
    current_tape().record({out}, [x, out, &backend]() {
      if (GradSlot slot = slot_of(x)) {
        backend.global_avg_pool_backward(out.grad(), *slot.tensor, slot.write);
      }
    });
  }
  return out;
}

}  // namespace md::autograd
