#include "support/fixture.h"

#include <cstring>
#include <fstream>

#include "core/error.h"

namespace md::test {
namespace {

template <typename T>
T read_value(std::ifstream& in, const std::string& path) {
  T value{};
  in.read(reinterpret_cast<char*>(&value), sizeof value);
  if (!in) throw Error("fixture " + path + ": truncated file");
  return value;
}

}  // namespace

Fixture Fixture::load(const std::string& name) {
  return load_path(std::string(MD_SOURCE_DIR) + "/tests/fixtures/" + name + ".bin");
}

Fixture Fixture::load_path(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw Error("fixture " + path + ": cannot open (run tests/reference/make_fixtures.py)");
  char magic[4];
  in.read(magic, 4);
  if (!in || std::memcmp(magic, "MDFX", 4) != 0) throw Error("fixture " + path + ": bad magic");
  auto version = read_value<std::uint32_t>(in, path);
  if (version != kFixtureVersion) {
    throw Error("fixture " + path + ": version " + std::to_string(version) + ", expected " +
                std::to_string(kFixtureVersion));
  }
  auto count = read_value<std::uint32_t>(in, path);
  Fixture fixture;
  fixture.path_ = path;
  for (std::uint32_t i = 0; i < count; ++i) {
    auto name_length = read_value<std::uint32_t>(in, path);
    std::string key(name_length, '\0');
    in.read(key.data(), name_length);
    auto dtype_code = read_value<std::uint8_t>(in, path);
    DType dtype;
    switch (dtype_code) {
      case 0:
        dtype = DType::Float32;
        break;
      case 1:
        dtype = DType::Float64;
        break;
      case 3:
        dtype = DType::Int32;
        break;
      default:
        throw Error("fixture " + path + ": tensor '" + key + "' has unknown dtype code");
    }
    auto rank = read_value<std::uint32_t>(in, path);
    Shape shape(rank);
    for (auto& extent : shape) extent = read_value<std::int64_t>(in, path);
    Tensor tensor = Tensor::empty(shape, dtype);
    in.read(static_cast<char*>(tensor.raw_data()), static_cast<std::streamsize>(tensor.nbytes()));
    if (!in) throw Error("fixture " + path + ": tensor '" + key + "' truncated");
    fixture.tensors_.emplace(key, std::move(tensor));
  }
  return fixture;
}

const Tensor& Fixture::get(const std::string& key) const {
  auto it = tensors_.find(key);
  if (it == tensors_.end()) throw Error("fixture " + path_ + " has no tensor '" + key + "'");
  return it->second;
}

}  // namespace md::test
