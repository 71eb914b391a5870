// Nearest and bilinear resize on the CPU, forward and backward, exactly as PyTorch's
// F.interpolate(size=..., mode='nearest' | 'bilinear', align_corners=False). The source indices
// and weights come from element_math.h (shared with the CUDA kernels). The backward scatters per
// (sample, channel) plane, one thread per plane, in a fixed order.
#include <vector>

#include "backend/cpu/cpu_backend.h"
#include "backend/cpu/cpu_common.h"
#include "backend/element_math.h"

namespace md::cpu {
namespace {

struct ResizeGeometry {
  std::int64_t planes = 0;
  std::int64_t in_height = 0;
  std::int64_t in_width = 0;
  std::int64_t out_height = 0;
  std::int64_t out_width = 0;
};

// x: (N, C, H, W), y: (N, C, Ho, Wo)
ResizeGeometry resize_geometry(const char* op, const Tensor& x, const Tensor& y) {
  MD_CHECK(x.ndim() == 4 && y.ndim() == 4 && x.dim(0) == y.dim(0) && x.dim(1) == y.dim(1), "cpu ",
           op, ": input ", x.describe(), " and output ", y.describe(),
           " are not (N, C, H, W) and (N, C, Ho, Wo)");
  MD_CHECK(x.dim(2) > 0 && x.dim(3) > 0 && y.dim(2) > 0 && y.dim(3) > 0, "cpu ", op,
           ": empty spatial size in input ", x.describe(), " or output ", y.describe());
  return ResizeGeometry{x.dim(0) * x.dim(1), x.dim(2), x.dim(3), y.dim(2), y.dim(3)};
}

struct Taps {
  std::vector<std::int64_t> index0;
  std::vector<std::int64_t> index1;
  std::vector<double> weight1;
};

Taps bilinear_taps(std::int64_t in_size, std::int64_t out_size) {
  Taps taps;
  for (std::int64_t dst = 0; dst < out_size; ++dst) {
    const math::BilinearTap tap = math::bilinear_tap(dst, in_size, out_size);
    taps.index0.push_back(tap.index0);
    taps.index1.push_back(tap.index1);
    taps.weight1.push_back(tap.weight1);
  }
  return taps;
}

std::vector<std::int64_t> nearest_sources(std::int64_t in_size, std::int64_t out_size) {
  std::vector<std::int64_t> sources;
  for (std::int64_t dst = 0; dst < out_size; ++dst) {
    sources.push_back(math::nearest_source(dst, in_size, out_size));
  }
  return sources;
}

template <typename T>
void resize_forward_impl(const ResizeGeometry& g, const T* x, T* y, ResizeMode mode) {
  const std::int64_t in_plane = g.in_height * g.in_width;
  const std::int64_t out_plane = g.out_height * g.out_width;
  if (mode == ResizeMode::Nearest) {
    const auto rows = nearest_sources(g.in_height, g.out_height);
    const auto cols = nearest_sources(g.in_width, g.out_width);
    parallel_for(g.planes, 4 * out_plane, [&](std::int64_t plane_index) {
      const T* plane = x + plane_index * in_plane;
      T* out = y + plane_index * out_plane;
      for (std::int64_t oh = 0; oh < g.out_height; ++oh) {
        const T* in_row = plane + rows[static_cast<std::size_t>(oh)] * g.in_width;
        for (std::int64_t ow = 0; ow < g.out_width; ++ow) {
          out[oh * g.out_width + ow] = in_row[cols[static_cast<std::size_t>(ow)]];
        }
      }
    });
    return;
  }
  const Taps rows = bilinear_taps(g.in_height, g.out_height);
  const Taps cols = bilinear_taps(g.in_width, g.out_width);
  parallel_for(g.planes, 4 * out_plane, [&](std::int64_t plane_index) {
    const T* plane = x + plane_index * in_plane;
    T* out = y + plane_index * out_plane;
    for (std::int64_t oh = 0; oh < g.out_height; ++oh) {
      const auto row = static_cast<std::size_t>(oh);
      const T row_weight1 = static_cast<T>(rows.weight1[row]);
      const T row_weight0 = T(1) - row_weight1;
      const T* row0 = plane + rows.index0[row] * g.in_width;
      const T* row1 = plane + rows.index1[row] * g.in_width;
      for (std::int64_t ow = 0; ow < g.out_width; ++ow) {
        const auto col = static_cast<std::size_t>(ow);
        const T col_weight1 = static_cast<T>(cols.weight1[col]);
        const T col_weight0 = T(1) - col_weight1;
        const std::int64_t col0 = cols.index0[col];
        const std::int64_t col1 = cols.index1[col];
        out[oh * g.out_width + ow] =
            row_weight0 * (col_weight0 * row0[col0] + col_weight1 * row0[col1]) +
            row_weight1 * (col_weight0 * row1[col0] + col_weight1 * row1[col1]);
      }
    }
  });
}

template <typename T>
void resize_backward_impl(const ResizeGeometry& g, const T* grad_y, T* grad_x, ResizeMode mode,
                          Write write) {
  const std::int64_t in_plane = g.in_height * g.in_width;
  const std::int64_t out_plane = g.out_height * g.out_width;
  if (mode == ResizeMode::Nearest) {
    const auto rows = nearest_sources(g.in_height, g.out_height);
    const auto cols = nearest_sources(g.in_width, g.out_width);
    parallel_for(g.planes, 4 * out_plane, [&](std::int64_t plane_index) {
      const T* upstream = grad_y + plane_index * out_plane;
      T* plane = grad_x + plane_index * in_plane;
      if (write == Write::Overwrite) std::fill(plane, plane + in_plane, T(0));
      for (std::int64_t oh = 0; oh < g.out_height; ++oh) {
        T* in_row = plane + rows[static_cast<std::size_t>(oh)] * g.in_width;
        for (std::int64_t ow = 0; ow < g.out_width; ++ow) {
          in_row[cols[static_cast<std::size_t>(ow)]] += upstream[oh * g.out_width + ow];
        }
      }
    });
    return;
  }
  const Taps rows = bilinear_taps(g.in_height, g.out_height);
  const Taps cols = bilinear_taps(g.in_width, g.out_width);
  parallel_for(g.planes, 4 * out_plane, [&](std::int64_t plane_index) {
    const T* upstream = grad_y + plane_index * out_plane;
    T* plane = grad_x + plane_index * in_plane;
    if (write == Write::Overwrite) std::fill(plane, plane + in_plane, T(0));
    for (std::int64_t oh = 0; oh < g.out_height; ++oh) {
      const auto row = static_cast<std::size_t>(oh);
      const T row_weight1 = static_cast<T>(rows.weight1[row]);
      const T row_weight0 = T(1) - row_weight1;
      T* row0 = plane + rows.index0[row] * g.in_width;
      T* row1 = plane + rows.index1[row] * g.in_width;
      for (std::int64_t ow = 0; ow < g.out_width; ++ow) {
        const auto col = static_cast<std::size_t>(ow);
        const T col_weight1 = static_cast<T>(cols.weight1[col]);
        const T col_weight0 = T(1) - col_weight1;
        const std::int64_t col0 = cols.index0[col];
        const std::int64_t col1 = cols.index1[col];
        const T grad = upstream[oh * g.out_width + ow];
        row0[col0] += row_weight0 * col_weight0 * grad;
        row0[col1] += row_weight0 * col_weight1 * grad;
        row1[col0] += row_weight1 * col_weight0 * grad;
        row1[col1] += row_weight1 * col_weight1 * grad;
      }
    }
  });
}

}  // namespace

void CpuBackend::resize_forward(const Tensor& x, Tensor& y, ResizeMode mode) {
  const char* op = "resize_forward";
  dispatch_float(x.dtype(), op, [&](auto tag) {
    using T = decltype(tag);
    check_tensor(op, "x", x, x.dtype());
    check_tensor(op, "y", y, x.dtype());
    const ResizeGeometry geometry = resize_geometry(op, x, y);
    resize_forward_impl<T>(geometry, x.data<T>(), y.data<T>(), mode);
  });
}

void CpuBackend::resize_backward(const Tensor& grad_y, Tensor& grad_x, ResizeMode mode,
                                 Write write) {
  const char* op = "resize_backward";
  dispatch_float(grad_y.dtype(), op, [&](auto tag) {
    using T = decltype(tag);
    check_tensor(op, "grad_y", grad_y, grad_y.dtype());
    check_tensor(op, "grad_x", grad_x, grad_y.dtype());
    const ResizeGeometry geometry = resize_geometry(op, grad_x, grad_y);
    resize_backward_impl<T>(geometry, grad_y.data<T>(), grad_x.data<T>(), mode, write);
  });
}

}  // namespace md::cpu
