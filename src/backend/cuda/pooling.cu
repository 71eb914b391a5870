// Global average pooling kernels (the windowed pools run through cuDNN in pooling.cpp).
// Forward: one warp per (n, c) plane, summed in double in a fixed order.
#include "backend/cuda/device_utils.cuh"
#include "backend/cuda/kernels.h"

namespace md::cuda::kernels {
namespace {

constexpr int kWarpsPerBlock = kBlockSize / 32;

__global__ void global_avg_pool_forward_kernel(const float* x, float* y, std::int64_t planes,
                                               std::int64_t plane_size) {
  const std::int64_t plane =
      static_cast<std::int64_t>(blockIdx.x) * kWarpsPerBlock + threadIdx.x / 32;
  const unsigned int lane = threadIdx.x % 32;
  if (plane >= planes) return;
  const float* source = x + plane * plane_size;
  double accumulated = 0.0;
  for (std::int64_t i = lane; i < plane_size; i += 32) accumulated += source[i];
  for (int offset = 16; offset > 0; offset /= 2) {
    accumulated += __shfl_down_sync(0xffffffffu, accumulated, offset);
  }
  if (lane == 0) y[plane] = static_cast<float>(accumulated / static_cast<double>(plane_size));
}

__global__ void global_avg_pool_backward_kernel(const float* grad_y, float* grad_x,
                                                std::int64_t count, std::int64_t plane_size,
                                                float beta) {
  const float scale = 1.0f / static_cast<float>(plane_size);
  MD_GRID_STRIDE_LOOP(i, count) {
    blend(&grad_x[i], grad_y[i / plane_size] * scale, beta);
  }
}

}  // namespace

void global_avg_pool_forward(const float* x, float* y, std::int64_t planes, std::int64_t plane_size,
                             cudaStream_t stream) {
  if (planes == 0 || plane_size == 0) return;
  const std::int64_t blocks = (planes + kWarpsPerBlock - 1) / kWarpsPerBlock;
  global_avg_pool_forward_kernel<<<static_cast<unsigned int>(blocks), kBlockSize, 0, stream>>>(
      x, y, planes, plane_size);
  MD_CUDA_CHECK(cudaGetLastError());
}

void global_avg_pool_backward(const float* grad_y, float* grad_x, std::int64_t planes,
                              std::int64_t plane_size, float beta, cudaStream_t stream) {
  const std::int64_t count = planes * plane_size;
  if (count == 0) return;
  global_avg_pool_backward_kernel<<<grid_for(count), kBlockSize, 0, stream>>>(grad_y, grad_x, count,
                                                                              plane_size, beta);
  MD_CUDA_CHECK(cudaGetLastError());
}

}  // namespace md::cuda::kernels
