// Pillow's two-pass resampling (libImaging/Resample.c: precompute_coeffs, normalize_coeffs_8bpc,
// ImagingResampleHorizontal_8bpc / Vertical_8bpc, ImagingResampleInner), restricted to the
// bilinear filter and RGB. Kept step for step the same so that the fixture made by PIL
// (tests/reference/make_jpeg_fixture.py) matches to the level.
#include "data/resample.h"

#include <algorithm>
#include <cmath>

#include "core/error.h"

namespace md::data {
namespace {

constexpr int kPrecisionBits = 32 - 8 - 2;

double triangle(double x) {
  x = std::fabs(x);
  return x < 1.0 ? 1.0 - x : 0.0;
}

// Per output pixel: the first source pixel and the number of taps (bounds, (out_size, 2)), and
// the fixed-point weights (weights, (out_size, taps_per_output)). Returns taps_per_output.
int precompute_coefficients(int in_size, double in_begin, double in_end, int out_size,
                            std::vector<std::int32_t>& weights, std::vector<int>& bounds) {
  const double scale = (in_end - in_begin) / out_size;
  const double filter_scale = std::max(scale, 1.0);
  const double support = 1.0 * filter_scale;
  const int taps = static_cast<int>(std::ceil(support)) * 2 + 1;
  weights.assign(static_cast<std::size_t>(out_size) * static_cast<std::size_t>(taps), 0);
  bounds.resize(static_cast<std::size_t>(out_size) * 2);
  std::vector<double> row(static_cast<std::size_t>(taps));
  const double inverse_scale = 1.0 / filter_scale;
  for (int out = 0; out < out_size; ++out) {
    const double center = in_begin + (out + 0.5) * scale;
    const int first = std::max(static_cast<int>(center - support + 0.5), 0);
    const int count = std::min(static_cast<int>(center + support + 0.5), in_size) - first;
    double total = 0.0;
    for (int x = 0; x < count; ++x) {
      const double weight = triangle((x + first - center + 0.5) * inverse_scale);
      row[static_cast<std::size_t>(x)] = weight;
      total += weight;
    }
    std::int32_t* fixed =
        weights.data() + static_cast<std::size_t>(out) * static_cast<std::size_t>(taps);
    for (int x = 0; x < count; ++x) {
      double weight = row[static_cast<std::size_t>(x)];
      if (total != 0.0) weight /= total;
      const double scaled = weight * (1 << kPrecisionBits);
      fixed[x] = static_cast<std::int32_t>(weight < 0 ? scaled - 0.5 : scaled + 0.5);
    }
    bounds[static_cast<std::size_t>(out) * 2] = first;
    bounds[static_cast<std::size_t>(out) * 2 + 1] = std::max(count, 0);
  }
  return taps;
}

inline std::uint8_t clip8(std::int32_t value) {
  return static_cast<std::uint8_t>(std::clamp(value >> kPrecisionBits, 0, 255));
}

// Weights with exactly kTaps taps per output pixel (starts: (out_width), weights: (out_width,
// kTaps)), the true taps moved inside [start, start + kTaps) with zeros around them: the sums are
// the same integers, and a loop of constant length runs much faster.
template <int kTaps>
void horizontal_pass_fixed(const std::uint8_t* in, std::ptrdiff_t in_stride, int rows,
                           int out_width, const std::vector<int>& starts,
                           const std::vector<std::int32_t>& weights, std::uint8_t* out) {
  for (int y = 0; y < rows; ++y) {
    const std::uint8_t* in_row = in + y * in_stride;
    std::uint8_t* out_row = out + static_cast<std::ptrdiff_t>(y) * out_width * 3;
    for (int x = 0; x < out_width; ++x) {
      const std::int32_t* k = weights.data() + static_cast<std::ptrdiff_t>(x) * kTaps;
      const std::uint8_t* source = in_row + starts[static_cast<std::size_t>(x)] * 3;
      std::int32_t red = 1 << (kPrecisionBits - 1);
      std::int32_t green = red;
      std::int32_t blue = red;
      for (int tap = 0; tap < kTaps; ++tap) {
        red += source[tap * 3] * k[tap];
        green += source[tap * 3 + 1] * k[tap];
        blue += source[tap * 3 + 2] * k[tap];
      }
      out_row[x * 3] = clip8(red);
      out_row[x * 3 + 1] = clip8(green);
      out_row[x * 3 + 2] = clip8(blue);
    }
  }
}

// in: rows of (in_width, 3); out: (rows, out_width, 3).
void horizontal_pass(const std::uint8_t* in, std::ptrdiff_t in_stride, int rows, int in_width,
                     int out_width, int taps, const std::vector<std::int32_t>& weights,
                     const std::vector<int>& bounds, ResizeScratch& scratch, std::uint8_t* out) {
  int most_taps = 1;
  for (int x = 0; x < out_width; ++x) {
    most_taps = std::max(most_taps, bounds[static_cast<std::size_t>(x) * 2 + 1]);
  }
  constexpr int kLongestFixed = 8;
  if (most_taps <= kLongestFixed && in_width >= kLongestFixed) {
    const int fixed_taps = most_taps <= 2 ? 2 : most_taps <= 4 ? 4 : kLongestFixed;
    scratch.fixed_starts.resize(static_cast<std::size_t>(out_width));
    scratch.fixed_weights.assign(
        static_cast<std::size_t>(out_width) * static_cast<std::size_t>(fixed_taps), 0);
    for (int x = 0; x < out_width; ++x) {
      const int first = bounds[static_cast<std::size_t>(x) * 2];
      const int count = bounds[static_cast<std::size_t>(x) * 2 + 1];
      const int start = std::min(first, in_width - fixed_taps);
      scratch.fixed_starts[static_cast<std::size_t>(x)] = start;
      for (int tap = 0; tap < count; ++tap) {
        scratch.fixed_weights[static_cast<std::size_t>(x * fixed_taps + first - start + tap)] =
            weights[static_cast<std::size_t>(x * taps + tap)];
      }
    }
    if (fixed_taps == 2) {
      horizontal_pass_fixed<2>(in, in_stride, rows, out_width, scratch.fixed_starts,
                               scratch.fixed_weights, out);
    } else if (fixed_taps == 4) {
      horizontal_pass_fixed<4>(in, in_stride, rows, out_width, scratch.fixed_starts,
                               scratch.fixed_weights, out);
    } else {
      horizontal_pass_fixed<kLongestFixed>(in, in_stride, rows, out_width, scratch.fixed_starts,
                                           scratch.fixed_weights, out);
    }
    return;
  }
  for (int y = 0; y < rows; ++y) {
    const std::uint8_t* in_row = in + y * in_stride;
    std::uint8_t* out_row = out + static_cast<std::ptrdiff_t>(y) * out_width * 3;
    for (int x = 0; x < out_width; ++x) {
      const int first = bounds[static_cast<std::size_t>(x) * 2];
      const int count = bounds[static_cast<std::size_t>(x) * 2 + 1];
      const std::int32_t* k = weights.data() + static_cast<std::ptrdiff_t>(x) * taps;
      const std::uint8_t* source = in_row + first * 3;
      std::int32_t red = 1 << (kPrecisionBits - 1);
      std::int32_t green = red;
      std::int32_t blue = red;
      for (int tap = 0; tap < count; ++tap) {
        red += source[tap * 3] * k[tap];
        green += source[tap * 3 + 1] * k[tap];
        blue += source[tap * 3 + 2] * k[tap];
      }
      out_row[x * 3] = clip8(red);
      out_row[x * 3 + 1] = clip8(green);
      out_row[x * 3 + 2] = clip8(blue);
    }
  }
}

// in: rows of (width, 3) with in_stride; out: (out_height, width, 3). Tap-outer loops over a row
// of int32 accumulators, so the compiler vectorizes across the row.
void vertical_pass(const std::uint8_t* in, std::ptrdiff_t in_stride, int width, int out_height,
                   int taps, const std::vector<std::int32_t>& weights,
                   const std::vector<int>& bounds, std::vector<std::int32_t>& accumulator,
                   std::uint8_t* out) {
  const int row_values = width * 3;
  accumulator.resize(static_cast<std::size_t>(row_values));
  std::int32_t* sums = accumulator.data();
  for (int y = 0; y < out_height; ++y) {
    const int first = bounds[static_cast<std::size_t>(y) * 2];
    const int count = bounds[static_cast<std::size_t>(y) * 2 + 1];
    const std::int32_t* k = weights.data() + static_cast<std::ptrdiff_t>(y) * taps;
    std::fill(sums, sums + row_values, 1 << (kPrecisionBits - 1));
    for (int tap = 0; tap < count; ++tap) {
      const std::uint8_t* source = in + (first + tap) * in_stride;
      const std::int32_t weight = k[tap];
      for (int v = 0; v < row_values; ++v) sums[v] += source[v] * weight;
    }
    std::uint8_t* out_row = out + static_cast<std::ptrdiff_t>(y) * row_values;
    for (int v = 0; v < row_values; ++v) out_row[v] = clip8(sums[v]);
  }
}

}  // namespace

ResizeBox whole_view(const RgbView& view) {
  return ResizeBox{0.0, 0.0, static_cast<double>(view.width), static_cast<double>(view.height)};
}

void resize_bilinear(const RgbView& source, const ResizeBox& box, int out_width, int out_height,
                     std::uint8_t* out, ResizeScratch& scratch) {
  MD_CHECK(out_width > 0 && out_height > 0, "resize to ", out_width, "x", out_height);
  MD_CHECK(box.left >= 0.0 && box.top >= 0.0 && box.right <= source.width &&
               box.bottom <= source.height && box.right > box.left && box.bottom > box.top,
           "resize box (", box.left, ", ", box.top, ", ", box.right, ", ", box.bottom,
           ") outside a ", source.width, "x", source.height, " image");
  const bool need_horizontal =
      out_width != source.width || box.left != 0.0 || box.right != out_width;
  const bool need_vertical =
      out_height != source.height || box.top != 0.0 || box.bottom != out_height;
  const int horizontal_taps =
      precompute_coefficients(source.width, box.left, box.right, out_width,
                              scratch.horizontal_weights, scratch.horizontal_bounds);
  const int vertical_taps =
      precompute_coefficients(source.height, box.top, box.bottom, out_height,
                              scratch.vertical_weights, scratch.vertical_bounds);
  std::vector<int>& vertical_bounds = scratch.vertical_bounds;
  const int first_row = vertical_bounds[0];
  const int last_row = vertical_bounds[static_cast<std::size_t>(out_height) * 2 - 2] +
                       vertical_bounds[static_cast<std::size_t>(out_height) * 2 - 1];

  const std::uint8_t* rows = source.pixels;
  std::ptrdiff_t row_stride = source.row_stride;
  int rows_width = source.width;
  if (need_horizontal) {
    for (int y = 0; y < out_height; ++y)
      vertical_bounds[static_cast<std::size_t>(y) * 2] -= first_row;
    const int intermediate_rows = last_row - first_row;
    const std::size_t size =
        static_cast<std::size_t>(intermediate_rows) * static_cast<std::size_t>(out_width) * 3;
    if (scratch.intermediate.size() < size) scratch.intermediate.resize(size);
    std::uint8_t* target = need_vertical ? scratch.intermediate.data() : out;
    horizontal_pass(source.pixels + first_row * source.row_stride, source.row_stride,
                    intermediate_rows, source.width, out_width, horizontal_taps,
                    scratch.horizontal_weights, scratch.horizontal_bounds, scratch, target);
    if (!need_vertical) return;
    rows = scratch.intermediate.data();
    row_stride = static_cast<std::ptrdiff_t>(out_width) * 3;
    rows_width = out_width;
  }
  if (need_vertical) {
    vertical_pass(rows, row_stride, rows_width, out_height, vertical_taps, scratch.vertical_weights,
                  vertical_bounds, scratch.accumulator, out);
    return;
  }
  for (int y = 0; y < out_height; ++y) {
    std::copy(source.pixels + y * source.row_stride,
              source.pixels + y * source.row_stride + static_cast<std::ptrdiff_t>(out_width) * 3,
              out + static_cast<std::ptrdiff_t>(y) * out_width * 3);
  }
}

}  // namespace md::data
