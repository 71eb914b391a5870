// Max and average pooling and global average pooling on the CPU, forward and backward.
// PyTorch semantics: max pooling pads with -inf and routes the gradient to the first maximum of
// each window in scan order (a NaN counts as the maximum); average pooling counts padded zeros in
// the divisor (count_include_pad=True). Loops run per (sample, channel) plane, so a plane's
// gradient is accumulated by one thread in a fixed order.
#include <cmath>
#include <limits>

#include "backend/cpu/cpu_backend.h"
#include "backend/cpu/cpu_common.h"

namespace md::cpu {
namespace {

struct PoolGeometry {
  std::int64_t planes = 0;  // N·C
  std::int64_t in_height = 0;
  std::int64_t in_width = 0;
  std::int64_t out_height = 0;
  std::int64_t out_width = 0;
  std::int64_t kernel = 0;
  std::int64_t stride = 0;
  std::int64_t padding = 0;
};

PoolGeometry pool_geometry(const Shape& x, const Pool2dParams& params) {
  const Shape y = pool2d_output_shape(x, params);
  return PoolGeometry{x[0] * x[1], x[2],          x[3],          y[2],
                      y[3],        params.kernel, params.stride, params.padding};
}

// One pooling window, clipped to the input; `divisor` is its size inside the padded input.
struct Window {
  std::int64_t row_begin, row_end, col_begin, col_end;
  std::int64_t divisor;
};

Window window_at(const PoolGeometry& g, std::int64_t oh, std::int64_t ow) {
  std::int64_t row_begin = oh * g.stride - g.padding;
  std::int64_t col_begin = ow * g.stride - g.padding;
  std::int64_t row_end = std::min(row_begin + g.kernel, g.in_height + g.padding);
  std::int64_t col_end = std::min(col_begin + g.kernel, g.in_width + g.padding);
  const std::int64_t divisor = (row_end - row_begin) * (col_end - col_begin);
  row_begin = std::max<std::int64_t>(row_begin, 0);
  col_begin = std::max<std::int64_t>(col_begin, 0);
  row_end = std::min(row_end, g.in_height);
  col_end = std::min(col_end, g.in_width);
  return Window{row_begin, row_end, col_begin, col_end, divisor};
}

// Index (within the plane) of the window's first maximum; -1 if the window holds no element.
template <typename T>
std::int64_t window_argmax(const PoolGeometry& g, const T* plane, const Window& window, T& best) {
  best = -std::numeric_limits<T>::infinity();
  std::int64_t best_index = -1;
  for (std::int64_t ih = window.row_begin; ih < window.row_end; ++ih) {
    for (std::int64_t iw = window.col_begin; iw < window.col_end; ++iw) {
      const T value = plane[ih * g.in_width + iw];
      if (best_index < 0 || value > best || std::isnan(value)) {
        best = value;
        best_index = ih * g.in_width + iw;
        if (std::isnan(value)) return best_index;
      }
    }
  }
  return best_index;
}

template <typename T>
void pool_forward(const PoolGeometry& g, const T* x, T* y, PoolKind kind) {
  parallel_for(g.planes, g.out_height * g.out_width * g.kernel * g.kernel,
               [&](std::int64_t plane_index) {
                 const T* plane = x + plane_index * g.in_height * g.in_width;
                 T* out = y + plane_index * g.out_height * g.out_width;
                 for (std::int64_t oh = 0; oh < g.out_height; ++oh) {
                   for (std::int64_t ow = 0; ow < g.out_width; ++ow) {
                     const Window window = window_at(g, oh, ow);
                     T result = T(0);
                     if (kind == PoolKind::Max) {
                       window_argmax(g, plane, window, result);
                     } else {
                       T total = T(0);
                       for (std::int64_t ih = window.row_begin; ih < window.row_end; ++ih) {
                         for (std::int64_t iw = window.col_begin; iw < window.col_end; ++iw) {
                           total += plane[ih * g.in_width + iw];
                         }
                       }
                       result = total / static_cast<T>(window.divisor);
                     }
                     out[oh * g.out_width + ow] = result;
                   }
                 }
               });
}

template <typename T>
void pool_backward(const PoolGeometry& g, const T* x, const T* grad_y, T* grad_x, PoolKind kind,
                   Write write) {
  parallel_for(g.planes, g.out_height * g.out_width * g.kernel * g.kernel,
               [&](std::int64_t plane_index) {
                 const std::int64_t in_plane = g.in_height * g.in_width;
                 const T* plane = x + plane_index * in_plane;
                 const T* upstream = grad_y + plane_index * g.out_height * g.out_width;
                 T* downstream = grad_x + plane_index * in_plane;
                 if (write == Write::Overwrite) std::fill(downstream, downstream + in_plane, T(0));
                 for (std::int64_t oh = 0; oh < g.out_height; ++oh) {
                   for (std::int64_t ow = 0; ow < g.out_width; ++ow) {
                     const Window window = window_at(g, oh, ow);
                     const T grad = upstream[oh * g.out_width + ow];
                     if (kind == PoolKind::Max) {
                       T best;
                       const std::int64_t index = window_argmax(g, plane, window, best);
                       if (index >= 0) downstream[index] += grad;
                     } else {
                       const T share = grad / static_cast<T>(window.divisor);
                       for (std::int64_t ih = window.row_begin; ih < window.row_end; ++ih) {
                         for (std::int64_t iw = window.col_begin; iw < window.col_end; ++iw) {
                           downstream[ih * g.in_width + iw] += share;
                         }
                       }
                     }
                   }
                 }
               });
}

}  // namespace

void CpuBackend::pool2d_forward(const Tensor& x, Tensor& y, PoolKind kind,
                                const Pool2dParams& params) {
  const char* op = "pool2d_forward";
  dispatch_float(x.dtype(), op, [&](auto tag) {
    using T = decltype(tag);
    check_tensor(op, "x", x, x.dtype());
    const PoolGeometry geometry = pool_geometry(x.shape(), params);
    check_tensor(op, "y", y, x.dtype(), pool2d_output_shape(x.shape(), params));
    pool_forward<T>(geometry, x.data<T>(), y.data<T>(), kind);
  });
}

void CpuBackend::pool2d_backward(const Tensor& x, const Tensor& y, const Tensor& grad_y,
                                 Tensor& grad_x, PoolKind kind, const Pool2dParams& params,
                                 Write write) {
  const char* op = "pool2d_backward";
  dispatch_float(x.dtype(), op, [&](auto tag) {
    using T = decltype(tag);
    check_tensor(op, "x", x, x.dtype());
    const PoolGeometry geometry = pool_geometry(x.shape(), params);
    const Shape out_shape = pool2d_output_shape(x.shape(), params);
    check_tensor(op, "y", y, x.dtype(), out_shape);
    check_tensor(op, "grad_y", grad_y, x.dtype(), out_shape);
    check_tensor(op, "grad_x", grad_x, x.dtype(), x.shape());
    pool_backward<T>(geometry, x.data<T>(), grad_y.data<T>(), grad_x.data<T>(), kind, write);
  });
}

void CpuBackend::global_avg_pool_forward(const Tensor& x, Tensor& y) {
  const char* op = "global_avg_pool_forward";
  dispatch_float(x.dtype(), op, [&](auto tag) {
    using T = decltype(tag);
    check_tensor(op, "x", x, x.dtype());
    MD_CHECK(x.ndim() == 4 && x.dim(2) * x.dim(3) > 0, "cpu ", op, ": x ", x.describe(),
             " is not a non-empty (N, C, H, W)");
    check_tensor(op, "y", y, x.dtype(), Shape{x.dim(0), x.dim(1)});
    const std::int64_t plane_size = x.dim(2) * x.dim(3);
    const T* input = x.data<T>();
    T* output = y.data<T>();
    parallel_for(x.dim(0) * x.dim(1), plane_size, [&](std::int64_t plane_index) {
      const T* plane = input + plane_index * plane_size;
      T total = T(0);
      for (std::int64_t i = 0; i < plane_size; ++i) total += plane[i];
      output[plane_index] = total / static_cast<T>(plane_size);
    });
  });
}

void CpuBackend::global_avg_pool_backward(const Tensor& grad_y, Tensor& grad_x, Write write) {
  const char* op = "global_avg_pool_backward";
  dispatch_float(grad_y.dtype(), op, [&](auto tag) {
    using T = decltype(tag);
    check_tensor(op, "grad_x", grad_x, grad_y.dtype());
    MD_CHECK(grad_x.ndim() == 4 && grad_x.dim(2) * grad_x.dim(3) > 0, "cpu ", op, ": grad_x ",
             grad_x.describe(), " is not a non-empty (N, C, H, W)");
    check_tensor(op, "grad_y", grad_y, grad_y.dtype(), Shape{grad_x.dim(0), grad_x.dim(1)});
    const std::int64_t plane_size = grad_x.dim(2) * grad_x.dim(3);
    const T* upstream = grad_y.data<T>();
    T* downstream = grad_x.data<T>();
    parallel_for(grad_x.dim(0) * grad_x.dim(1), plane_size, [&](std::int64_t plane_index) {
      const T share = upstream[plane_index] / static_cast<T>(plane_size);
      T* plane = downstream + plane_index * plane_size;
      for (std::int64_t i = 0; i < plane_size; ++i) write_value(plane[i], share, write);
    });
  });
}

}  // namespace md::cpu
