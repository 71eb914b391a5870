// Conversion kernels of the bf16 compute precision: float32 NCHW to bfloat16 NHWC (the layout
// cuDNN's bf16 tensor-core convolutions run fastest in) and back with a blend, as tiled
// transposes, and a flat float32 -> bfloat16 copy for GEMM operands. The rounding is
// math::to_bfloat16_bits, the one the CPU backend's emulation uses.
#include "backend/cuda/device_utils.cuh"
#include "backend/cuda/kernels.h"
#include "backend/element_math.h"

namespace md::cuda::kernels {
namespace {

// The layout changes are batched transposes of a (C, H·W) matrix per sample, through
// 32 x 32 tiles in shared memory so that both the reads and the writes are coalesced: a block
// of 32 x 8 threads (kBlockSize) moves one tile, each thread four of its elements. Samples
// beyond gridDim.z (65535) are taken by a loop.
constexpr int kTile = 32;
constexpr int kTileRows = kBlockSize / kTile;  // 8

dim3 tile_grid(const ImageExtents& extents) {
  const std::int64_t plane = extents.h * extents.w;
  const std::int64_t samples = extents.n < 65535 ? extents.n : 65535;
  return dim3(static_cast<unsigned int>((plane + kTile - 1) / kTile),
              static_cast<unsigned int>((extents.c + kTile - 1) / kTile),
              static_cast<unsigned int>(samples));
}

__global__ void nchw_to_nhwc_bfloat16_kernel(const float* x, std::uint16_t* y,
                                             ImageExtents extents) {
  __shared__ float tile[kTile][kTile + 1];  // +1: no bank conflicts on the transposed read
  const std::int64_t plane = extents.h * extents.w;
  const std::int64_t pixel0 = static_cast<std::int64_t>(blockIdx.x) * kTile;
  const std::int64_t channel0 = static_cast<std::int64_t>(blockIdx.y) * kTile;
  for (std::int64_t n = blockIdx.z; n < extents.n; n += gridDim.z) {
    const float* source = x + n * extents.c * plane;    // (C, H·W)
    std::uint16_t* target = y + n * plane * extents.c;  // (H·W, C)
    for (int row = threadIdx.y; row < kTile; row += kTileRows) {
      const std::int64_t channel = channel0 + row;
      const std::int64_t pixel = pixel0 + threadIdx.x;
      if (channel < extents.c && pixel < plane)
        tile[row][threadIdx.x] = source[channel * plane + pixel];
    }
    __syncthreads();
    for (int row = threadIdx.y; row < kTile; row += kTileRows) {
      const std::int64_t pixel = pixel0 + row;
      const std::int64_t channel = channel0 + threadIdx.x;
      if (pixel < plane && channel < extents.c) {
        target[pixel * extents.c + channel] = math::to_bfloat16_bits(tile[threadIdx.x][row]);
      }
    }
    __syncthreads();  // the tile is refilled for the next sample
  }
}

__global__ void nhwc_bfloat16_to_nchw_kernel(const std::uint16_t* x, float* y, ImageExtents extents,
                                             float beta) {
  __shared__ float tile[kTile][kTile + 1];
  const std::int64_t plane = extents.h * extents.w;
  const std::int64_t pixel0 = static_cast<std::int64_t>(blockIdx.x) * kTile;
  const std::int64_t channel0 = static_cast<std::int64_t>(blockIdx.y) * kTile;
  for (std::int64_t n = blockIdx.z; n < extents.n; n += gridDim.z) {
    const std::uint16_t* source = x + n * plane * extents.c;  // (H·W, C)
    float* target = y + n * extents.c * plane;                // (C, H·W)
    for (int row = threadIdx.y; row < kTile; row += kTileRows) {
      const std::int64_t pixel = pixel0 + row;
      const std::int64_t channel = channel0 + threadIdx.x;
      if (pixel < plane && channel < extents.c) {
        tile[row][threadIdx.x] = math::from_bfloat16_bits(source[pixel * extents.c + channel]);
      }
    }
    __syncthreads();
    for (int row = threadIdx.y; row < kTile; row += kTileRows) {
      const std::int64_t channel = channel0 + row;
      const std::int64_t pixel = pixel0 + threadIdx.x;
      if (channel < extents.c && pixel < plane) {
        blend(&target[channel * plane + pixel], tile[threadIdx.x][row], beta);
      }
    }
    __syncthreads();
  }
}

__global__ void to_bfloat16_kernel(const float* x, std::uint16_t* y, std::int64_t count) {
  MD_GRID_STRIDE_LOOP(i, count) {
    y[i] = math::to_bfloat16_bits(x[i]);
  }
}

std::int64_t element_count(const ImageExtents& extents) {
  return extents.n * extents.c * extents.h * extents.w;
}

}  // namespace

void nchw_to_nhwc_bfloat16(const float* x, std::uint16_t* y, const ImageExtents& extents,
                           cudaStream_t stream) {
  if (element_count(extents) == 0) return;
  nchw_to_nhwc_bfloat16_kernel<<<tile_grid(extents), dim3(kTile, kTileRows), 0, stream>>>(x, y,
                                                                                          extents);
  MD_CUDA_CHECK(cudaGetLastError());
}

void nhwc_bfloat16_to_nchw(const std::uint16_t* x, float* y, const ImageExtents& extents,
                           float beta, cudaStream_t stream) {
  if (element_count(extents) == 0) return;
  nhwc_bfloat16_to_nchw_kernel<<<tile_grid(extents), dim3(kTile, kTileRows), 0, stream>>>(
      x, y, extents, beta);
  MD_CUDA_CHECK(cudaGetLastError());
}

void to_bfloat16(const float* x, std::uint16_t* y, std::int64_t count, cudaStream_t stream) {
  if (count == 0) return;
  to_bfloat16_kernel<<<grid_for(count), kBlockSize, 0, stream>>>(x, y, count);
  MD_CUDA_CHECK(cudaGetLastError());
}

}  // namespace md::cuda::kernels
