// ReLU (and the add + ReLU epilogue of the fused batch norm) and sigmoid kernels: the per-element
// math of element_math.h, launched over any shape.
#include "backend/cuda/device_utils.cuh"
#include "backend/cuda/kernels.h"
#include "backend/element_math.h"

namespace md::cuda::kernels {
namespace {

__global__ void relu_forward_kernel(const float* x, float* y, std::int64_t count) {
  MD_GRID_STRIDE_LOOP(i, count) {
    y[i] = math::relu(x[i]);
  }
}

__global__ void relu_backward_kernel(const float* y, const float* grad_y, float* grad_x,
                                     std::int64_t count, float beta) {
  MD_GRID_STRIDE_LOOP(i, count) {
    blend(&grad_x[i], math::relu_grad(y[i], grad_y[i]), beta);
  }
}

__global__ void add_relu_forward_kernel(const float* x, const float* residual, float* y,
                                        std::int64_t count) {
  MD_GRID_STRIDE_LOOP(i, count) {
    y[i] = math::relu(residual != nullptr ? x[i] + residual[i] : x[i]);
  }
}

__global__ void sigmoid_forward_kernel(const float* x, float* y, std::int64_t count) {
  MD_GRID_STRIDE_LOOP(i, count) {
    y[i] = math::sigmoid(x[i]);
  }
}

__global__ void sigmoid_backward_kernel(const float* y, const float* grad_y, float* grad_x,
                                        std::int64_t count, float beta) {
  MD_GRID_STRIDE_LOOP(i, count) {
    blend(&grad_x[i], math::sigmoid_grad(y[i], grad_y[i]), beta);
  }
}

}  // namespace

void relu_forward(const float* x, float* y, std::int64_t count, cudaStream_t stream) {
  if (count == 0) return;
  relu_forward_kernel<<<grid_for(count), kBlockSize, 0, stream>>>(x, y, count);
  MD_CUDA_CHECK(cudaGetLastError());
}

void relu_backward(const float* y, const float* grad_y, float* grad_x, std::int64_t count,
                   float beta, cudaStream_t stream) {
  if (count == 0) return;
  relu_backward_kernel<<<grid_for(count), kBlockSize, 0, stream>>>(y, grad_y, grad_x, count, beta);
  MD_CUDA_CHECK(cudaGetLastError());
}

void add_relu_forward(const float* x, const float* residual, float* y, std::int64_t count,
                      cudaStream_t stream) {
  if (count == 0) return;
  add_relu_forward_kernel<<<grid_for(count), kBlockSize, 0, stream>>>(x, residual, y, count);
  MD_CUDA_CHECK(cudaGetLastError());
}

void sigmoid_forward(const float* x, float* y, std::int64_t count, cudaStream_t stream) {
  if (count == 0) return;
  sigmoid_forward_kernel<<<grid_for(count), kBlockSize, 0, stream>>>(x, y, count);
  MD_CUDA_CHECK(cudaGetLastError());
}

void sigmoid_backward(const float* y, const float* grad_y, float* grad_x, std::int64_t count,
                      float beta, cudaStream_t stream) {
  if (count == 0) return;
  sigmoid_backward_kernel<<<grid_for(count), kBlockSize, 0, stream>>>(y, grad_y, grad_x, count,
                                                                      beta);
  MD_CUDA_CHECK(cudaGetLastError());
}

}  // namespace md::cuda::kernels
