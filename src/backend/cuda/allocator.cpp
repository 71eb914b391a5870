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
  FreeLists& free_lists = capturing_ != 0 ? pools_.at(capturing_).free_blocks : free_blocks_;
  void* block = nullptr;
  auto cached = free_lists.find(size);
  if (cached != free_lists.end() && !cached->second.empty()) {
    block = cached->second.back();
    cached->second.pop_back();
    stats_.bytes_cached -= size;
  } else {
    block = device_malloc_locked(size);
  }
  live_blocks_.emplace(block, LiveBlock{size, capturing_});
  stats_.bytes_in_use += size;
  if (stats_.bytes_in_use > stats_.peak_bytes_in_use) {
    stats_.peak_bytes_in_use = stats_.bytes_in_use;
  }
  return block;
}

void* CachingAllocator::device_malloc_locked(std::size_t size) {
  DeviceGuard guard(device_);
  // cudaMalloc is not stream-ordered, so a capture in the default (thread-local) mode would
  // refuse it. Here it is safe: the block stays reserved for the graph (its pool) for as long as
  // the graph lives, so the address the recorded work uses stays valid.
  cudaStreamCaptureMode mode = cudaStreamCaptureModeRelaxed;
  if (capturing_ != 0) MD_CUDA_CHECK(cudaThreadExchangeStreamCaptureMode(&mode));
  void* block = nullptr;
  cudaError_t status = cudaMalloc(&block, size);
  // Releasing the cache synchronizes the stream, which a capture forbids.
  if (status == cudaErrorMemoryAllocation && capturing_ == 0) {
    cudaGetLastError();
    release_cached_locked();
    status = cudaMalloc(&block, size);
  }
  if (capturing_ != 0) MD_CUDA_CHECK(cudaThreadExchangeStreamCaptureMode(&mode));
  if (status != cudaSuccess) {
    cudaGetLastError();
    throw Error(
        "cudaMalloc of " + std::to_string(size) + " bytes on cuda:" + std::to_string(device_) +
        " failed: " + cudaGetErrorString(status) + " (" + std::to_string(stats_.bytes_in_use) +
        " bytes in use by tensors" + (capturing_ != 0 ? ", during a graph capture" : "") + ")");
  }
  ++stats_.malloc_count;
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
  const LiveBlock block = live->second;
  live_blocks_.erase(live);
  stats_.bytes_in_use -= block.size;
  try {
    auto pool = pools_.find(block.pool);
    if (block.pool != 0 && pool != pools_.end()) {
      pool->second.free_blocks[block.size].push_back(pointer);
    } else if (capturing_ != 0) {
      pools_.at(capturing_).held_blocks[block.size].push_back(pointer);
    } else {
      free_blocks_[block.size].push_back(pointer);
    }
    stats_.bytes_cached += block.size;
  } catch (...) {
    // The free list could not grow. Outside a capture the block goes back to the driver; during
    // one it is leaked rather than freed under work that may still use it.
    if (capturing_ == 0) {
      MD_CUDA_LOG_ON_ERROR(cudaFree(pointer));
      ++stats_.free_count;
    }
  }
}

CachingAllocator::PoolId CachingAllocator::begin_capture() {
  std::lock_guard<std::mutex> lock(mutex_);
  MD_CHECK(capturing_ == 0, "cuda:", device_, ": a graph capture is already running");
  const PoolId pool = next_pool_++;
  pools_.emplace(pool, Pool{});
  capturing_ = pool;
  return pool;
}

void CachingAllocator::end_capture() {
  std::lock_guard<std::mutex> lock(mutex_);
  capturing_ = 0;
}

void CachingAllocator::release_pool(PoolId pool) noexcept {
  std::lock_guard<std::mutex> lock(mutex_);
  auto found = pools_.find(pool);
  if (found == pools_.end()) return;
  if (capturing_ == pool) capturing_ = 0;
  try {
    for (FreeLists* lists : {&found->second.free_blocks, &found->second.held_blocks}) {
      for (auto& [size, blocks] : *lists) {
        std::vector<void*>& shared = free_blocks_[size];
        shared.insert(shared.end(), blocks.begin(), blocks.end());
      }
    }
  } catch (...) {
    // Blocks not yet copied are leaked with the pool, never handed out twice.
    log_error("CUDA caching allocator on cuda:", device_,
              ": some blocks of a released graph pool could not rejoin the free lists");
  }
  pools_.erase(found);
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
