// JPEG decoding through libjpeg with an error manager that longjmps back to run_decode(). That
// function is written so that a longjmp skips no C++ destructor: its own locals are plain C
// structs, the C++ objects it touches (the output buffer) live in the caller's frame, and no
// exception ever passes through libjpeg. Warnings (corrupt data, premature end of data) longjmp
// too: a picture libjpeg had to patch up is a failure, not a picture.
#include "data/jpeg.h"

#include <jpeglib.h>

#include <algorithm>
#include <csetjmp>
#include <cstdio>
#include <cstring>

namespace md::data {
namespace {

struct ErrorManager {
  jpeg_error_mgr manager;  // first member: libjpeg sees a jpeg_error_mgr*
  std::jmp_buf jump;
  char message[JMSG_LENGTH_MAX];
};

[[noreturn]] void fail(j_common_ptr info) {
  auto* errors = reinterpret_cast<ErrorManager*>(info->err);
  (*info->err->format_message)(info, errors->message);
  std::longjmp(errors->jump, 1);
}

void on_message(j_common_ptr info, int level) {
  if (level < 0) fail(info);  // a warning: corrupt or truncated data
}

// PIL's MULDIV255: a * b / 255 rounded, in integers.
inline int muldiv255(int a, int b) {
  const int product = a * b + 128;
  return ((product >> 8) + product) >> 8;
}

// Adobe CMYK as Photoshop writes it (and PIL reads it, "CMYK;I"): stored values are inverted.
// Same integer formula as PIL's cmyk2rgb. cmyk: (width, 4); rgb: (width, 3).
void inverted_cmyk_to_rgb(const std::uint8_t* cmyk, int width, std::uint8_t* rgb) {
  for (int x = 0; x < width; ++x) {
    const int key = cmyk[4 * x + 3];  // 255 - K
    for (int c = 0; c < 3; ++c) {
      const int ink = 255 - cmyk[4 * x + c];
      rgb[3 * x + c] = static_cast<std::uint8_t>(std::clamp(key - muldiv255(ink, key), 0, 255));
    }
  }
}

// The libjpeg session. Only trivially destructible locals live in this frame (see the note at
// the top); `image` and `scratch` belong to the caller. Returns false after a libjpeg error, with
// the reason in errors->message.
bool run_decode(const std::uint8_t* bytes, std::size_t size, const DecodePlanner* planner,
                DecodedImage* image, std::vector<std::uint8_t>* scratch, ErrorManager* errors) {
  jpeg_decompress_struct info{};
  info.err = jpeg_std_error(&errors->manager);
  errors->manager.error_exit = fail;
  errors->manager.emit_message = on_message;
  errors->message[0] = '\0';
  if (setjmp(errors->jump) != 0) {
    jpeg_destroy_decompress(&info);
    return false;
  }
  jpeg_create_decompress(&info);
  try {
    jpeg_mem_src(&info, bytes, static_cast<unsigned long>(size));
    jpeg_read_header(&info, TRUE);
    JpegHeader header;
    header.width = static_cast<int>(info.image_width);
    header.height = static_cast<int>(info.image_height);
    header.components = info.num_components;
    DecodeRequest request;
    if (planner != nullptr) request = (*planner)(header);
    const int denom = request.scale_denom;
    const bool valid_denom = denom == 1 || denom == 2 || denom == 4 || denom == 8;
    info.scale_num = 1;
    info.scale_denom = static_cast<unsigned int>(valid_denom ? denom : 1);
    const bool cmyk = info.jpeg_color_space == JCS_CMYK || info.jpeg_color_space == JCS_YCCK;
    info.out_color_space = cmyk ? JCS_CMYK : JCS_RGB;
    info.dct_method = JDCT_ISLOW;
    jpeg_start_decompress(&info);

    const int scaled_width = static_cast<int>(info.output_width);
    const int scaled_height = static_cast<int>(info.output_height);
    const int left = std::clamp(request.left, 0, scaled_width - 1);
    const int top = std::clamp(request.top, 0, scaled_height - 1);
    const int width =
        request.width <= 0 ? scaled_width - left : std::min(request.width, scaled_width - left);
    const int height =
        request.height <= 0 ? scaled_height - top : std::min(request.height, scaled_height - top);
    // jpeg_crop_scanline widens the window to iMCU boundaries, and the fancy chroma upsampling
    // treats the window's edges as image edges: the first and last decoded columns differ from a
    // whole decode unless they are the image's own edges (measured: up to 60 levels in the last
    // column). So one more column is decoded on each side and those edge columns are not used.
    const int wanted_left = left > 0 ? left - 1 : 0;
    const int wanted_right = std::min(left + width + 1, scaled_width);
    JDIMENSION crop_left = static_cast<JDIMENSION>(wanted_left);
    JDIMENSION crop_width = static_cast<JDIMENSION>(wanted_right - wanted_left);
    if (wanted_right - wanted_left < scaled_width)
      jpeg_crop_scanline(&info, &crop_left, &crop_width);
    if (top > 0) jpeg_skip_scanlines(&info, static_cast<JDIMENSION>(top));
    const int decoded_left = static_cast<int>(crop_left);
    const int decoded_right = decoded_left + static_cast<int>(crop_width);
    const int usable_left = decoded_left > 0 ? decoded_left + 1 : 0;
    const int usable_right = decoded_right < scaled_width ? decoded_right - 1 : scaled_width;

    image->header = header;
    image->scale_denom = static_cast<int>(info.scale_denom);
    image->scaled_width = scaled_width;
    image->scaled_height = scaled_height;
    image->left = usable_left;
    image->top = top;
    image->width = usable_right - usable_left;
    image->height = height;
    const std::size_t row_bytes = static_cast<std::size_t>(crop_width) * 3;
    image->row_stride = row_bytes;
    image->first_byte = static_cast<std::size_t>(usable_left - decoded_left) * 3;
    const std::size_t needed = row_bytes * static_cast<std::size_t>(height);
    if (image->pixels.size() < needed) image->pixels.resize(needed);
    const std::size_t components = static_cast<std::size_t>(info.output_components);
    if (scratch->size() < static_cast<std::size_t>(crop_width) * components) {
      scratch->resize(static_cast<std::size_t>(crop_width) * components);
    }

    constexpr int kRowsPerRead = 16;
    JSAMPROW rows[kRowsPerRead];
    int done = 0;
    while (done < height) {
      if (cmyk) {
        rows[0] = scratch->data();
        jpeg_read_scanlines(&info, rows, 1);
        inverted_cmyk_to_rgb(scratch->data(), static_cast<int>(crop_width),
                             image->pixels.data() + row_bytes * static_cast<std::size_t>(done));
        ++done;
        continue;
      }
      const int batch = std::min(kRowsPerRead, height - done);
      for (int r = 0; r < batch; ++r) {
        rows[r] = image->pixels.data() + row_bytes * static_cast<std::size_t>(done + r);
      }
      done += static_cast<int>(jpeg_read_scanlines(&info, rows, static_cast<JDIMENSION>(batch)));
    }
    // The rows below the window: entropy-decoded by skipping (finds corrupt data), and the last
    // one read so that jpeg_finish_decompress can check the end of the data.
    const int remaining = scaled_height - top - height;
    if (remaining > 1) jpeg_skip_scanlines(&info, static_cast<JDIMENSION>(remaining - 1));
    if (remaining >= 1) {
      rows[0] = scratch->data();
      jpeg_read_scanlines(&info, rows, 1);
    }
    jpeg_finish_decompress(&info);
  } catch (...) {  // from the planner or a buffer allocation, never from libjpeg
    jpeg_destroy_decompress(&info);
    throw;
  }
  jpeg_destroy_decompress(&info);
  return true;
}

std::string hex_prefix(const std::uint8_t* bytes, std::size_t size) {
  std::string text;
  char digits[4];
  for (std::size_t i = 0; i < std::min<std::size_t>(size, 4); ++i) {
    std::snprintf(digits, sizeof digits, "%02x", static_cast<unsigned>(bytes[i]));
    if (!text.empty()) text += ' ';
    text += digits;
  }
  return text;
}

}  // namespace

int scaled_size(int full, int scale_denom) {
  return (full + scale_denom - 1) / scale_denom;
}

std::string decode_jpeg(const std::uint8_t* bytes, std::size_t size, const DecodePlanner& planner,
                        DecodedImage& image) {
  if (size == 0 || bytes == nullptr) return "empty (0 bytes)";
  if (size < 2 || bytes[0] != 0xFF || bytes[1] != 0xD8) {
    return "not a JPEG (starts with " + hex_prefix(bytes, size) + ")";
  }
  thread_local std::vector<std::uint8_t> scratch;
  ErrorManager errors;
  const DecodePlanner* planner_pointer = planner ? &planner : nullptr;
  if (run_decode(bytes, size, planner_pointer, &image, &scratch, &errors)) return {};
  std::string reason = errors.message;
  return reason.empty() ? std::string("libjpeg error") : reason;
}

std::string decode_jpeg(const std::uint8_t* bytes, std::size_t size, DecodedImage& image) {
  return decode_jpeg(bytes, size, DecodePlanner{}, image);
}

std::string check_jpeg(const std::uint8_t* bytes, std::size_t size) {
  thread_local DecodedImage image;
  return decode_jpeg(bytes, size, image);
}

}  // namespace md::data
