// The caching allocator and the device contexts (see allocator.h).
#include "backend/cuda/allocator.h"

#include <array>
#include <bit>
#include <memory>
#include <string>

#include "backend/cuda/cuda_check.h"
#include "backend/cuda/handles.h"
#include "core/error.h"
#include "core/logging.h"

namespace md::cuda {

CachingAllocator::CachingAllocator(int device, cudaStream_t stream)
    : device_(device), stream_(stream) {}

std::size_t CachingAllocator::size_class(std::size_t bytes) {
  constexpr std::size_t minimum = 512;
  if (bytes <= minimum) return minimum;
  // The largest power of two not above bytes, then the first of 1, 1.25, 1.5, 1.75, 2 times it
  // that holds the request.
  const std::size_t power = std::bit_floor(bytes);
  const std::size_t quarter = power / 4;
  return power + (bytes - power + quarter - 1) / quarter * quarter;
}

void* CachingAllocator::allocate(std::size_t bytes) {
  if (bytes == 0) return nullptr;
  const std::size_t size = size_class(bytes);
  std::lock_guard<std::mutex> lock(mutex_);
  void* block = nullptr;
  auto cached = free_blocks_.find(size);
  if (cached != free_blocks_.end() && !cached->second.empty()) {
    block = cached->second.back();
    cached->second.pop_back();
    stats_.bytes_cached -= size;
  } else {
    DeviceGuard guard(device_);
    cudaError_t status = cudaMalloc(&block, size);
    if (status == cudaErrorMemoryAllocation) {
      cudaGetLastError();
      release_cached_locked();
      status = cudaMalloc(&block, size);
    }
    if (status != cudaSuccess) {
      cudaGetLastError();
      throw Error("cudaMalloc of " + std::to_string(size) + " bytes on cuda:" +
                  std::to_string(device_) + " failed: " + cudaGetErrorString(status) + " (" +
                  std::to_string(stats_.bytes_in_use) + " bytes in use by tensors)");
    }
    ++stats_.malloc_count;
  }
  live_blocks_.emplace(block, size);
  stats_.bytes_in_use += size;
  if (stats_.bytes_in_use > stats_.peak_bytes_in_use) {
    stats_.peak_bytes_in_use = stats_.bytes_in_use;
  }
  return block;
}

void CachingAllocator::deallocate(void* pointer) noexcept {
  if (pointer == nullptr) return;
  std::lock_guard<std::mutex> lock(mutex_);
  auto live = live_blocks_.find(pointer);
  if (live == live_blocks_.end()) {
    log_error("CUDA caching allocator on cuda:", device_, ": free of unknown pointer ", pointer);
    return;
  }
  const std::size_t size = live->second;
  live_blocks_.erase(live);
  stats_.bytes_in_use -= size;
  try {
    free_blocks_[size].push_back(pointer);
    stats_.bytes_cached += size;
  } catch (...) {
    // The free list could not grow: give the block back to the driver instead.
    MD_CUDA_LOG_ON_ERROR(cudaFree(pointer));
    ++stats_.free_count;
  }
}

void CachingAllocator::release_cached() {
  std::lock_guard<std::mutex> lock(mutex_);
  release_cached_locked();
}

void CachingAllocator::release_cached_locked() {
  DeviceGuard guard(device_);
  // Freed blocks may still be read or written by work queued before they were freed.
  MD_CUDA_CHECK(cudaStreamSynchronize(stream_));
  for (auto& [size, blocks] : free_blocks_) {
    for (void* block : blocks) {
      MD_CUDA_CHECK(cudaFree(block));
      ++stats_.free_count;
      stats_.bytes_cached -= size;
    }
    blocks.clear();
  }
  free_blocks_.clear();
}

AllocatorStats CachingAllocator::stats() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return stats_;
}

DeviceContext& device_context(int device) {
  static std::mutex contexts_mutex;
  static std::array<DeviceContext*, 64> contexts{};
  const int count = device_count();
  MD_CHECK(device >= 0 && device < count && device < static_cast<int>(contexts.size()),
           "cuda:", device, " is not available (this process sees ", count, " CUDA devices)");
  std::lock_guard<std::mutex> lock(contexts_mutex);
  DeviceContext*& context = contexts[static_cast<std::size_t>(device)];
  if (context == nullptr) {
    DeviceGuard guard(device);
    auto created = std::make_unique<DeviceContext>();
    created->device = device;
    MD_CUDA_CHECK(cudaStreamCreateWithFlags(&created->stream, cudaStreamNonBlocking));
    created->allocator = new CachingAllocator(device, created->stream);
    context = created.release();
  }
  return *context;
}

}  // namespace md::cuda
