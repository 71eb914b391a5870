// Helpers of the CPU backend tests: the backend, float64 views of results, and naive reference
// implementations written independently of src/backend/cpu (plain loops, no BLAS, no OpenMP).
#pragma once

#include <cmath>
#include <vector>

#include "backend/backend.h"
#include "core/tensor.h"
#include "support/gradcheck.h"

namespace md::test {

inline Backend& cpu_backend() {
  return backend::get(Device::cpu());
}

inline std::vector<double> as_doubles(const Tensor& tensor) {
  return tensor.to(Device::cpu()).to_dtype(DType::Float64).to_vector<double>();
}

// x: (N, C, H, W), weight: (O, C/groups, K, K) -> (N, O, Ho, Wo), float64, by the definition.
inline Tensor naive_conv2d(const Tensor& x, const Tensor& weight, const Conv2dParams& params) {
  const Shape out_shape = conv2d_output_shape(x.shape(), weight.shape(), params);
  const std::vector<double> input = as_doubles(x);
  const std::vector<double> filter = as_doubles(weight);
  const std::int64_t batch = x.dim(0), channels = x.dim(1), height = x.dim(2), width = x.dim(3);
  const std::int64_t out_channels = out_shape[1], out_height = out_shape[2],
                     out_width = out_shape[3];
  const std::int64_t kernel = weight.dim(2);
  const std::int64_t in_per_group = channels / params.groups;
  const std::int64_t out_per_group = out_channels / params.groups;
  std::vector<double> out(static_cast<std::size_t>(shape_numel(out_shape)), 0.0);
  for (std::int64_t n = 0; n < batch; ++n)
    for (std::int64_t o = 0; o < out_channels; ++o)
      for (std::int64_t oh = 0; oh < out_height; ++oh)
        for (std::int64_t ow = 0; ow < out_width; ++ow) {
          double total = 0.0;
          const std::int64_t group = o / out_per_group;
          for (std::int64_t ci = 0; ci < in_per_group; ++ci)
            for (std::int64_t kh = 0; kh < kernel; ++kh)
              for (std::int64_t kw = 0; kw < kernel; ++kw) {
                const std::int64_t ih = oh * params.stride - params.padding + kh * params.dilation;
                const std::int64_t iw = ow * params.stride - params.padding + kw * params.dilation;
                if (ih < 0 || ih >= height || iw < 0 || iw >= width) continue;
                const std::int64_t c = group * in_per_group + ci;
                total += input[static_cast<std::size_t>(((n * channels + c) * height + ih) * width +
                                                        iw)] *
                         filter[static_cast<std::size_t>(
                             ((o * in_per_group + ci) * kernel + kh) * kernel + kw)];
              }
          out[static_cast<std::size_t>(((n * out_channels + o) * out_height + oh) * out_width +
                                       ow)] = total;
        }
  return Tensor::from_vector<double>(out_shape, out);
}

}  // namespace md::test
