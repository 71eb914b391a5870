// Memory of one device type: allocation and copies. core knows only the CPU; the CUDA backend
// registers its runtime (a caching allocator on one stream per device) at backend::init().
// Nothing here knows CUDA, so every file outside backend/cuda compiles without nvcc.
#pragma once

#include <cstddef>

#include "core/device.h"

namespace md {

class DeviceRuntime {
 public:
  virtual ~DeviceRuntime() = default;
  virtual void* allocate(std::size_t bytes, Device device) = 0;
  // Never throws: releasing memory happens in destructors.
  virtual void deallocate(void* pointer, std::size_t bytes, Device device) noexcept = 0;
  // Copies between this device type and the host or within this device type. Synchronous
  // with respect to the host for copies to the host.
  virtual void copy_to_host(void* host_dst, const void* src, std::size_t bytes, Device device) = 0;
  virtual void copy_from_host(void* dst, const void* host_src, std::size_t bytes,
                              Device device) = 0;
  virtual void copy_within(void* dst, const void* src, std::size_t bytes, Device device) = 0;
  // Sets `count` elements of `element_bytes` bytes each at dst to the host value `element`.
  // This default fills a host buffer and copies it; a device may do better (the CUDA runtime
  // sets memory on its stream, with no host buffer to copy from).
  virtual void fill(void* dst, const void* element, std::size_t element_bytes, std::size_t count,
                    Device device);
  virtual void synchronize(Device device) = 0;
};

// The runtime for a device type; throws md::Error when none is registered (no CUDA build).
DeviceRuntime& runtime_for(DeviceType type);
void register_runtime(DeviceType type, DeviceRuntime* runtime);
bool has_runtime(DeviceType type);

// Copies bytes between any two devices through the host when needed.
void copy_bytes(void* dst, Device dst_device, const void* src, Device src_device,
                std::size_t bytes);

}  // namespace md
