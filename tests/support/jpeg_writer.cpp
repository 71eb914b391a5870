// JPEG encoding for tests through libjpeg's compression API into a memory buffer.
#include "support/jpeg_writer.h"

#include <jpeglib.h>

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <stdexcept>

#include "core/rng.h"

namespace md::test {

JpegImage make_test_image(int width, int height, JpegColor color, std::uint64_t seed) {
  JpegImage image;
  image.width = width;
  image.height = height;
  image.color = color;
  const int channels = color == JpegColor::Rgb ? 3 : 1;
  image.pixels.resize(static_cast<std::size_t>(width) * static_cast<std::size_t>(height) *
                      static_cast<std::size_t>(channels));
  const int period = 8 + static_cast<int>(seed % 17);
  for (int y = 0; y < height; ++y) {
    for (int x = 0; x < width; ++x) {
      for (int c = 0; c < channels; ++c) {
        const int gradient = (255 * (c == 0 ? x : c == 1 ? y : x + y)) / (width + height);
        const int pattern = ((x / period + y / period + static_cast<int>(seed)) % 2) * 60;
        const std::size_t at = (static_cast<std::size_t>(y) * static_cast<std::size_t>(width) +
                                static_cast<std::size_t>(x)) *
                                   static_cast<std::size_t>(channels) +
                               static_cast<std::size_t>(c);
        image.pixels[at] = static_cast<std::uint8_t>((gradient + pattern + 13 * c) % 256);
      }
    }
  }
  return image;
}

JpegImage make_photo_like_image(int width, int height, std::uint64_t seed) {
  JpegImage image;
  image.width = width;
  image.height = height;
  image.pixels.resize(static_cast<std::size_t>(width) * static_cast<std::size_t>(height) * 3);
  Rng rng(seed, 5);
  for (int y = 0; y < height; ++y) {
    for (int x = 0; x < width; ++x) {
      const double shade =
          0.5 + 0.4 * std::sin(x * 0.013 + static_cast<double>(seed)) * std::cos(y * 0.021);
      const bool in_disc = (x - width / 3) * (x - width / 3) + (y - height / 2) * (y - height / 2) <
                           (height / 4) * (height / 4);
      const bool in_band = ((x + y / 2) / 37) % 3 == 0;
      for (int c = 0; c < 3; ++c) {
        double value = 255.0 * shade * (0.6 + 0.2 * c);
        if (in_disc) value = 200.0 - 60.0 * c;
        if (in_band) value *= 0.7;
        value += static_cast<double>(rng.below(49)) - 24.0;
        const std::size_t at = (static_cast<std::size_t>(y) * static_cast<std::size_t>(width) +
                                static_cast<std::size_t>(x)) *
                                   3 +
                               static_cast<std::size_t>(c);
        image.pixels[at] =
            static_cast<std::uint8_t>(std::lround(std::fmin(std::fmax(value, 0.0), 255.0)));
      }
    }
  }
  return image;
}

std::vector<std::uint8_t> encode_jpeg(const JpegImage& image, int quality) {
  jpeg_compress_struct compress{};
  jpeg_error_mgr errors{};
  compress.err = jpeg_std_error(&errors);  // errors exit the process: fine for a test helper
  jpeg_create_compress(&compress);
  unsigned char* buffer = nullptr;
  unsigned long size = 0;
  jpeg_mem_dest(&compress, &buffer, &size);
  compress.image_width = static_cast<JDIMENSION>(image.width);
  compress.image_height = static_cast<JDIMENSION>(image.height);
  compress.input_components = image.color == JpegColor::Rgb ? 3 : 1;
  compress.in_color_space = image.color == JpegColor::Rgb ? JCS_RGB : JCS_GRAYSCALE;
  jpeg_set_defaults(&compress);
  jpeg_set_quality(&compress, quality, TRUE);
  jpeg_start_compress(&compress, TRUE);
  const std::size_t row_bytes =
      static_cast<std::size_t>(image.width) * static_cast<std::size_t>(compress.input_components);
  while (compress.next_scanline < compress.image_height) {
    JSAMPROW row = const_cast<JSAMPROW>(image.pixels.data() + compress.next_scanline * row_bytes);
    jpeg_write_scanlines(&compress, &row, 1);
  }
  jpeg_finish_compress(&compress);
  jpeg_destroy_compress(&compress);
  std::vector<std::uint8_t> bytes(buffer, buffer + size);
  std::free(buffer);
  return bytes;
}

void write_file(const std::string& path, const std::vector<std::uint8_t>& bytes) {
  std::ofstream out(path, std::ios::binary);
  out.write(reinterpret_cast<const char*>(bytes.data()),
            static_cast<std::streamsize>(bytes.size()));
  if (!out) throw std::runtime_error("cannot write " + path);
}

}  // namespace md::test
