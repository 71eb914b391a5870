// Per-element math shared by the CPU loops and the CUDA kernels: the same inline function is
// compiled for the host and (under nvcc) for the device, so the arithmetic is tested on every
// machine and only the launch differs between backends. No loops, no memory management here.
#pragma once

#include <cmath>
#include <cstdint>
#include <cstring>

#if defined(__CUDACC__)
#define MD_HOST_DEVICE __host__ __device__ __forceinline__
#else
#define MD_HOST_DEVICE inline
#endif

namespace md::math {

template <typename T>
MD_HOST_DEVICE T relu(T x) {
  return x > T(0) ? x : T(0);
}
// Gradient of ReLU from its output: passes where y > 0 (PyTorch: the gradient at 0 is 0).
template <typename T>
MD_HOST_DEVICE T relu_grad(T y, T grad_y) {
  return y > T(0) ? grad_y : T(0);
}

template <typename T>
MD_HOST_DEVICE T sigmoid(T x) {
  // exp of a float is a double on the host (only std:: has float overloads): cast back to T.
  const T e = static_cast<T>(exp(x >= T(0) ? -x : x));
  return x >= T(0) ? T(1) / (T(1) + e) : e / (T(1) + e);
}
template <typename T>
MD_HOST_DEVICE T sigmoid_grad(T y, T grad_y) {
  return grad_y * y * (T(1) - y);
}

// ---- bfloat16: the upper 16 bits of a float32, rounded to nearest even (NaN stays a quiet NaN).
// The bf16 compute precision (backend::MathPrecision::Bf16) rounds convolution and linear
// operands with these on both backends.
MD_HOST_DEVICE std::uint32_t float_bits(float value) {
#if defined(__CUDA_ARCH__)
  return __float_as_uint(value);
#else
  std::uint32_t bits;
  std::memcpy(&bits, &value, sizeof(bits));
  return bits;
#endif
}
MD_HOST_DEVICE float bits_float(std::uint32_t bits) {
#if defined(__CUDA_ARCH__)
  return __uint_as_float(bits);
#else
  float value;
  std::memcpy(&value, &bits, sizeof(value));
  return value;
#endif
}
MD_HOST_DEVICE std::uint16_t to_bfloat16_bits(float value) {
  const std::uint32_t bits = float_bits(value);
  if ((bits & 0x7f800000u) == 0x7f800000u && (bits & 0x007fffffu) != 0u) {
    return static_cast<std::uint16_t>((bits >> 16) | 0x0040u);  // quiet NaN, sign kept
  }
  const std::uint32_t rounding = 0x7fffu + ((bits >> 16) & 1u);
  return static_cast<std::uint16_t>((bits + rounding) >> 16);
}
MD_HOST_DEVICE float from_bfloat16_bits(std::uint16_t bits) {
  return bits_float(static_cast<std::uint32_t>(bits) << 16);
}
// value rounded to the nearest bfloat16, as a float32.
MD_HOST_DEVICE float round_to_bfloat16(float value) {
  return from_bfloat16_bits(to_bfloat16_bits(value));
}

// SGD with momentum, PyTorch semantics (dampening 0; the momentum buffer starts at zero, which
// equals PyTorch's "buffer = first gradient" since m·0 + g = g). Updates p and buf in place.
template <typename T>
MD_HOST_DEVICE void sgd_step(T& param, T grad, T& momentum_buffer, T learning_rate, T momentum,
                             T weight_decay, bool nesterov) {
  T g = grad + weight_decay * param;
  if (momentum != T(0)) {
    momentum_buffer = momentum * momentum_buffer + g;
    g = nesterov ? g + momentum * momentum_buffer : momentum_buffer;
  }
  param -= learning_rate * g;
}

// Adam, torch.optim.Adam semantics (L2 weight decay added to the gradient, no amsgrad). The
// per-step scalars are formed on the host in double and rounded once: 1 − β computed in float32
// is off by 1e-5 relative (0.00099998713 for β = 0.999), which PyTorch's does not do.
template <typename T>
struct AdamCoefficients {
  T learning_rate, beta1, beta2, one_minus_beta1, one_minus_beta2, epsilon, weight_decay;
  T bias_correction1;       // 1 − β1^step
  T sqrt_bias_correction2;  // sqrt(1 − β2^step)
};
template <typename T>
inline AdamCoefficients<T> adam_coefficients(double learning_rate, double beta1, double beta2,
                                             double epsilon, double weight_decay,
                                             std::int64_t step) {
  const double t = static_cast<double>(step);
  return {static_cast<T>(learning_rate),
          static_cast<T>(beta1),
          static_cast<T>(beta2),
          static_cast<T>(1.0 - beta1),
          static_cast<T>(1.0 - beta2),
          static_cast<T>(epsilon),
          static_cast<T>(weight_decay),
          static_cast<T>(1.0 - std::pow(beta1, t)),
          static_cast<T>(std::sqrt(1.0 - std::pow(beta2, t)))};
}
template <typename T>
MD_HOST_DEVICE void adam_step(T& param, T grad, T& exp_avg, T& exp_avg_sq,
                              const AdamCoefficients<T>& c) {
  T g = grad + c.weight_decay * param;
  exp_avg = c.beta1 * exp_avg + c.one_minus_beta1 * g;
  exp_avg_sq = c.beta2 * exp_avg_sq + c.one_minus_beta2 * g * g;
  T denom = static_cast<T>(sqrt(exp_avg_sq)) / c.sqrt_bias_correction2 + c.epsilon;
  param -= (c.learning_rate / c.bias_correction1) * exp_avg / denom;
}

// Bilinear source coordinate of output index `dst` (PyTorch, align_corners=False): the two
// source indices and the weight of the second one.
struct BilinearTap {
  std::int64_t index0;
  std::int64_t index1;
  double weight1;
};
MD_HOST_DEVICE BilinearTap bilinear_tap(std::int64_t dst, std::int64_t in_size,
                                        std::int64_t out_size) {
  double scale = static_cast<double>(in_size) / static_cast<double>(out_size);
  double src = (static_cast<double>(dst) + 0.5) * scale - 0.5;
  if (src < 0) src = 0;
  std::int64_t index0 = static_cast<std::int64_t>(src);
  if (index0 > in_size - 1) index0 = in_size - 1;
  std::int64_t index1 = index0 + 1 < in_size ? index0 + 1 : in_size - 1;
  return BilinearTap{index0, index1, src - static_cast<double>(index0)};
}

// Nearest source index (PyTorch mode='nearest': floor(dst * in / out)).
MD_HOST_DEVICE std::int64_t nearest_source(std::int64_t dst, std::int64_t in_size,
                                           std::int64_t out_size) {
  double scale = static_cast<double>(in_size) / static_cast<double>(out_size);
  std::int64_t src = static_cast<std::int64_t>(floor(static_cast<double>(dst) * scale));
  return src < in_size - 1 ? src : in_size - 1;
}

// ---- training augmentation (AugmentParams in params.h; the semantics of data/augment.h)
// The columns of a draws row.
struct AugmentDrawColumn {
  static constexpr int source_index = 0;  // the image in the set, in [0, N)
  static constexpr int crop_top = 1;      // offset into the padded image, in [0, 2 * crop_padding]
  static constexpr int crop_left = 2;     // offset into the padded image, in [0, 2 * crop_padding]
  static constexpr int flipped = 3;       // 1: mirrored horizontally, 0: not
  static constexpr int cutout_y = 4;      // Cutout center row, in [0, H)
  static constexpr int cutout_x = 5;      // Cutout center column, in [0, W)
  static constexpr int count = 6;
};
struct AugmentGeometry {
  int channels = 0;
  int height = 0;
  int width = 0;
  int crop_padding = 0;
  int cutout = 0;
};
struct AugmentChoice {
  int crop_top = 0;
  int crop_left = 0;
  bool flipped = false;
  int cutout_y = 0;
  int cutout_x = 0;
};
// The output value at (channel, y, x) of one augmented sample. image: (C, H, W) uint8;
// table: (C, 256) normalized values. The output (y, x) reads the padded image at
// (y + crop_top, x' + crop_left), x' = x or its mirror; a padded pixel is raw 0 (table[c][0]).
// Cutout zeroes rows [cy - L/2, cy + L/2) x columns [cx - L/2, cx + L/2) after normalization.
MD_HOST_DEVICE float augmented_value(const std::uint8_t* image, const float* table,
                                     const AugmentGeometry& geometry, const AugmentChoice& choice,
                                     int channel, int y, int x) {
  if (geometry.cutout > 0) {
    const int half = geometry.cutout / 2;
    if (y >= choice.cutout_y - half && y < choice.cutout_y + half && x >= choice.cutout_x - half &&
        x < choice.cutout_x + half) {
      return 0.0f;
    }
  }
  const float* channel_table = table + channel * 256;
  const int source_y = y + choice.crop_top - geometry.crop_padding;
  const int cropped_x = choice.flipped ? geometry.width - 1 - x : x;
  const int source_x = cropped_x + choice.crop_left - geometry.crop_padding;
  if (source_y < 0 || source_y >= geometry.height || source_x < 0 || source_x >= geometry.width) {
    return channel_table[0];
  }
  const std::int64_t offset =
      (static_cast<std::int64_t>(channel) * geometry.height + source_y) * geometry.width + source_x;
  return channel_table[image[offset]];
}

}  // namespace md::math
