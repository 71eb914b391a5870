// Device-side helpers of the kernels: launch geometry for grid-stride loops, the blend of a
// gradient output, and block-wide reductions in a fixed order (deterministic results).
// Every kernel here runs with kBlockSize threads per block. Private to backend/cuda.
#pragma once

#include <cstdint>

#include "backend/cuda/cuda_check.h"

namespace md::cuda::kernels {

constexpr int kBlockSize = 256;

// Blocks for a grid-stride loop over `count` elements.
inline unsigned int grid_for(std::int64_t count) {
  constexpr std::int64_t max_blocks = 65535LL * 16;
  std::int64_t blocks = (count + kBlockSize - 1) / kBlockSize;
  if (blocks < 1) blocks = 1;
  return static_cast<unsigned int>(blocks < max_blocks ? blocks : max_blocks);
}

#define MD_GRID_STRIDE_LOOP(index, count)                                                     \
  for (std::int64_t index = static_cast<std::int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; \
       index < (count); index += static_cast<std::int64_t>(blockDim.x) * gridDim.x)

// dst = value + beta·dst; beta = 0 does not read dst.
__device__ __forceinline__ void blend(float* dst, float value, float beta) {
  *dst = beta == 0.0f ? value : value + beta * *dst;
}

// Sum over the block, returned to every thread. Safe to call repeatedly in one kernel.
template <typename T>
__device__ T block_sum(T value) {
  __shared__ T warp_values[kBlockSize / 32];
  __shared__ T total;
  const unsigned int lane = threadIdx.x % 32;
  const unsigned int warp = threadIdx.x / 32;
  for (int offset = 16; offset > 0; offset /= 2) {
    value += __shfl_down_sync(0xffffffffu, value, offset);
  }
  if (lane == 0) warp_values[warp] = value;
  __syncthreads();
  if (warp == 0) {
    value = lane < kBlockSize / 32 ? warp_values[lane] : T(0);
    for (int offset = 16; offset > 0; offset /= 2) {
      value += __shfl_down_sync(0xffffffffu, value, offset);
    }
    if (lane == 0) total = value;
  }
  __syncthreads();
  const T result = total;
  __syncthreads();
  return result;
}

// Maximum over the block, returned to every thread (NaN if any value is NaN).
__device__ inline float block_max(float value) {
  __shared__ float warp_values[kBlockSize / 32];
  __shared__ float total;
  const unsigned int lane = threadIdx.x % 32;
  const unsigned int warp = threadIdx.x / 32;
  for (int offset = 16; offset > 0; offset /= 2) {
    const float other = __shfl_down_sync(0xffffffffu, value, offset);
    value = (other > value || other != other) ? other : value;
  }
  if (lane == 0) warp_values[warp] = value;
  __syncthreads();
  if (warp == 0) {
    value = lane < kBlockSize / 32 ? warp_values[lane] : -INFINITY;
    for (int offset = 16; offset > 0; offset /= 2) {
      const float other = __shfl_down_sync(0xffffffffu, value, offset);
      value = (other > value || other != other) ? other : value;
    }
    if (lane == 0) total = value;
  }
  __syncthreads();
  const float result = total;
  __syncthreads();
  return result;
}

}  // namespace md::cuda::kernels
