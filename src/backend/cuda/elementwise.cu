// Elementwise kernels (fill, add, mul, axpby) and the two-pass deterministic reductions behind
// dot, sum, count_nonfinite and the loss means.
#include "backend/cuda/device_utils.cuh"
#include "backend/cuda/kernels.h"

namespace md::cuda::kernels {
namespace {

constexpr int kMaxReductionBlocks = 1024;

__global__ void fill_kernel(float* y, float value, std::int64_t count) {
  MD_GRID_STRIDE_LOOP(i, count) {
    y[i] = value;
  }
}

__global__ void fill_int32_kernel(std::int32_t* y, std::int32_t value, std::int64_t count) {
  MD_GRID_STRIDE_LOOP(i, count) {
    y[i] = value;
  }
}

__global__ void add_kernel(const float* a, const float* b, float* y, std::int64_t count) {
  MD_GRID_STRIDE_LOOP(i, count) {
    y[i] = a[i] + b[i];
  }
}

__global__ void mul_kernel(const float* a, const float* b, float* y, std::int64_t count,
                           float beta) {
  MD_GRID_STRIDE_LOOP(i, count) {
    blend(&y[i], a[i] * b[i], beta);
  }
}

__global__ void axpby_kernel(float alpha, const float* x, float beta, float* y,
                             std::int64_t count) {
  MD_GRID_STRIDE_LOOP(i, count) {
    blend(&y[i], alpha * x[i], beta);
  }
}

// Each block adds its grid-stride share of term(i) in double and writes one partial.
template <typename Term>
__global__ void partials_kernel(Term term, std::int64_t count, double* partials) {
  double accumulated = 0.0;
  MD_GRID_STRIDE_LOOP(i, count) {
    accumulated += term(i);
  }
  accumulated = block_sum(accumulated);
  if (threadIdx.x == 0) partials[blockIdx.x] = accumulated;
}

struct FloatTerm {
  const float* x;
  __device__ double operator()(std::int64_t i) const { return static_cast<double>(x[i]); }
};
struct DoubleTerm {
  const double* x;
  __device__ double operator()(std::int64_t i) const { return x[i]; }
};
struct ProductTerm {
  const float* a;
  const float* b;
  __device__ double operator()(std::int64_t i) const {
    return static_cast<double>(a[i]) * static_cast<double>(b[i]);
  }
};
struct SquaredDifferenceTerm {
  const float* a;
  const float* b;
  __device__ double operator()(std::int64_t i) const {
    const double difference = static_cast<double>(a[i]) - static_cast<double>(b[i]);
    return difference * difference;
  }
};
struct NonfiniteTerm {
  const float* x;
  __device__ double operator()(std::int64_t i) const { return isfinite(x[i]) ? 0.0 : 1.0; }
};

template <typename Term>
void launch_partials(const Term& term, std::int64_t count, double* partials, int blocks,
                     cudaStream_t stream) {
  partials_kernel<<<static_cast<unsigned int>(blocks), kBlockSize, 0, stream>>>(term, count,
                                                                                partials);
  MD_CUDA_CHECK(cudaGetLastError());
}

__global__ void finish_sum_kernel(const double* partials, int blocks, double scale,
                                  double* result_double, float* result_float) {
  double accumulated = 0.0;
  for (int i = static_cast<int>(threadIdx.x); i < blocks; i += kBlockSize) {
    accumulated += partials[i];
  }
  accumulated = block_sum(accumulated) * scale;
  if (threadIdx.x == 0) {
    if (result_double != nullptr) *result_double = accumulated;
    if (result_float != nullptr) *result_float = static_cast<float>(accumulated);
  }
}

}  // namespace

void fill(float* y, float value, std::int64_t count, cudaStream_t stream) {
  if (count == 0) return;
  fill_kernel<<<grid_for(count), kBlockSize, 0, stream>>>(y, value, count);
  MD_CUDA_CHECK(cudaGetLastError());
}

void fill(std::int32_t* y, std::int32_t value, std::int64_t count, cudaStream_t stream) {
  if (count == 0) return;
  fill_int32_kernel<<<grid_for(count), kBlockSize, 0, stream>>>(y, value, count);
  MD_CUDA_CHECK(cudaGetLastError());
}

void add(const float* a, const float* b, float* y, std::int64_t count, cudaStream_t stream) {
  if (count == 0) return;
  add_kernel<<<grid_for(count), kBlockSize, 0, stream>>>(a, b, y, count);
  MD_CUDA_CHECK(cudaGetLastError());
}

void mul(const float* a, const float* b, float* y, std::int64_t count, float beta,
         cudaStream_t stream) {
  if (count == 0) return;
  mul_kernel<<<grid_for(count), kBlockSize, 0, stream>>>(a, b, y, count, beta);
  MD_CUDA_CHECK(cudaGetLastError());
}

void axpby(float alpha, const float* x, float beta, float* y, std::int64_t count,
           cudaStream_t stream) {
  if (count == 0) return;
  axpby_kernel<<<grid_for(count), kBlockSize, 0, stream>>>(alpha, x, beta, y, count);
  MD_CUDA_CHECK(cudaGetLastError());
}

int reduction_blocks(std::int64_t count) {
  const std::int64_t blocks = (count + kBlockSize - 1) / kBlockSize;
  if (blocks < 1) return 1;
  return static_cast<int>(blocks < kMaxReductionBlocks ? blocks : kMaxReductionBlocks);
}

void sum_partials(const float* x, std::int64_t count, double* partials, int blocks,
                  cudaStream_t stream) {
  launch_partials(FloatTerm{x}, count, partials, blocks, stream);
}

void sum_partials(const double* x, std::int64_t count, double* partials, int blocks,
                  cudaStream_t stream) {
  launch_partials(DoubleTerm{x}, count, partials, blocks, stream);
}

void dot_partials(const float* a, const float* b, std::int64_t count, double* partials, int blocks,
                  cudaStream_t stream) {
  launch_partials(ProductTerm{a, b}, count, partials, blocks, stream);
}

void squared_difference_partials(const float* a, const float* b, std::int64_t count,
                                 double* partials, int blocks, cudaStream_t stream) {
  launch_partials(SquaredDifferenceTerm{a, b}, count, partials, blocks, stream);
}

void nonfinite_partials(const float* x, std::int64_t count, double* partials, int blocks,
                        cudaStream_t stream) {
  launch_partials(NonfiniteTerm{x}, count, partials, blocks, stream);
}

void finish_sum(const double* partials, int blocks, double scale, double* result_double,
                float* result_float, cudaStream_t stream) {
  finish_sum_kernel<<<1, kBlockSize, 0, stream>>>(partials, blocks, scale, result_double,
                                                  result_float);
  MD_CUDA_CHECK(cudaGetLastError());
}

}  // namespace md::cuda::kernels
