// Parameter structs of the ops (no positional ints or bare bools), and their shape rules.
// Shared by the CPU and CUDA backends and by autograd; no device code here.
#pragma once

#include <cstdint>

#include "backend/element_math.h"
#include "core/tensor.h"

namespace md {

// How a backward op writes its gradient output: replace what is there, or add to it
// (gradient accumulation into flat buffers and into tensors used twice).
enum class Write { Overwrite, Accumulate };

// Square kernels, strides, padding and dilation: every model of the zoo uses them.
struct Conv2dParams {
  int stride = 1;
  int padding = 0;
  int dilation = 1;
  int groups = 1;
};
// x: (N, C, H, W), weight: (O, C/groups, K, K) -> (N, O, Ho, Wo)
Shape conv2d_output_shape(const Shape& x, const Shape& weight, const Conv2dParams& params);

enum class PoolKind { Max, Average };
// Average pooling counts padded zeros in the divisor (PyTorch's count_include_pad=True).
struct Pool2dParams {
  int kernel = 2;
  int stride = 2;
  int padding = 0;
};
Shape pool2d_output_shape(const Shape& x, const Pool2dParams& params);

struct BatchNormParams {
  double momentum = 0.1;  // running = (1 - momentum) * running + momentum * batch (unbiased var)
  double epsilon = 1e-5;
};
// Whether a training-mode batch norm updates the running statistics. Virtual passes of the
// meta step (θ', θ±) use Skip, so only real steps move the statistics.
enum class RunningStatsUpdate { Update, Skip };

// Nearest: PyTorch's mode='nearest' (source = floor(dst * in / out)).
// Bilinear: PyTorch's mode='bilinear', align_corners=False.
enum class ResizeMode { Nearest, Bilinear };

struct SgdParams {
  double learning_rate = 0.1;
  double momentum = 0.9;
  double weight_decay = 0.0;
  bool nesterov = false;  // PyTorch semantics; dampening 0
};

struct AdamParams {
  double learning_rate = 1e-3;
  double beta1 = 0.9;
  double beta2 = 0.999;
  double epsilon = 1e-8;
  double weight_decay = 0.0;  // L2 added to the gradient (torch.optim.Adam)
  std::int64_t step = 1;      // 1-based step for the bias corrections
};

// Training augmentation of a batch gathered from a whole uint8 image set (DESIGN.md §5), with the
// semantics of data/augment.h: crop with zero padding on raw pixels, horizontal flip,
// normalization through a per-channel lookup table, then Cutout (zero after normalization).
// The per-sample random choices come in a draws tensor (B, AugmentDrawColumn::count) int32, one
// row per output sample.
struct AugmentParams {
  int crop_padding = 0;  // the padding the crop offsets refer to; 0: no crop
  int cutout = 0;        // side of the Cutout square; 0: no Cutout
};
// The columns of a draws row (element_math.h, shared with the CUDA kernel).
using AugmentDrawColumn = math::AugmentDrawColumn;
// The geometry of augment_images' arguments (backend.h): md::Error naming `op` unless pixels is
// uint8 (N, C, H, W), draws int32 (B, AugmentDrawColumn::count), table float32 (C, 256), out
// float32 (B, C, H, W), all on `device`, and the params are non-negative.
math::AugmentGeometry augment_geometry(const char* op, const Tensor& pixels, const Tensor& draws,
                                       const Tensor& table, const Tensor& out,
                                       const AugmentParams& params, Device device);

}  // namespace md
