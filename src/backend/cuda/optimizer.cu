// SGD and Adam over whole flat buffers; the update of one element is element_math.h's.
#include "backend/cuda/device_utils.cuh"
#include "backend/cuda/kernels.h"
#include "backend/element_math.h"

namespace md::cuda::kernels {
namespace {

__global__ void sgd_kernel(float* param, const float* grad, float* momentum_buffer,
                           std::int64_t count, SgdStep step) {
  // Without momentum the buffer may be absent (null); sgd_step then does not touch it.
  MD_GRID_STRIDE_LOOP(i, count) {
    float buffer = momentum_buffer != nullptr ? momentum_buffer[i] : 0.0f;
    math::sgd_step(param[i], grad[i], buffer, step.learning_rate, step.momentum, step.weight_decay,
                   step.nesterov);
    if (momentum_buffer != nullptr) momentum_buffer[i] = buffer;
  }
}

__global__ void adam_kernel(float* param, const float* grad, float* exp_avg, float* exp_avg_sq,
                            std::int64_t count, AdamStep step) {
  MD_GRID_STRIDE_LOOP(i, count) {
    math::adam_step(param[i], grad[i], exp_avg[i], exp_avg_sq[i], step);
  }
}

}  // namespace

void sgd_update(float* param, const float* grad, float* momentum_buffer, std::int64_t count,
                const SgdStep& step, cudaStream_t stream) {
  if (count == 0) return;
  sgd_kernel<<<grid_for(count), kBlockSize, 0, stream>>>(param, grad, momentum_buffer, count, step);
  MD_CUDA_CHECK(cudaGetLastError());
}

void adam_update(float* param, const float* grad, float* exp_avg, float* exp_avg_sq,
                 std::int64_t count, const AdamStep& step, cudaStream_t stream) {
  if (count == 0) return;
  adam_kernel<<<grid_for(count), kBlockSize, 0, stream>>>(param, grad, exp_avg, exp_avg_sq, count,
                                                          step);
  MD_CUDA_CHECK(cudaGetLastError());
}

}  // namespace md::cuda::kernels
