// IDX reader (see idx.h). The header is big-endian: two zero bytes, a type byte (0x08 =
// unsigned byte, the only type image sets use), the rank, then one 32-bit size per dimension.
#include "data/idx.h"

#include <algorithm>
#include <cstdio>
#include <cstring>

#include "core/error.h"
#include "data/file_bytes.h"

namespace md::data {
namespace {

constexpr std::uint8_t kUnsignedByte = 0x08;

struct IdxArray {
  std::vector<std::int64_t> dims;
  std::vector<std::uint8_t> bytes;  // the whole file, decompressed
  std::size_t data_offset = 0;      // where the values start

  const std::uint8_t* values() const { return bytes.data() + data_offset; }
};

std::uint32_t read_big_endian_u32(const std::uint8_t* data) {
  return (static_cast<std::uint32_t>(data[0]) << 24) | (static_cast<std::uint32_t>(data[1]) << 16) |
         (static_cast<std::uint32_t>(data[2]) << 8) | static_cast<std::uint32_t>(data[3]);
}

std::string dims_str(const std::vector<std::int64_t>& dims) {
  std::string text;
  for (std::size_t i = 0; i < dims.size(); ++i) text += (i ? " x " : "") + std::to_string(dims[i]);
  return text;
}

// Reads an unsigned-byte IDX file whose rank is one of `ranks`; checks magic, dimensions and size.
IdxArray read_idx(const std::string& path, const std::vector<int>& ranks, const char* what) {
  IdxArray array;
  array.bytes = detail::read_maybe_gzip(path);
  const std::vector<std::uint8_t>& bytes = array.bytes;
  MD_INPUT_CHECK(bytes.size() >= 4, "IDX ", what, " file ", path, " is too short (", bytes.size(),
                 " bytes) for an IDX header");
  const std::uint32_t magic = read_big_endian_u32(bytes.data());
  const int rank = bytes[3];
  const bool rank_ok = std::find(ranks.begin(), ranks.end(), rank) != ranks.end();
  if (bytes[0] != 0 || bytes[1] != 0 || bytes[2] != kUnsignedByte || !rank_ok) {
    std::string expected;
    for (int allowed : ranks) {
      char buffer[16];
      std::snprintf(buffer, sizeof(buffer), "0x%08x", (kUnsignedByte << 8) | allowed);
      expected += (expected.empty() ? "" : " or ") + std::string(buffer);
    }
    char found[16];
    std::snprintf(found, sizeof(found), "0x%08x", magic);
    throw InputError(md::detail::concat("IDX ", what, " file ", path, " has magic number ", found,
                                        ", expected ", expected, " (unsigned bytes)"));
  }
  const std::size_t header_bytes = 4 + 4 * static_cast<std::size_t>(rank);
  MD_INPUT_CHECK(bytes.size() >= header_bytes, "IDX ", what, " file ", path,
                 " is truncated: ", bytes.size(), " bytes, the header of rank ", rank, " needs ",
                 header_bytes);
  std::int64_t expected_values = 1;
  for (int axis = 0; axis < rank; ++axis) {
    const std::int64_t size = read_big_endian_u32(bytes.data() + 4 + 4 * axis);
    array.dims.push_back(size);
  }
  for (int axis = 0; axis < rank; ++axis) {
    const std::int64_t size = array.dims[static_cast<std::size_t>(axis)];
    MD_INPUT_CHECK(size > 0, "IDX ", what, " file ", path, " has dimensions ", dims_str(array.dims),
                   ": dimension ", axis, " is zero");
    // Checked before multiplying so that the product cannot overflow.
    MD_INPUT_CHECK(expected_values <= static_cast<std::int64_t>(bytes.size()) / size, "IDX ", what,
                   " file ", path, " is truncated: dimensions ", dims_str(array.dims),
                   " need more than its ", bytes.size() - header_bytes, " data bytes");
    expected_values *= size;
  }
  const std::size_t data_bytes = bytes.size() - header_bytes;
  MD_INPUT_CHECK(data_bytes >= static_cast<std::size_t>(expected_values), "IDX ", what, " file ",
                 path, " is truncated: dimensions ", dims_str(array.dims), " need ",
                 expected_values, " data bytes, the file has ", data_bytes);
  MD_INPUT_CHECK(data_bytes == static_cast<std::size_t>(expected_values), "IDX ", what, " file ",
                 path, " has ", data_bytes - static_cast<std::size_t>(expected_values),
                 " trailing bytes after the ", expected_values, " data bytes of dimensions ",
                 dims_str(array.dims));
  array.data_offset = header_bytes;
  return array;
}

}  // namespace

ImageSet load_idx(const std::string& images_path, const std::string& labels_path) {
  const IdxArray images = read_idx(images_path, {3, 4}, "images");
  const IdxArray labels = read_idx(labels_path, {1}, "labels");
  const std::int64_t count = images.dims[0];
  MD_INPUT_CHECK(labels.dims[0] == count, "IDX label count ", labels.dims[0], " in ", labels_path,
                 " differs from the image count ", count, " in ", images_path);
  const std::int64_t height = images.dims[1];
  const std::int64_t width = images.dims[2];
  const std::int64_t channels = images.dims.size() == 4 ? images.dims[3] : 1;
  constexpr std::int64_t kMaxSide = 1 << 16;
  MD_INPUT_CHECK(height <= kMaxSide && width <= kMaxSide && channels <= kMaxSide,
                 "IDX images file ", images_path, " has implausible dimensions ",
                 dims_str(images.dims));

  ImageSet set;
  set.count = count;
  set.channels = static_cast<int>(channels);
  set.height = static_cast<int>(height);
  set.width = static_cast<int>(width);
  set.source = images_path;
  set.pixels.resize(static_cast<std::size_t>(count * channels * height * width));
  const std::uint8_t* source_pixels = images.values();
  if (channels == 1) {
    std::memcpy(set.pixels.data(), source_pixels, set.pixels.size());
  } else {
    // (N, H, W, C) -> (N, C, H, W)
    const std::int64_t plane = height * width;
    for (std::int64_t n = 0; n < count; ++n) {
      const std::uint8_t* image_in = source_pixels + n * plane * channels;
      std::uint8_t* image_out = set.pixels.data() + n * plane * channels;
      for (std::int64_t p = 0; p < plane; ++p) {
        for (std::int64_t c = 0; c < channels; ++c)
          image_out[c * plane + p] = image_in[p * channels + c];
      }
    }
  }
  set.labels.resize(static_cast<std::size_t>(count));
  const std::uint8_t* label_values = labels.values();
  int max_label = 0;
  for (std::int64_t n = 0; n < count; ++n) {
    set.labels[static_cast<std::size_t>(n)] = label_values[n];
    max_label = std::max(max_label, static_cast<int>(label_values[n]));
  }
  set.num_classes = max_label + 1;
  return set;
}

}  // namespace md::data
