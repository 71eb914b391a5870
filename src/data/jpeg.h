// JPEG decoding for the ImageNet pipeline, through the libjpeg API (libjpeg-turbo). Bad bytes
// never throw and never stop the process: every failure, and every libjpeg warning (corrupt or
// truncated data), comes back as a reason string, so the loader can skip the record and say why.
// Output is always RGB, interleaved: grayscale is expanded by libjpeg, CMYK/YCCK (Adobe, inverted)
// is converted here. For speed a decode can be reduced by DCT scaling (1/2, 1/4, 1/8) and limited
// to a window (jpeg_crop_scanline + jpeg_skip_scanlines): the caller decides from the header,
// inside the same libjpeg session, which part of the image it needs. Nothing here resizes or
// normalizes (resample.h, imagenet_transform.h).
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

namespace md::data {

// Empty string when bytes decode completely as a JPEG, else the reason (e.g. "not a JPEG (starts
// with 89 50 4e 47)", "premature end of data"). Never throws for bad bytes.
std::string check_jpeg(const std::uint8_t* bytes, std::size_t size);

struct JpegHeader {
  int width = 0;  // of the full image
  int height = 0;
  int components = 0;  // in the file: 1 gray, 3 YCbCr/RGB, 4 CMYK/YCCK
};

// What to decode: the image reduced by 1 / scale_denom (1, 2, 4 or 8), then the window
// [left, left + width) x [top, top + height) of that reduced image. width or height 0: all of it.
// The window is clamped to the reduced image.
struct DecodeRequest {
  int scale_denom = 1;
  int left = 0;
  int top = 0;
  int width = 0;
  int height = 0;
};

// The reduced size libjpeg gives an image of `full` pixels at 1 / scale_denom: ceil(full / denom).
int scaled_size(int full, int scale_denom);

// A decoded window. libjpeg may widen a window on the left and right to an iMCU boundary: left
// and width say which columns hold exactly the pixels of a whole decode (at least those asked
// for), in the reduced image's coordinates; row(y) points at column `left` of row top + y.
struct DecodedImage {
  std::vector<std::uint8_t> pixels;  // rows of row_stride bytes, RGB; reused between decodes
  std::size_t row_stride = 0;        // bytes
  std::size_t first_byte = 0;        // of column `left` in each row
  int left = 0;
  int top = 0;
  int width = 0;
  int height = 0;
  int scaled_width = 0;  // of the whole reduced image
  int scaled_height = 0;
  int scale_denom = 1;
  JpegHeader header;
  const std::uint8_t* row(int y) const {
    return pixels.data() + first_byte + static_cast<std::size_t>(y) * row_stride;
  }
};

// Chooses the request once the header is read (no libjpeg calls, must not throw).
using DecodePlanner = std::function<DecodeRequest(const JpegHeader& header)>;

// Decodes the request the planner returns into `image` (its buffer is reused). Every scanline
// after the window is still entropy-decoded, so corrupt data anywhere in the file is found no
// matter which window was asked for. Returns "" on success, else the reason.
std::string decode_jpeg(const std::uint8_t* bytes, std::size_t size, const DecodePlanner& planner,
                        DecodedImage& image);

// The whole image at full size.
std::string decode_jpeg(const std::uint8_t* bytes, std::size_t size, DecodedImage& image);

}  // namespace md::data
