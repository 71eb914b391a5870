// Conversion kernels of the bf16 compute precision: float32 NCHW to bfloat16 NHWC (the layout
// cuDNN's bf16 tensor-core convolutions run fastest in) and back with a blend, and a flat
// float32 -> bfloat16 copy for GEMM operands. The rounding is math::to_bfloat16_bits, the one
// the CPU backend's emulation uses.
#include "backend/cuda/device_utils.cuh"
#include "backend/cuda/kernels.h"
#include "backend/element_math.h"

namespace md::cuda::kernels {
namespace {

// Each thread writes one NHWC element, reading the NCHW element it comes from.
__global__ void nchw_to_nhwc_bfloat16_kernel(const float* x, std::uint16_t* y,
                                             ImageExtents extents, std::int64_t count) {
  MD_GRID_STRIDE_LOOP(i, count) {
    const std::int64_t c = i % extents.c;
    const std::int64_t pixel = i / extents.c;  // n·H·W + h·W + w
    const std::int64_t plane = extents.h * extents.w;
    const std::int64_t n = pixel / plane;
    const std::int64_t within = pixel % plane;
    y[i] = math::to_bfloat16_bits(x[(n * extents.c + c) * plane + within]);
  }
}

// Each thread writes one NCHW element, reading the NHWC element it comes from.
__global__ void nhwc_bfloat16_to_nchw_kernel(const std::uint16_t* x, float* y,
                                             ImageExtents extents, std::int64_t count,
                                             float beta) {
  MD_GRID_STRIDE_LOOP(i, count) {
    const std::int64_t plane = extents.h * extents.w;
    const std::int64_t within = i % plane;
    const std::int64_t nc = i / plane;
    const std::int64_t c = nc % extents.c;
    const std::int64_t n = nc / extents.c;
    blend(&y[i], math::from_bfloat16_bits(x[(n * plane + within) * extents.c + c]), beta);
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
  const std::int64_t count = element_count(extents);
  if (count == 0) return;
  nchw_to_nhwc_bfloat16_kernel<<<grid_for(count), kBlockSize, 0, stream>>>(x, y, extents, count);
  MD_CUDA_CHECK(cudaGetLastError());
}

void nhwc_bfloat16_to_nchw(const std::uint16_t* x, float* y, const ImageExtents& extents,
                           float beta, cudaStream_t stream) {
  const std::int64_t count = element_count(extents);
  if (count == 0) return;
  nhwc_bfloat16_to_nchw_kernel<<<grid_for(count), kBlockSize, 0, stream>>>(x, y, extents, count,
                                                                          beta);
  MD_CUDA_CHECK(cudaGetLastError());
}

void to_bfloat16(const float* x, std::uint16_t* y, std::int64_t count, cudaStream_t stream) {
  if (count == 0) return;
  to_bfloat16_kernel<<<grid_for(count), kBlockSize, 0, stream>>>(x, y, count);
  MD_CUDA_CHECK(cudaGetLastError());
}

}  // namespace md::cuda::kernels
