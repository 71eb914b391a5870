// Test helpers for the data layer (see data_files.h).
#include "data_files.h"

#include <gtest/gtest.h>
#include <unistd.h>
#include <zlib.h>

#include <algorithm>
#include <atomic>
#include <fstream>

#include "core/error.h"
#include "core/rng.h"

namespace md::data::testing {

TempDir::TempDir() {
  static std::atomic<int> counter{0};
  const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
  const std::string name = info ? std::string(info->test_suite_name()) + "_" + info->name() : "md";
  path_ = std::filesystem::temp_directory_path() /
          ("md_data_" + name + "_" + std::to_string(::getpid()) + "_" + std::to_string(counter++));
  std::filesystem::remove_all(path_);
  std::filesystem::create_directories(path_);
}

TempDir::~TempDir() {
  std::error_code ignored;
  std::filesystem::remove_all(path_, ignored);
}

void write_bytes(const std::string& path, const std::vector<std::uint8_t>& bytes) {
  std::ofstream file(path, std::ios::binary | std::ios::trunc);
  ASSERT_TRUE(file.good()) << "cannot write " << path;
  file.write(reinterpret_cast<const char*>(bytes.data()),
             static_cast<std::streamsize>(bytes.size()));
}

std::vector<std::uint8_t> gzip_bytes(const std::vector<std::uint8_t>& bytes) {
  z_stream stream{};
  EXPECT_EQ(
      deflateInit2(&stream, Z_BEST_COMPRESSION, Z_DEFLATED, 16 + MAX_WBITS, 8, Z_DEFAULT_STRATEGY),
      Z_OK);
  std::vector<std::uint8_t> output(deflateBound(&stream, static_cast<uLong>(bytes.size())) + 64);
  stream.next_in = const_cast<Bytef*>(bytes.data());
  stream.avail_in = static_cast<uInt>(bytes.size());
  stream.next_out = output.data();
  stream.avail_out = static_cast<uInt>(output.size());
  EXPECT_EQ(deflate(&stream, Z_FINISH), Z_STREAM_END);
  output.resize(stream.total_out);
  deflateEnd(&stream);
  return output;
}

std::vector<std::uint8_t> idx_bytes(const std::vector<std::uint32_t>& dims,
                                    const std::vector<std::uint8_t>& values) {
  std::vector<std::uint8_t> bytes = {0, 0, 0x08, static_cast<std::uint8_t>(dims.size())};
  for (std::uint32_t size : dims) {
    for (int shift = 24; shift >= 0; shift -= 8)
      bytes.push_back(static_cast<std::uint8_t>(size >> shift));
  }
  bytes.insert(bytes.end(), values.begin(), values.end());
  return bytes;
}

std::vector<std::uint8_t> cifar_record(std::uint8_t coarse_label, std::uint8_t fine_label,
                                       const std::vector<std::uint8_t>& pixels) {
  std::vector<std::uint8_t> record(2 + pixels.size());
  record[0] = coarse_label;
  record[1] = fine_label;
  std::copy(pixels.begin(), pixels.end(), record.begin() + 2);
  return record;
}

ImageSet synthetic_set(std::int64_t count, int channels, int height, int width, int num_classes,
                       std::uint64_t seed) {
  ImageSet set;
  set.count = count;
  set.channels = channels;
  set.height = height;
  set.width = width;
  set.num_classes = num_classes;
  set.source = "synthetic";
  set.pixels.resize(static_cast<std::size_t>(count * set.image_numel()));
  Rng rng(seed);
  for (auto& pixel : set.pixels) pixel = static_cast<std::uint8_t>(rng.below(256));
  for (std::int64_t i = 0; i < count; ++i)
    set.labels.push_back(static_cast<std::int32_t>(i % num_classes));
  return set;
}

std::string input_error_message(const std::function<void()>& action) {
  try {
    action();
  } catch (const InputError& error) {
    return error.what();
  } catch (const std::exception& error) {
    ADD_FAILURE() << "expected md::InputError, got another exception: " << error.what();
    return "";
  }
  ADD_FAILURE() << "expected md::InputError, nothing was thrown";
  return "";
}

}  // namespace md::data::testing
