// Winograd F(2x2, 3x3) convolutions of the CPU backend: 3x3, stride 1, dilation 1, one group,
// float32, channel counts large enough to pay (winograd_applies). conv2d.cpp routes such
// convolutions here and keeps im2col + GEMM for everything else (and for float64, so that the
// float64 gradient checks keep testing the general path).
//
// Each pass is a transform of 4x4 input tiles, 16 GEMMs (one per transform position) on blocks
// of tiles whose size depends only on the shapes, and a transform back. Blocks write disjoint
// outputs, and the filter gradient sums blocks in fixed slices added in a fixed order, so the
// results are bit-identical for every thread count. This file must not change that: no split
// may depend on the thread count.
#pragma once

#include <cstdint>

#include "backend/params.h"

namespace md::cpu {

// The forward convolution x: (N, C, H, W) * weight: (O, C, 3, 3) -> y: (N, O, Ho, Wo) with
// Ho = H + 2·padding − 2, Wo = W + 2·padding − 2.
struct WinogradShape {
  std::int64_t batch = 0;
  std::int64_t in_channels = 0;
  std::int64_t in_height = 0;
  std::int64_t in_width = 0;
  std::int64_t out_channels = 0;
  std::int64_t out_height = 0;
  std::int64_t out_width = 0;
  std::int64_t padding = 0;
};

// Channel product C·O from which Winograd beats im2col + GEMM (measured at 1 thread, batch 32:
// 16 x 16 channels on 32x32 maps take 2.3-2.7 ms against 2.6-5.7 ms; 8 x 16 is even).
constexpr std::int64_t winograd_min_channel_product = 16 * 16;

// Whether a float32 convolution with these parameters and shape takes the Winograd path.
bool winograd_applies(const WinogradShape& shape, std::int64_t kernel, const Conv2dParams& params);

// x: (N, C, H, W), weight: (O, C, 3, 3), y: (N, O, Ho, Wo), overwritten.
void winograd_forward(const WinogradShape& shape, const float* x, const float* weight, float* y);

// grad_y: (N, O, Ho, Wo), weight: (O, C, 3, 3), grad_x: (N, C, H, W) (+)= the data gradient.
void winograd_backward_data(const WinogradShape& shape, const float* grad_y, const float* weight,
                            float* grad_x, Write write);

// x: (N, C, H, W), grad_y: (N, O, Ho, Wo), grad_weight: (O, C, 3, 3) (+)= the filter gradient.
void winograd_backward_filter(const WinogradShape& shape, const float* x, const float* grad_y,
                              float* grad_weight, Write write);

}  // namespace md::cpu
