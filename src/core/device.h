// Where a tensor lives. A Device is a value: (type, index). "cuda:1" is the second GPU.
#pragma once

#include <cstdint>
#include <string>

namespace md {

enum class DeviceType : std::uint8_t { Cpu, Cuda };

struct Device {
  DeviceType type = DeviceType::Cpu;
  int index = 0;

  static Device cpu() { return Device{DeviceType::Cpu, 0}; }
  static Device cuda(int index) { return Device{DeviceType::Cuda, index}; }
  bool is_cpu() const { return type == DeviceType::Cpu; }
  bool is_cuda() const { return type == DeviceType::Cuda; }
  std::string str() const;
  // Parses "cpu", "cuda", "cuda:N"; throws InputError otherwise.
  static Device parse(const std::string& text);
  friend bool operator==(const Device&, const Device&) = default;
};

}  // namespace md
