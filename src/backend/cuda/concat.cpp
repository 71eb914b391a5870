// Concatenation along channels and its backward: strided row copies (concat.cu). Input i of
// shape (N, C_i, ...) is N rows of C_i·S elements at channel offset sum_{j<i} C_j of y.
#include "backend/cuda/cuda_backend_impl.h"
#include "backend/cuda/kernels.h"
#include "core/error.h"

namespace md::cuda {
namespace {

// Elements per channel: the product of the axes after the channel axis.
std::int64_t trailing_size(const Shape& shape) {
  std::int64_t size = 1;
  for (std::size_t axis = 2; axis < shape.size(); ++axis) size *= shape[axis];
  return size;
}

void check_part(const char* op, const Tensor& part, const Tensor& y) {
  MD_CHECK(part.ndim() == y.ndim(), op, ": part ", part.describe(), " does not fit ", y.describe());
  Shape expected = y.shape();
  expected[1] = part.dim(1);
  MD_CHECK(part.shape() == expected, op, ": part ", part.describe(), " does not match ",
           y.describe(), " outside the channel axis");
}

}  // namespace

void CudaBackend::concat_channels(const std::vector<Tensor>& xs, Tensor& y) {
  expect_float32("concat_channels", {&y});
  MD_CHECK(y.ndim() >= 2 && !xs.empty(), "concat_channels: y ", y.describe(), " from ", xs.size(),
           " parts");
  std::int64_t channels = 0;
  for (const Tensor& part : xs) {
    expect_float32("concat_channels", {&part});
    check_part("concat_channels", part, y);
    channels += part.dim(1);
  }
  MD_CHECK(channels == y.dim(1), "concat_channels: parts have ", channels, " channels, y ",
           y.describe());
  DeviceGuard guard(device_index_);
  const std::int64_t spatial = trailing_size(y.shape());
  const std::int64_t y_row = y.dim(1) * spatial;
  std::int64_t offset = 0;
  for (const Tensor& part : xs) {
    const std::int64_t part_row = part.dim(1) * spatial;
    kernels::copy_rows(part.data<float>(), part_row, y.data<float>() + offset, y_row, y.dim(0),
                       part_row, 0.0f, context_.stream);
    offset += part_row;
  }
}

void CudaBackend::concat_channels_backward(const Tensor& grad_y, std::vector<Tensor>& grad_xs,
                                           Write write) {
  const char* op = "concat_channels_backward";
  expect_float32(op, {&grad_y});
  MD_CHECK(grad_y.ndim() >= 2 && !grad_xs.empty(), op, ": grad_y ", grad_y.describe(), " for ",
           grad_xs.size(), " parts");
  // An undefined entry (no gradient wanted) carries no channel count: as on the CPU, the
  // channels not claimed by defined entries belong to the undefined ones, which is
  // unambiguous when no defined entry has undefined entries on both sides.
  std::int64_t defined_channels = 0;
  for (const Tensor& part : grad_xs) {
    if (!part.defined()) continue;
    expect_float32(op, {&part});
    check_part(op, part, grad_y);
    defined_channels += part.dim(1);
  }
  const std::int64_t undefined_channels = grad_y.dim(1) - defined_channels;
  MD_CHECK(undefined_channels >= 0, op, ": gradients have ", defined_channels,
           " channels, more than grad_y ", grad_y.describe());
  std::vector<std::int64_t> channel_offsets(grad_xs.size(), 0);
  std::int64_t channels_before = 0;
  bool undefined_before = false;
  for (std::size_t i = 0; i < grad_xs.size(); ++i) {
    if (!grad_xs[i].defined()) {
      undefined_before = true;
      continue;
    }
    bool undefined_after = false;
    for (std::size_t j = i + 1; j < grad_xs.size(); ++j) {
      undefined_after = undefined_after || !grad_xs[j].defined();
    }
    MD_CHECK(!(undefined_before && undefined_after), op, ": gradient ", i,
             " has skipped (undefined) entries on both sides, so its channel range is unknown");
    channel_offsets[i] = channels_before + (undefined_before ? undefined_channels : 0);
    channels_before += grad_xs[i].dim(1);
  }
  MD_CHECK(undefined_channels == 0 || undefined_before, op, ": gradients have ", defined_channels,
           " channels, grad_y ", grad_y.describe());
  DeviceGuard guard(device_index_);
  const std::int64_t spatial = trailing_size(grad_y.shape());
  const std::int64_t y_row = grad_y.dim(1) * spatial;
  for (std::size_t i = 0; i < grad_xs.size(); ++i) {
    Tensor& part = grad_xs[i];
    if (!part.defined()) continue;
    const std::int64_t part_row = part.dim(1) * spatial;
    kernels::copy_rows(grad_y.data<float>() + channel_offsets[i] * spatial, y_row,
                       part.data<float>(), part_row, grad_y.dim(0), part_row, write_beta(write),
                       context_.stream);
  }
}

}  // namespace md::cuda
