// Element types of tensors. Float32 is the training type; Float64 exists on the CPU for
// gradient checks; BFloat16 is a GPU storage type; Int32 holds labels; UInt8 holds raw images.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

namespace md {

enum class DType : std::uint8_t { Float32, Float64, BFloat16, Int32, UInt8 };

std::size_t dtype_size(DType dtype);
const char* dtype_name(DType dtype);

template <typename T>
constexpr DType dtype_of();
template <>
constexpr DType dtype_of<float>() {
  return DType::Float32;
}
template <>
constexpr DType dtype_of<double>() {
  return DType::Float64;
}
template <>
constexpr DType dtype_of<std::int32_t>() {
  return DType::Int32;
}
template <>
constexpr DType dtype_of<std::uint8_t>() {
  return DType::UInt8;
}

}  // namespace md
