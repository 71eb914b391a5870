#include "core/runtime.h"

#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <new>
#include <vector>

#include "core/capture.h"
#include "core/error.h"

namespace md {
namespace {

// 256-byte aligned host memory: full cache lines for the BLAS and vectorized loops, and the
// alignment of a flat buffer's slots (nn/layout.h) holds for their addresses, as on a GPU.
class CpuRuntime final : public DeviceRuntime {
 public:
  void* allocate(std::size_t bytes, Device) override {
    if (bytes == 0) return nullptr;
    constexpr std::size_t alignment = 256;
    std::size_t rounded = (bytes + alignment - 1) / alignment * alignment;
    void* pointer = std::aligned_alloc(alignment, rounded);
    if (pointer == nullptr)
      throw Error("host allocation of " + std::to_string(bytes) + " bytes failed");
    return pointer;
  }
  void deallocate(void* pointer, std::size_t, Device) noexcept override { std::free(pointer); }
  void copy_to_host(void* host_dst, const void* src, std::size_t bytes, Device) override {
    if (bytes) std::memcpy(host_dst, src, bytes);
  }
  void copy_from_host(void* dst, const void* host_src, std::size_t bytes, Device) override {
    if (bytes) std::memcpy(dst, host_src, bytes);
  }
  void copy_within(void* dst, const void* src, std::size_t bytes, Device) override {
    if (bytes) std::memmove(dst, src, bytes);
  }
  void fill(void* dst, const void* element, std::size_t element_bytes, std::size_t count,
            Device) override {
    if (count == 0) return;
    switch (element_bytes) {
      case 1:
        std::memset(dst, *static_cast<const unsigned char*>(element), count);
        return;
      case 2:
        fill_words<std::uint16_t>(dst, element, count);
        return;
      case 4:
        fill_words<std::uint32_t>(dst, element, count);
        return;
      case 8:
        fill_words<std::uint64_t>(dst, element, count);
        return;
      default:
        for (std::size_t i = 0; i < count; ++i) {
          std::memcpy(static_cast<unsigned char*>(dst) + i * element_bytes, element, element_bytes);
        }
    }
  }
  void synchronize(Device) override { check_not_capturing("synchronizing with the device"); }

 private:
  template <typename Word>
  static void fill_words(void* dst, const void* element, std::size_t count) {
    Word word;
    std::memcpy(&word, element, sizeof(word));
    std::fill_n(static_cast<Word*>(dst), count, word);
  }
};

CpuRuntime cpu_runtime;
DeviceRuntime* runtimes[2] = {&cpu_runtime, nullptr};

}  // namespace

void DeviceRuntime::fill(void* dst, const void* element, std::size_t element_bytes,
                         std::size_t count, Device device) {
  if (count == 0) return;
  check_not_capturing("a fill through a host buffer");
  std::vector<unsigned char> host(element_bytes * count);
  for (std::size_t i = 0; i < count; ++i) {
    std::memcpy(host.data() + i * element_bytes, element, element_bytes);
  }
  copy_from_host(dst, host.data(), host.size(), device);
}

DeviceRuntime& runtime_for(DeviceType type) {
  DeviceRuntime* runtime = runtimes[static_cast<int>(type)];
  if (runtime == nullptr) {
    throw Error(
        "no runtime for device type cuda: this build has no CUDA backend (MD_CUDA=OFF) "
        "or backend::init() was not called");
  }
  return *runtime;
}

void register_runtime(DeviceType type, DeviceRuntime* runtime) {
  runtimes[static_cast<int>(type)] = runtime;
}

bool has_runtime(DeviceType type) {
  return runtimes[static_cast<int>(type)] != nullptr;
}

void copy_bytes(void* dst, Device dst_device, const void* src, Device src_device,
                std::size_t bytes) {
  if (bytes == 0) return;
  if (dst_device != src_device) check_not_capturing("a copy between the host and a device");
  if (dst_device.is_cpu() && src_device.is_cpu()) {
    std::memmove(dst, src, bytes);
  } else if (dst_device.is_cpu()) {
    runtime_for(src_device.type).copy_to_host(dst, src, bytes, src_device);
  } else if (src_device.is_cpu()) {
    runtime_for(dst_device.type).copy_from_host(dst, src, bytes, dst_device);
  } else if (dst_device == src_device) {
    runtime_for(dst_device.type).copy_within(dst, src, bytes, dst_device);
  } else {
    std::vector<unsigned char> staging(bytes);
    runtime_for(src_device.type).copy_to_host(staging.data(), src, bytes, src_device);
    runtime_for(dst_device.type).copy_from_host(dst, staging.data(), bytes, dst_device);
  }
}

}  // namespace md
