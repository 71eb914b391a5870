// Test pictures for the JPEG tests: md_test_jpeg's smooth picture plus a detailed one (noise,
// stripes, edges), because smooth pictures hide errors in the IDCT, the chroma upsampling and the
// filters.
#pragma once

#include <cstdint>
#include <vector>

#include "core/rng.h"
#include "support/jpeg_writer.h"

namespace md::test {

inline JpegImage make_detailed_image(int width, int height, JpegColor color, std::uint64_t seed) {
  JpegImage image = make_test_image(width, height, color, seed);
  Rng rng(seed, 77);
  const int channels = color == JpegColor::Rgb ? 3 : 1;
  for (int y = 0; y < height; ++y) {
    for (int x = 0; x < width; ++x) {
      for (int c = 0; c < channels; ++c) {
        const std::size_t at = (static_cast<std::size_t>(y) * static_cast<std::size_t>(width) +
                                static_cast<std::size_t>(x)) *
                                   static_cast<std::size_t>(channels) +
                               static_cast<std::size_t>(c);
        const int stripes = ((x + 2 * y) / 3) % 2 == 0 ? 25 : -25;
        const int noise = static_cast<int>(rng.below(41)) - 20;
        const int value = image.pixels[at] + stripes + noise;
        image.pixels[at] = static_cast<std::uint8_t>(value < 0 ? 0 : value > 255 ? 255 : value);
      }
    }
  }
  return image;
}

}  // namespace md::test
