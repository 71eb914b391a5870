// The caching device allocator and the per-device context (stream + allocator) shared by the
// CUDA runtime (tensor storage, copies) and the CUDA backend (ops, workspaces).
// Freed blocks go to an exact size-class free list and are handed out again for the same
// class, so a repeated training step makes no cudaMalloc or cudaFree after its first run.
// All work of a device is on its one stream, so a block freed on the host may be reused by
// later work at once: the stream orders the new use after the old one. Blocks go back to the
// driver only after the stream has drained (release_cached, or on an out-of-memory retry).
// Recorded work (graph.cpp) gets a private pool: while a capture runs, blocks come from and go
// back to the pool's own free lists, and they stay there after it, so no other work is ever
// handed memory that a replay of the graph writes. The pool's blocks rejoin the shared free
// lists when the graph is destroyed (release_pool).
// Private to backend/cuda.
#pragma once

#include <cuda_runtime_api.h>

#include <cstddef>
#include <cstdint>
#include <map>
#include <mutex>
#include <unordered_map>
#include <vector>

#include "backend/cuda/cuda_backend.h"

namespace md::cuda {

class CachingAllocator {
 public:
  CachingAllocator(int device, cudaStream_t stream);
  CachingAllocator(const CachingAllocator&) = delete;
  CachingAllocator& operator=(const CachingAllocator&) = delete;

  // nullptr for 0 bytes; throws md::Error when the device is out of memory even after the
  // cached blocks were released.
  void* allocate(std::size_t bytes);
  void deallocate(void* pointer) noexcept;
  void release_cached();
  AllocatorStats stats() const;

  // ---- private pools of recorded work. Between begin_capture and end_capture every allocation
  // comes from the new pool and every block freed goes back to it; a shared block freed then
  // is held by the pool instead (recorded work may still use it). After end_capture, freed
  // blocks of the pool return to the pool. release_pool moves all of the pool's free and held
  // blocks to the shared free lists (its graph is gone); blocks of it still in use return there
  // when freed. One capture at a time per allocator.
  using PoolId = std::uint64_t;
  PoolId begin_capture();
  void end_capture();
  void release_pool(PoolId pool) noexcept;

  // The size class of a request: 512 bytes at least, then steps of a quarter power of two,
  // so at most a quarter of a block is padding.
  static std::size_t size_class(std::size_t bytes);

 private:
  using FreeLists = std::map<std::size_t, std::vector<void*>>;  // size class -> blocks
  struct LiveBlock {
    std::size_t size = 0;  // size class
    PoolId pool = 0;       // 0: shared
  };
  struct Pool {
    FreeLists free_blocks;
    FreeLists held_blocks;  // shared blocks freed during the capture
  };

  void release_cached_locked();
  void* device_malloc_locked(std::size_t size);

  int device_;
  cudaStream_t stream_;
  mutable std::mutex mutex_;
  FreeLists free_blocks_;
  std::unordered_map<void*, LiveBlock> live_blocks_;
  std::map<PoolId, Pool> pools_;
  PoolId capturing_ = 0;  // the pool of the capture running, 0 when none
  PoolId next_pool_ = 1;
  AllocatorStats stats_;
};

// One per device, created on first use and kept for the life of the process (the CUDA
// runtime may be torn down before static destructors run, so it is never destroyed).
struct DeviceContext {
  int device = 0;
  cudaStream_t stream = nullptr;
  CachingAllocator* allocator = nullptr;
};
// Throws md::Error for an index outside [0, device_count()).
DeviceContext& device_context(int device);

// A block of device memory from the caching allocator for the duration of one op (cuDNN
// workspaces, reduction partials). Move-only.
class DeviceBuffer {
 public:
  DeviceBuffer() = default;
  DeviceBuffer(CachingAllocator& allocator, std::size_t bytes)
      : allocator_(&allocator), data_(allocator.allocate(bytes)), bytes_(bytes) {}
  ~DeviceBuffer() {
    if (allocator_ != nullptr) allocator_->deallocate(data_);
  }
  DeviceBuffer(DeviceBuffer&& other) noexcept
      : allocator_(other.allocator_), data_(other.data_), bytes_(other.bytes_) {
    other.allocator_ = nullptr;
    other.data_ = nullptr;
    other.bytes_ = 0;
  }
  DeviceBuffer& operator=(DeviceBuffer&&) = delete;
  DeviceBuffer(const DeviceBuffer&) = delete;
  DeviceBuffer& operator=(const DeviceBuffer&) = delete;

  void* data() const { return data_; }
  template <typename T>
  T* as() const {
    return static_cast<T*>(data_);
  }
  std::size_t bytes() const { return bytes_; }

 private:
  CachingAllocator* allocator_ = nullptr;
  void* data_ = nullptr;
  std::size_t bytes_ = 0;
};

}  // namespace md::cuda
