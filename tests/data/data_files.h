// Test helpers for the data layer: a self-removing temporary directory, writers for CIFAR-100
// and IDX files (raw or gzip), a synthetic ImageSet, and a checker that an InputError's message
// names what it should.
#pragma once

#include <cstdint>
#include <filesystem>
#include <functional>
#include <string>
#include <vector>

#include "data/image_set.h"

namespace md::data::testing {

inline const char* kFashionMnistDir = "/usr/share/datasets/fashion-mnist";

class TempDir {
 public:
  TempDir();
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  std::string file(const std::string& name) const { return (path_ / name).string(); }
  const std::filesystem::path& path() const { return path_; }

 private:
  std::filesystem::path path_;
};

void write_bytes(const std::string& path, const std::vector<std::uint8_t>& bytes);
std::vector<std::uint8_t> gzip_bytes(const std::vector<std::uint8_t>& bytes);

// An unsigned-byte IDX file: header for `dims`, then `values` (not checked against dims, so tests
// can write inconsistent files).
std::vector<std::uint8_t> idx_bytes(const std::vector<std::uint32_t>& dims,
                                    const std::vector<std::uint8_t>& values);

// A CIFAR-100 record: coarse label, fine label, 3072 pixels.
std::vector<std::uint8_t> cifar_record(std::uint8_t coarse_label, std::uint8_t fine_label,
                                       const std::vector<std::uint8_t>& pixels);

// count images of (channels, height, width) with seeded random pixels; label i = i % num_classes.
ImageSet synthetic_set(std::int64_t count, int channels, int height, int width, int num_classes,
                       std::uint64_t seed);

// Runs `action`, expects an md::InputError, and returns its message ("" and a test failure when
// it throws something else or nothing).
std::string input_error_message(const std::function<void()>& action);

}  // namespace md::data::testing
