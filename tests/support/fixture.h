// Reference fixtures written by tests/reference/make_fixtures.py (PyTorch): a file of named
// tensors. Format (little endian): magic "MDFX", uint32 version (kFixtureVersion), uint32
// count, then per tensor: uint32 name length, name bytes, uint8 dtype (0 float32, 1 float64,
// 3 int32), uint32 rank, int64 extents, raw row-major data.
#pragma once

#include <map>
#include <string>

#include "core/tensor.h"

namespace md::test {

inline constexpr std::uint32_t kFixtureVersion = 1;

class Fixture {
 public:
  // Reads tests/fixtures/<name>.bin under the source tree; throws md::Error naming the file.
  static Fixture load(const std::string& name);
  static Fixture load_path(const std::string& path);

  const Tensor& get(const std::string& key) const;
  bool has(const std::string& key) const { return tensors_.count(key) != 0; }
  const std::map<std::string, Tensor>& all() const { return tensors_; }

 private:
  std::map<std::string, Tensor> tensors_;
  std::string path_;
};

}  // namespace md::test
