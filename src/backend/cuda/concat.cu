// The strided row copy behind concat along channels and its backward: each input is N rows of
// C_i·S contiguous elements inside rows of C·S elements of the output.
#include "backend/cuda/device_utils.cuh"
#include "backend/cuda/kernels.h"

namespace md::cuda::kernels {
namespace {

__global__ void copy_rows_kernel(const float* src, std::int64_t src_stride, float* dst,
                                 std::int64_t dst_stride, std::int64_t row_length,
                                 std::int64_t count, float beta) {
  MD_GRID_STRIDE_LOOP(i, count) {
    const std::int64_t row = i / row_length;
    const std::int64_t column = i - row * row_length;
    blend(&dst[row * dst_stride + column], src[row * src_stride + column], beta);
  }
}

}  // namespace

void copy_rows(const float* src, std::int64_t src_stride, float* dst, std::int64_t dst_stride,
               std::int64_t rows, std::int64_t row_length, float beta, cudaStream_t stream) {
  const std::int64_t count = rows * row_length;
  if (count == 0) return;
  copy_rows_kernel<<<grid_for(count), kBlockSize, 0, stream>>>(src, src_stride, dst, dst_stride,
                                                               row_length, count, beta);
  MD_CUDA_CHECK(cudaGetLastError());
}

}  // namespace md::cuda::kernels
