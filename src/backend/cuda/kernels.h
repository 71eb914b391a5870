// Launchers of the CUDA backend's own kernels (the *.cu files of this folder), called by the
// op files with raw device pointers. Plain C++ on this side, so the op files compile with the
// host compiler and its warnings, and the .cu files stay small. Gradient outputs take a blend
// factor `beta` as cuDNN does: dst = result + beta·dst, and beta = 0 never reads dst (so NaN
// in an uninitialized output does not leak). All launches are asynchronous on `stream` and
// check the launch. Private to backend/cuda.
#pragma once

#include <cuda_runtime_api.h>

#include <cstdint>

#include "backend/element_math.h"

namespace md::cuda::kernels {

// ---- activation.cu (any shape, `count` elements)
void relu_forward(const float* x, float* y, std::int64_t count, cudaStream_t stream);
void relu_backward(const float* y, const float* grad_y, float* grad_x, std::int64_t count,
                   float beta, cudaStream_t stream);
// y = relu(x + residual), or relu(x) when residual is null; y may be x (in place).
void add_relu_forward(const float* x, const float* residual, float* y, std::int64_t count,
                      cudaStream_t stream);
void sigmoid_forward(const float* x, float* y, std::int64_t count, cudaStream_t stream);
void sigmoid_backward(const float* y, const float* grad_y, float* grad_x, std::int64_t count,
                      float beta, cudaStream_t stream);

// ---- convert.cu: the bfloat16 operands of MathMode::Bf16, as raw bits (math::to_bfloat16_bits).
struct ImageExtents {
  std::int64_t n = 0;
  std::int64_t c = 0;
  std::int64_t h = 0;
  std::int64_t w = 0;
};
// x: float32 NCHW -> y: bfloat16 NHWC, each value rounded to nearest even.
void nchw_to_nhwc_bfloat16(const float* x, std::uint16_t* y, const ImageExtents& extents,
                           cudaStream_t stream);
// x: bfloat16 NHWC -> y: float32 NCHW, y = x + beta·y (beta = 0 does not read y).
void nhwc_bfloat16_to_nchw(const std::uint16_t* x, float* y, const ImageExtents& extents,
                           float beta, cudaStream_t stream);
// y[i] = bfloat16(x[i]) over a flat buffer.
void to_bfloat16(const float* x, std::uint16_t* y, std::int64_t count, cudaStream_t stream);

// ---- elementwise.cu
void fill(float* y, float value, std::int64_t count, cudaStream_t stream);
void fill(std::int32_t* y, std::int32_t value, std::int64_t count, cudaStream_t stream);
void add(const float* a, const float* b, float* y, std::int64_t count, cudaStream_t stream);
void mul(const float* a, const float* b, float* y, std::int64_t count, float beta,
         cudaStream_t stream);
// y = alpha·x + beta·y; beta = 0 does not read y.
void axpby(float alpha, const float* x, float beta, float* y, std::int64_t count,
           cudaStream_t stream);

// Reductions in two deterministic passes: the *_partials launchers write one partial per block
// (blocks = reduction_blocks(count)) and finish_sum adds them in a fixed order.
int reduction_blocks(std::int64_t count);
void sum_partials(const float* x, std::int64_t count, double* partials, int blocks,
                  cudaStream_t stream);
void sum_partials(const double* x, std::int64_t count, double* partials, int blocks,
                  cudaStream_t stream);
void dot_partials(const float* a, const float* b, std::int64_t count, double* partials, int blocks,
                  cudaStream_t stream);
// sum of (a[i] - b[i])²
void squared_difference_partials(const float* a, const float* b, std::int64_t count,
                                 double* partials, int blocks, cudaStream_t stream);
// count of NaN or infinite x[i], as doubles (exact below 2^53)
void nonfinite_partials(const float* x, std::int64_t count, double* partials, int blocks,
                        cudaStream_t stream);
// scale · sum(partials) into *result_double and/or *result_float (either may be null).
void finish_sum(const double* partials, int blocks, double scale, double* result_double,
                float* result_float, cudaStream_t stream);

// ---- pooling.cu: x as `planes` = N·C planes of `plane_size` = H·W elements
void global_avg_pool_forward(const float* x, float* y, std::int64_t planes, std::int64_t plane_size,
                             cudaStream_t stream);
void global_avg_pool_backward(const float* grad_y, float* grad_x, std::int64_t planes,
                              std::int64_t plane_size, float beta, cudaStream_t stream);

// ---- resize.cu: `planes` = N·C planes of (in_height, in_width) -> (out_height, out_width)
struct ResizeGeometry {
  std::int64_t planes = 0;
  std::int64_t in_height = 0;
  std::int64_t in_width = 0;
  std::int64_t out_height = 0;
  std::int64_t out_width = 0;
};
void resize_nearest_forward(const float* x, float* y, const ResizeGeometry& geometry,
                            cudaStream_t stream);
void resize_bilinear_forward(const float* x, float* y, const ResizeGeometry& geometry,
                             cudaStream_t stream);
// Gathers, per input element, the output gradients that read it: deterministic, no atomics.
void resize_nearest_backward(const float* grad_y, float* grad_x, const ResizeGeometry& geometry,
                             float beta, cudaStream_t stream);
void resize_bilinear_backward(const float* grad_y, float* grad_x, const ResizeGeometry& geometry,
                              float beta, cudaStream_t stream);

// ---- concat.cu: dst[r·dst_stride + j] = src[r·src_stride + j] + beta·dst[...], j < row_length
void copy_rows(const float* src, std::int64_t src_stride, float* dst, std::int64_t dst_stride,
               std::int64_t rows, std::int64_t row_length, float beta, cudaStream_t stream);

// ---- loss.cu: logits (rows, classes); labels int32. A label outside [0, classes) gives a NaN
// loss and NaN gradients for its row (the CUDA backend cannot throw from a kernel).
void cross_entropy_rows(const float* logits, const std::int32_t* labels, std::int64_t rows,
                        std::int64_t classes, double label_smoothing, double* row_losses,
                        cudaStream_t stream);
// grad_logits = grad_loss[0] / rows · (softmax(logits) − target) + beta·grad_logits
void cross_entropy_backward(const float* logits, const std::int32_t* labels, const float* grad_loss,
                            std::int64_t rows, std::int64_t classes, double label_smoothing,
                            float* grad_logits, float beta, cudaStream_t stream);
// row_losses[n] = T² · KL(softmax(teacher[n]/T) ‖ softmax(student[n]/T))
void kl_div_rows(const float* student, const float* teacher, std::int64_t rows,
                 std::int64_t classes, double temperature, double* row_losses, cudaStream_t stream);
// Either gradient pointer may be null (not wanted).
void kl_div_backward(const float* student, const float* teacher, const float* grad_loss,
                     std::int64_t rows, std::int64_t classes, double temperature,
                     float* grad_student, float* grad_teacher, float beta, cudaStream_t stream);
// grad_a = 2·grad_loss[0]/count·(a − b), grad_b = −grad_a (either may be null), blended by beta
void mse_backward(const float* a, const float* b, const float* grad_loss, std::int64_t count,
                  float* grad_a, float* grad_b, float beta, cudaStream_t stream);

// ---- optimizer.cu (whole flat buffers, math from element_math.h)
struct SgdStep {
  float learning_rate = 0.0f;
  float momentum = 0.0f;
  float weight_decay = 0.0f;
  bool nesterov = false;
};
void sgd_update(float* param, const float* grad, float* momentum_buffer, std::int64_t count,
                const SgdStep& step, cudaStream_t stream);
using AdamStep = math::AdamCoefficients<float>;
void adam_update(float* param, const float* grad, float* exp_avg, float* exp_avg_sq,
                 std::int64_t count, const AdamStep& step, cudaStream_t stream);

// ---- augment.cu: out (batch, C, H, W) from pixels (set_count, C, H, W) uint8, draws
// (batch, AugmentDrawColumn::count) int32, table (C, 256); math::augmented_value per element.
// A sample whose source index is outside [0, set_count) is written as NaN.
struct AugmentLaunch {
  math::AugmentGeometry geometry;
  std::int64_t set_count = 0;
  std::int64_t batch = 0;
};
void augment_images(const std::uint8_t* pixels, const std::int32_t* draws, const float* table,
                    float* out, const AugmentLaunch& launch, cudaStream_t stream);

}  // namespace md::cuda::kernels
