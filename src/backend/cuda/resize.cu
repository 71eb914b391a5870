// Nearest and bilinear resize (PyTorch semantics, align_corners=False) over (N·C) planes.
// The source taps come from element_math.h, as on the CPU. The backward pass is a gather:
// each input element sums the output gradients whose taps read it, scanning a window of
// output indices that provably contains them all (and testing each with the same tap
// function), so it needs no atomics and its result is deterministic.
#include "backend/cuda/device_utils.cuh"
#include "backend/cuda/kernels.h"
#include "backend/element_math.h"

namespace md::cuda::kernels {
namespace {

// The weight with which output index `dst` reads input index `src` along one axis.
__device__ __forceinline__ double nearest_weight(std::int64_t dst, std::int64_t src,
                                                 std::int64_t in_size, std::int64_t out_size) {
  return math::nearest_source(dst, in_size, out_size) == src ? 1.0 : 0.0;
}

__device__ __forceinline__ double bilinear_weight(std::int64_t dst, std::int64_t src,
                                                  std::int64_t in_size, std::int64_t out_size) {
  const math::BilinearTap tap = math::bilinear_tap(dst, in_size, out_size);
  double weight = 0.0;
  if (tap.index0 == src) weight += 1.0 - tap.weight1;
  if (tap.index1 == src) weight += tap.weight1;
  return weight;
}

// Output indices that may read input index `src` (a superset; weights decide).
struct Window {
  std::int64_t first;
  std::int64_t last;
};

__device__ __forceinline__ Window clamp_window(double low, double high, std::int64_t out_size) {
  std::int64_t first = static_cast<std::int64_t>(floor(low)) - 1;
  std::int64_t last = static_cast<std::int64_t>(ceil(high)) + 1;
  if (first < 0) first = 0;
  if (last > out_size - 1) last = out_size - 1;
  return Window{first, last};
}

// nearest: dst reads floor(dst·in/out) = src  =>  dst in [src·out/in, (src+1)·out/in)
__device__ __forceinline__ Window nearest_window(std::int64_t src, std::int64_t in_size,
                                                 std::int64_t out_size) {
  const double ratio = static_cast<double>(out_size) / static_cast<double>(in_size);
  return clamp_window(static_cast<double>(src) * ratio, static_cast<double>(src + 1) * ratio,
                      out_size);
}

// bilinear: dst reads src when its source coordinate (dst+0.5)·in/out − 0.5 lies in
// [src−1, src+1]  =>  dst in [(src−0.5)·out/in − 0.5, (src+1.5)·out/in − 0.5]
__device__ __forceinline__ Window bilinear_window(std::int64_t src, std::int64_t in_size,
                                                  std::int64_t out_size) {
  const double ratio = static_cast<double>(out_size) / static_cast<double>(in_size);
  return clamp_window((static_cast<double>(src) - 0.5) * ratio - 0.5,
                      (static_cast<double>(src) + 1.5) * ratio - 0.5, out_size);
}

__global__ void nearest_forward_kernel(const float* x, float* y, ResizeGeometry g,
                                       std::int64_t count) {
  MD_GRID_STRIDE_LOOP(i, count) {
    const std::int64_t ox = i % g.out_width;
    const std::int64_t oy = (i / g.out_width) % g.out_height;
    const std::int64_t plane = i / (g.out_width * g.out_height);
    const std::int64_t iy = math::nearest_source(oy, g.in_height, g.out_height);
    const std::int64_t ix = math::nearest_source(ox, g.in_width, g.out_width);
    y[i] = x[(plane * g.in_height + iy) * g.in_width + ix];
  }
}

__global__ void bilinear_forward_kernel(const float* x, float* y, ResizeGeometry g,
                                        std::int64_t count) {
  MD_GRID_STRIDE_LOOP(i, count) {
    const std::int64_t ox = i % g.out_width;
    const std::int64_t oy = (i / g.out_width) % g.out_height;
    const std::int64_t plane = i / (g.out_width * g.out_height);
    const math::BilinearTap ty = math::bilinear_tap(oy, g.in_height, g.out_height);
    const math::BilinearTap tx = math::bilinear_tap(ox, g.in_width, g.out_width);
    const float* source = x + plane * g.in_height * g.in_width;
    const double top = (1.0 - tx.weight1) * source[ty.index0 * g.in_width + tx.index0] +
                       tx.weight1 * source[ty.index0 * g.in_width + tx.index1];
    const double bottom = (1.0 - tx.weight1) * source[ty.index1 * g.in_width + tx.index0] +
                          tx.weight1 * source[ty.index1 * g.in_width + tx.index1];
    y[i] = static_cast<float>((1.0 - ty.weight1) * top + ty.weight1 * bottom);
  }
}

template <bool Bilinear>
__global__ void resize_backward_kernel(const float* grad_y, float* grad_x, ResizeGeometry g,
                                       std::int64_t count, float beta) {
  MD_GRID_STRIDE_LOOP(i, count) {
    const std::int64_t ix = i % g.in_width;
    const std::int64_t iy = (i / g.in_width) % g.in_height;
    const std::int64_t plane = i / (g.in_width * g.in_height);
    const Window rows = Bilinear ? bilinear_window(iy, g.in_height, g.out_height)
                                 : nearest_window(iy, g.in_height, g.out_height);
    const Window columns = Bilinear ? bilinear_window(ix, g.in_width, g.out_width)
                                    : nearest_window(ix, g.in_width, g.out_width);
    const float* source = grad_y + plane * g.out_height * g.out_width;
    double accumulated = 0.0;
    for (std::int64_t oy = rows.first; oy <= rows.last; ++oy) {
      const double weight_y = Bilinear ? bilinear_weight(oy, iy, g.in_height, g.out_height)
                                       : nearest_weight(oy, iy, g.in_height, g.out_height);
      if (weight_y == 0.0) continue;
      double row = 0.0;
      for (std::int64_t ox = columns.first; ox <= columns.last; ++ox) {
        const double weight_x = Bilinear ? bilinear_weight(ox, ix, g.in_width, g.out_width)
                                         : nearest_weight(ox, ix, g.in_width, g.out_width);
        if (weight_x != 0.0) row += weight_x * source[oy * g.out_width + ox];
      }
      accumulated += weight_y * row;
    }
    blend(&grad_x[i], static_cast<float>(accumulated), beta);
  }
}

std::int64_t output_count(const ResizeGeometry& g) {
  return g.planes * g.out_height * g.out_width;
}
std::int64_t input_count(const ResizeGeometry& g) {
  return g.planes * g.in_height * g.in_width;
}

}  // namespace

void resize_nearest_forward(const float* x, float* y, const ResizeGeometry& geometry,
                            cudaStream_t stream) {
  const std::int64_t count = output_count(geometry);
  if (count == 0) return;
  nearest_forward_kernel<<<grid_for(count), kBlockSize, 0, stream>>>(x, y, geometry, count);
  MD_CUDA_CHECK(cudaGetLastError());
}

void resize_bilinear_forward(const float* x, float* y, const ResizeGeometry& geometry,
                             cudaStream_t stream) {
  const std::int64_t count = output_count(geometry);
  if (count == 0) return;
  bilinear_forward_kernel<<<grid_for(count), kBlockSize, 0, stream>>>(x, y, geometry, count);
  MD_CUDA_CHECK(cudaGetLastError());
}

void resize_nearest_backward(const float* grad_y, float* grad_x, const ResizeGeometry& geometry,
                             float beta, cudaStream_t stream) {
  const std::int64_t count = input_count(geometry);
  if (count == 0) return;
  resize_backward_kernel<false>
      <<<grid_for(count), kBlockSize, 0, stream>>>(grad_y, grad_x, geometry, count, beta);
  MD_CUDA_CHECK(cudaGetLastError());
}

void resize_bilinear_backward(const float* grad_y, float* grad_x, const ResizeGeometry& geometry,
                              float beta, cudaStream_t stream) {
  const std::int64_t count = input_count(geometry);
  if (count == 0) return;
  resize_backward_kernel<true>
      <<<grid_for(count), kBlockSize, 0, stream>>>(grad_y, grad_x, geometry, count, beta);
  MD_CUDA_CHECK(cudaGetLastError());
}

}  // namespace md::cuda::kernels
