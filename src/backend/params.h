// Parameter structs of the ops (no positional ints or bare bools), and their shape rules.
// Shared by the CPU and CUDA backends and by autograd; no device code here.
#pragma once

#include <cstdint>

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

}  // namespace md
