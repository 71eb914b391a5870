// Test helper: encodes pixels as a real JPEG file (libjpeg), so tests of the ImageNet pipeline
// run on genuine JPEG bytes of any size without shipping images. Not part of the product: the
// product only decodes.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace md::test {

enum class JpegColor { Rgb, Gray };

struct JpegImage {
  int width = 0;
  int height = 0;
  JpegColor color = JpegColor::Rgb;
  std::vector<std::uint8_t> pixels;  // (height, width, channels) interleaved, channels 3 or 1
};

// A deterministic test picture: smooth gradients plus a pattern chosen by `seed`, so different
// seeds give visibly different images and the decoded pixels are checkable.
JpegImage make_test_image(int width, int height, JpegColor color, std::uint64_t seed);

// A photo-like RGB picture: smooth shading, a few hard-edged shapes and per-pixel texture noise,
// so that its JPEG is about as large, and decodes about as slowly, as an ImageNet photo of the
// same size (smooth test pictures decode much faster).
JpegImage make_photo_like_image(int width, int height, std::uint64_t seed);

// JPEG bytes of `image` at `quality` (1..100), baseline, 4:2:0 for RGB.
std::vector<std::uint8_t> encode_jpeg(const JpegImage& image, int quality = 90);

// Writes bytes to path (creating nothing else); throws std::runtime_error on failure.
void write_file(const std::string& path, const std::vector<std::uint8_t>& bytes);

}  // namespace md::test
