// Antialiased bilinear resize of RGB uint8 pixels: the function of PIL's Image.resize(size,
// BILINEAR, box) (and so of torchvision's Resize / RandomResizedCrop on PIL images), computed the
// way Pillow computes it: a triangle filter whose support grows with the reduction factor,
// coefficients in fixed point (22 bits), a horizontal pass over the rows the vertical pass needs
// into uint8, then the vertical pass into uint8. Bit-exact with Pillow up to float rounding in
// the coefficients. No decoding, no normalization here.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

namespace md::data {

// Read-only view of RGB pixels: (height, width, 3), rows row_stride bytes apart.
struct RgbView {
  const std::uint8_t* pixels = nullptr;
  int width = 0;
  int height = 0;
  std::ptrdiff_t row_stride = 0;
};

// The source rectangle that maps onto the output, in source pixel coordinates (may be
// fractional). The filter reads pixels outside the box up to the view's edges, as Pillow does.
struct ResizeBox {
  double left = 0.0;
  double top = 0.0;
  double right = 0.0;
  double bottom = 0.0;
};

ResizeBox whole_view(const RgbView& view);

// Buffers a thread reuses between calls (coefficients, the intermediate image).
struct ResizeScratch {
  std::vector<std::int32_t> horizontal_weights;
  std::vector<int> horizontal_bounds;
  std::vector<std::int32_t> vertical_weights;
  std::vector<int> vertical_bounds;
  std::vector<std::uint8_t> intermediate;
  std::vector<std::int32_t> accumulator;
  std::vector<int> fixed_starts;
  std::vector<std::int32_t> fixed_weights;
};

// Resizes `box` of `source` to out_width x out_height. out: (out_height, out_width, 3) uint8.
// The box must lie inside the view and have a positive size (md::Error otherwise).
void resize_bilinear(const RgbView& source, const ResizeBox& box, int out_width, int out_height,
                     std::uint8_t* out, ResizeScratch& scratch);

}  // namespace md::data
