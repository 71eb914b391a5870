// Concatenation along the channel axis on the CPU, and its backward (each input's gradient is
// its channel range of grad_y). Pure copies per (sample, input): no reductions.
// In the backward an undefined grad_xs entry (no gradient wanted) carries no width; its width is
// inferred from grad_y's channel count when that is unambiguous: every defined entry must not
// have undefined entries both before and after it. Otherwise the call is an error.
#include "backend/cpu/cpu_backend.h"
#include "backend/cpu/cpu_common.h"

namespace md::cpu {
namespace {

// One input's place in the concatenation, in elements of one sample.
struct ConcatPart {
  std::int64_t offset = 0;  // first element of this part within a sample of y
  std::int64_t size = 0;    // C_i · inner
};

std::int64_t inner_size(const Tensor& y) {
  return y.dim(0) == 0 || y.dim(1) == 0 ? 0 : y.numel() / (y.dim(0) * y.dim(1));
}

// x: (N, C_i, ...) matches y: (N, C, ...) outside the channel axis.
void check_part(const char* op, std::size_t index, const Tensor& x, const Tensor& y) {
  check_tensor(op, "input", x, y.dtype());
  MD_CHECK(x.ndim() == y.ndim(), "cpu ", op, ": input ", index, " ", x.describe(),
           " does not match ", y.describe());
  Shape expected = y.shape();
  expected[1] = x.dim(1);
  MD_CHECK(x.shape() == expected, "cpu ", op, ": input ", index, " ", x.describe(),
           " does not match ", y.describe(), " outside the channel axis");
}

// Runs copy(sample, which) for every (sample, input) pair that has data.
template <typename Copy>
void for_each_part(std::int64_t batch, std::size_t inputs, std::int64_t sample_size,
                   const Copy& copy) {
  const auto count = static_cast<std::int64_t>(inputs);
  parallel_for(
      batch * count, sample_size / std::max<std::int64_t>(count, 1),
      [&](std::int64_t task) { copy(task / count, static_cast<std::size_t>(task % count)); });
}

}  // namespace

void CpuBackend::concat_channels(const std::vector<Tensor>& xs, Tensor& y) {
  const char* op = "concat_channels";
  dispatch_float(y.dtype(), op, [&](auto tag) {
    using T = decltype(tag);
    check_tensor(op, "y", y, y.dtype());
    MD_CHECK(y.ndim() >= 2, "cpu ", op, ": y ", y.describe(), " is not (N, C, ...)");
    MD_CHECK(!xs.empty(), "cpu ", op, ": no inputs");
    const std::int64_t inner = inner_size(y);
    std::vector<ConcatPart> parts;
    std::vector<const T*> part_data;
    std::int64_t channels = 0;
    for (std::size_t i = 0; i < xs.size(); ++i) {
      check_part(op, i, xs[i], y);
      parts.push_back(ConcatPart{channels * inner, xs[i].dim(1) * inner});
      part_data.push_back(xs[i].data<T>());
      channels += xs[i].dim(1);
    }
    MD_CHECK(channels == y.dim(1), "cpu ", op, ": inputs have ", channels,
             " channels in all, output ", y.describe());
    const std::int64_t sample_size = y.dim(0) == 0 ? 0 : y.numel() / y.dim(0);
    T* output = y.data<T>();
    for_each_part(y.dim(0), parts.size(), sample_size, [&](std::int64_t sample, std::size_t which) {
      const ConcatPart& place = parts[which];
      const T* from = part_data[which] + sample * place.size;
      std::copy(from, from + place.size, output + sample * sample_size + place.offset);
    });
  });
}

void CpuBackend::concat_channels_backward(const Tensor& grad_y, std::vector<Tensor>& grad_xs,
                                          Write write) {
  const char* op = "concat_channels_backward";
  dispatch_float(grad_y.dtype(), op, [&](auto tag) {
    using T = decltype(tag);
    check_tensor(op, "grad_y", grad_y, grad_y.dtype());
    MD_CHECK(grad_y.ndim() >= 2, "cpu ", op, ": grad_y ", grad_y.describe(), " is not (N, C, ...)");
    MD_CHECK(!grad_xs.empty(), "cpu ", op, ": no inputs");
    const std::int64_t inner = inner_size(grad_y);
    std::int64_t defined_channels = 0;
    for (std::size_t i = 0; i < grad_xs.size(); ++i) {
      if (!grad_xs[i].defined()) continue;
      check_part(op, i, grad_xs[i], grad_y);
      defined_channels += grad_xs[i].dim(1);
    }
    const std::int64_t undefined_channels = grad_y.dim(1) - defined_channels;
    MD_CHECK(undefined_channels >= 0, "cpu ", op, ": gradients have ", defined_channels,
             " channels, more than grad_y ", grad_y.describe());
    std::vector<ConcatPart> parts(grad_xs.size());
    std::vector<T*> part_data(grad_xs.size(), nullptr);
    std::int64_t channels_before = 0;  // channels of the defined entries before entry i
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
      MD_CHECK(!(undefined_before && undefined_after), "cpu ", op, ": gradient ", i,
               " has skipped (undefined) entries on both sides, so its channel range is unknown");
      const std::int64_t offset = channels_before + (undefined_before ? undefined_channels : 0);
      parts[i] = ConcatPart{offset * inner, grad_xs[i].dim(1) * inner};
      part_data[i] = grad_xs[i].data<T>();
      channels_before += grad_xs[i].dim(1);
    }
    MD_CHECK(undefined_channels == 0 || undefined_before, "cpu ", op, ": gradients have ",
             defined_channels, " channels, grad_y ", grad_y.describe());
    const std::int64_t sample_size = grad_y.dim(0) == 0 ? 0 : grad_y.numel() / grad_y.dim(0);
    const T* upstream = grad_y.data<T>();
    for_each_part(grad_y.dim(0), parts.size(), sample_size,
                  [&](std::int64_t sample, std::size_t which) {
                    if (part_data[which] == nullptr) return;
                    const ConcatPart& place = parts[which];
                    T* to = part_data[which] + sample * place.size;
                    const T* from = upstream + sample * sample_size + place.offset;
                    for (std::int64_t i = 0; i < place.size; ++i)
                      write_value(to[i], from[i], write);
                  });
  });
}

}  // namespace md::cpu
