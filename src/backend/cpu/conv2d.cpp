// conv2d on the CPU: forward, backward-data, backward-filter, and the channel bias.
// General path: im2col over a chunk of samples, one GEMM per group, col2im for the data
// gradient; chunks run in parallel where they write disjoint outputs, and the filter gradient
// of a small filter is summed over fixed slices of chunks. Depthwise convolutions (one input and
// one output channel per group) use direct loops instead, since a GEMM with one row per group
// wastes the BLAS call. The chunk size depends only on the shapes, and every reduction runs in a
// fixed order (the GEMM over the chunks in sample order, the depthwise filter sums per channel), so
// results do not depend on the thread count. Float32 3x3 stride-1 convolutions with enough
// channels take the Winograd path instead (winograd.h).
#include <memory>
#include <type_traits>
#include <vector>

#include "backend/cpu/cpu_backend.h"
#include "backend/cpu/cpu_common.h"
#include "backend/cpu/winograd.h"

namespace md::cpu {
namespace {

struct ConvGeometry {
  std::int64_t batch = 0;
  std::int64_t in_channels = 0;
  std::int64_t in_height = 0;
  std::int64_t in_width = 0;
  std::int64_t out_channels = 0;
  std::int64_t out_height = 0;
  std::int64_t out_width = 0;
  std::int64_t kernel = 0;
  std::int64_t groups = 0;
  std::int64_t stride = 0;
  std::int64_t padding = 0;
  std::int64_t dilation = 0;

  std::int64_t in_plane() const { return in_height * in_width; }
  std::int64_t out_plane() const { return out_height * out_width; }
  std::int64_t in_per_group() const { return in_channels / groups; }
  std::int64_t out_per_group() const { return out_channels / groups; }
  std::int64_t taps() const { return kernel * kernel; }
  // Rows of the column matrix of one group: (input channel, kh, kw).
  std::int64_t group_rows() const { return in_per_group() * taps(); }
  bool depthwise() const { return in_per_group() == 1 && out_per_group() == 1; }
  // A 1x1 stride-1 unpadded convolution: the input already is its column matrix.
  bool pointwise() const { return kernel == 1 && stride == 1 && padding == 0; }
};

// x: (N, C, H, W), weight: (O, C/groups, K, K); validates through conv2d_output_shape.
ConvGeometry make_geometry(const Shape& x, const Shape& weight, const Conv2dParams& params) {
  const Shape y = conv2d_output_shape(x, weight, params);
  ConvGeometry geometry;
  geometry.batch = x[0];
  geometry.in_channels = x[1];
  geometry.in_height = x[2];
  geometry.in_width = x[3];
  geometry.out_channels = y[1];
  geometry.out_height = y[2];
  geometry.out_width = y[3];
  geometry.kernel = weight[2];
  geometry.groups = params.groups;
  geometry.stride = params.stride;
  geometry.padding = params.padding;
  geometry.dilation = params.dilation;
  return geometry;
}

// Samples per im2col chunk: enough columns for an efficient GEMM, a bounded column buffer.
std::int64_t chunk_samples(const ConvGeometry& geometry) {
  constexpr std::int64_t target_columns = 2048;
  constexpr std::int64_t max_column_elements = std::int64_t{1} << 23;
  const std::int64_t by_columns =
      (target_columns + geometry.out_plane() - 1) / std::max<std::int64_t>(geometry.out_plane(), 1);
  const std::int64_t sample_elements =
      std::max<std::int64_t>(geometry.in_channels * geometry.taps() * geometry.out_plane(), 1);
  const std::int64_t by_memory = std::max<std::int64_t>(max_column_elements / sample_elements, 1);
  return std::clamp<std::int64_t>(std::min(by_columns, by_memory), 1,
                                  std::max<std::int64_t>(geometry.batch, 1));
}

// The output positions o in [0, out_size) whose input index o·stride + offset lies in
// [0, in_size), where offset = tap·dilation − padding: the positions a kernel tap reaches.
struct ValidRange {
  std::int64_t begin = 0;
  std::int64_t end = 0;
};

ValidRange valid_outputs(std::int64_t offset, std::int64_t stride, std::int64_t in_size,
                         std::int64_t out_size) {
  const std::int64_t begin = offset >= 0 ? 0 : (-offset + stride - 1) / stride;
  const std::int64_t last_input = in_size - 1 - offset;
  const std::int64_t end = last_input < 0 ? 0 : std::min(out_size, last_input / stride + 1);
  return ValidRange{std::min(begin, end), end};
}

// columns: (C·K·K, count·Ho·Wo) for samples [first, first + count) of x: (N, C, H, W).
template <typename T>
void im2col(const ConvGeometry& g, const T* x, std::int64_t first, std::int64_t count, T* columns) {
  const std::int64_t row_length = count * g.out_plane();
  parallel_for(g.in_channels * g.taps() * count, g.out_plane(), [&](std::int64_t task) {
    const std::int64_t sample = task % count;
    const std::int64_t row = task / count;
    const std::int64_t channel = row / g.taps();
    const std::int64_t row_offset = (row % g.taps()) / g.kernel * g.dilation - g.padding;
    const std::int64_t col_offset = row % g.kernel * g.dilation - g.padding;
    const ValidRange rows = valid_outputs(row_offset, g.stride, g.in_height, g.out_height);
    const ValidRange cols = valid_outputs(col_offset, g.stride, g.in_width, g.out_width);
    const T* plane = x + ((first + sample) * g.in_channels + channel) * g.in_plane();
    T* out = columns + row * row_length + sample * g.out_plane();
    std::fill(out, out + rows.begin * g.out_width, T(0));
    for (std::int64_t oh = rows.begin; oh < rows.end; ++oh) {
      const T* in_row = plane + (oh * g.stride + row_offset) * g.in_width;
      T* out_row = out + oh * g.out_width;
      std::fill(out_row, out_row + cols.begin, T(0));
      for (std::int64_t ow = cols.begin; ow < cols.end; ++ow) {
        out_row[ow] = in_row[ow * g.stride + col_offset];
      }
      std::fill(out_row + cols.end, out_row + g.out_width, T(0));
    }
    std::fill(out + rows.end * g.out_width, out + g.out_plane(), T(0));
  });
}

// grad_x (+)= col2im(columns) for samples [first, first + count); columns as in im2col.
template <typename T>
void col2im(const ConvGeometry& g, const T* columns, std::int64_t first, std::int64_t count,
            T* grad_x, Write write) {
  const std::int64_t row_length = count * g.out_plane();
  parallel_for(count * g.in_channels, g.taps() * g.out_plane(), [&](std::int64_t task) {
    const std::int64_t sample = task / g.in_channels;
    const std::int64_t channel = task % g.in_channels;
    T* plane = grad_x + ((first + sample) * g.in_channels + channel) * g.in_plane();
    if (write == Write::Overwrite) std::fill(plane, plane + g.in_plane(), T(0));
    for (std::int64_t tap = 0; tap < g.taps(); ++tap) {
      const std::int64_t row_offset = tap / g.kernel * g.dilation - g.padding;
      const std::int64_t col_offset = tap % g.kernel * g.dilation - g.padding;
      const ValidRange rows = valid_outputs(row_offset, g.stride, g.in_height, g.out_height);
      const ValidRange cols = valid_outputs(col_offset, g.stride, g.in_width, g.out_width);
      const T* in = columns + (channel * g.taps() + tap) * row_length + sample * g.out_plane();
      for (std::int64_t oh = rows.begin; oh < rows.end; ++oh) {
        T* out_row = plane + (oh * g.stride + row_offset) * g.in_width;
        const T* in_row = in + oh * g.out_width;
        for (std::int64_t ow = cols.begin; ow < cols.end; ++ow) {
          out_row[ow * g.stride + col_offset] += in_row[ow];
        }
      }
    }
  });
}

// packed: (O, count·Ho·Wo) <-> y: (N, O, Ho, Wo) for samples [first, first + count).
template <typename T>
void unpack_samples(const ConvGeometry& g, const T* packed, std::int64_t first, std::int64_t count,
                    T* y) {
  parallel_for(count * g.out_channels, g.out_plane(), [&](std::int64_t task) {
    const std::int64_t sample = task / g.out_channels;
    const std::int64_t channel = task % g.out_channels;
    const T* from = packed + channel * count * g.out_plane() + sample * g.out_plane();
    std::copy(from, from + g.out_plane(),
              y + ((first + sample) * g.out_channels + channel) * g.out_plane());
  });
}

template <typename T>
void pack_samples(const ConvGeometry& g, const T* y, std::int64_t first, std::int64_t count,
                  T* packed) {
  parallel_for(count * g.out_channels, g.out_plane(), [&](std::int64_t task) {
    const std::int64_t sample = task / g.out_channels;
    const std::int64_t channel = task % g.out_channels;
    const T* from = y + ((first + sample) * g.out_channels + channel) * g.out_plane();
    std::copy(from, from + g.out_plane(),
              packed + channel * count * g.out_plane() + sample * g.out_plane());
  });
}

// The Winograd path's view of a convolution, and whether it takes it (float32 only).
WinogradShape winograd_shape(const ConvGeometry& g) {
  return WinogradShape{g.batch,        g.in_channels, g.in_height, g.in_width,
                       g.out_channels, g.out_height,  g.out_width, g.padding};
}

template <typename T>
bool use_winograd(const ConvGeometry& g, const Conv2dParams& params) {
  return std::is_same_v<T, float> && winograd_applies(winograd_shape(g), g.kernel, params);
}

// ---- general path (im2col + GEMM)

// A chunk's column or packed-output buffer, left uninitialized (every use overwrites what it
// reads: a value-initialized vector cost a zeroing pass per chunk). Freed after the chunk, so
// that the step's peak memory does not grow by per-thread buffers.
template <typename T>
std::unique_ptr<T[]> chunk_buffer(std::int64_t size) {
  return std::make_unique_for_overwrite<T[]>(static_cast<std::size_t>(size));
}

// Chunks of chunk_samples samples: [first, first + count) for chunk `which`.
struct SampleChunk {
  std::int64_t first = 0;
  std::int64_t count = 0;
};

SampleChunk sample_chunk(const ConvGeometry& g, std::int64_t chunk, std::int64_t which) {
  const std::int64_t first = which * chunk;
  return SampleChunk{first, std::min(chunk, g.batch - first)};
}

std::int64_t chunk_count(const ConvGeometry& g, std::int64_t chunk) {
  return (g.batch + chunk - 1) / chunk;
}

// Multiply-adds of one chunk's GEMMs, as parallel_for's work per item.
std::int64_t chunk_work(const ConvGeometry& g, std::int64_t chunk) {
  return chunk * g.out_plane() * g.out_channels * g.group_rows();
}

// x: (N, C, H, W), weight: (O, C/groups, K, K), y: (N, O, Ho, Wo). Chunks write disjoint
// samples of y, so they run in parallel (each chunk's GEMM then on its thread); a single chunk
// splits its GEMM instead.
template <typename T>
void conv_forward_gemm(const ConvGeometry& g, const T* x, const T* weight, T* y) {
  const std::int64_t chunk = chunk_samples(g);
  parallel_for(chunk_count(g, chunk), chunk_work(g, chunk), [&](std::int64_t which) {
    const auto [first, count] = sample_chunk(g, chunk, which);
    const std::int64_t width = count * g.out_plane();
    const T* cols = x + first * g.in_channels * g.in_plane();
    std::unique_ptr<T[]> columns;
    std::unique_ptr<T[]> packed;
    if (!(count == 1 && g.pointwise())) {
      columns = chunk_buffer<T>(g.in_channels * g.taps() * width);
      im2col(g, x, first, count, columns.get());
      cols = columns.get();
    }
    T* out = y + first * g.out_channels * g.out_plane();
    if (count > 1) {
      packed = chunk_buffer<T>(g.out_channels * width);
      out = packed.get();
    }
    for (std::int64_t group = 0; group < g.groups; ++group) {
      gemm<T>(CblasNoTrans, CblasNoTrans, g.out_per_group(), width, g.group_rows(), T(1),
              weight + group * g.out_per_group() * g.group_rows(), g.group_rows(),
              cols + group * g.group_rows() * width, width, T(0),
              out + group * g.out_per_group() * width, width);
    }
    if (count > 1) unpack_samples(g, packed.get(), first, count, y);
  });
}

// grad_y: (N, O, Ho, Wo), weight: (O, C/groups, K, K), grad_x: (N, C, H, W). Chunks write
// disjoint samples of grad_x: parallel over chunks as in the forward.
template <typename T>
void conv_backward_data_gemm(const ConvGeometry& g, const T* grad_y, const T* weight, T* grad_x,
                             Write write) {
  const std::int64_t chunk = chunk_samples(g);
  parallel_for(chunk_count(g, chunk), chunk_work(g, chunk), [&](std::int64_t which) {
    const auto [first, count] = sample_chunk(g, chunk, which);
    const std::int64_t width = count * g.out_plane();
    const T* upstream = grad_y + first * g.out_channels * g.out_plane();
    std::unique_ptr<T[]> packed;
    std::unique_ptr<T[]> columns;
    if (count > 1) {
      packed = chunk_buffer<T>(g.out_channels * width);
      pack_samples(g, grad_y, first, count, packed.get());
      upstream = packed.get();
    }
    // A pointwise single-sample chunk writes grad_x directly (its column matrix is grad_x).
    const bool direct = count == 1 && g.pointwise();
    T* cols = grad_x + first * g.in_channels * g.in_plane();
    const T beta = direct && write == Write::Accumulate ? T(1) : T(0);
    if (!direct) {
      columns = chunk_buffer<T>(g.in_channels * g.taps() * width);
      cols = columns.get();
    }
    for (std::int64_t group = 0; group < g.groups; ++group) {
      gemm<T>(CblasTrans, CblasNoTrans, g.group_rows(), width, g.out_per_group(), T(1),
              weight + group * g.out_per_group() * g.group_rows(), g.group_rows(),
              upstream + group * g.out_per_group() * width, width, beta,
              cols + group * g.group_rows() * width, width);
    }
    if (!direct) col2im(g, cols, first, count, grad_x, write);
  });
}

// grad_weight (+)= the filter gradient of chunks [first_chunk, end_chunk), summed over the
// chunks in order (one GEMM per chunk and group, accumulating into grad_weight).
template <typename T>
void accumulate_filter_chunks(const ConvGeometry& g, std::int64_t chunk, std::int64_t first_chunk,
                              std::int64_t end_chunk, const T* x, const T* grad_y, T* grad_weight,
                              bool overwrite) {
  for (std::int64_t which = first_chunk; which < end_chunk; ++which) {
    const auto [first, count] = sample_chunk(g, chunk, which);
    const std::int64_t width = count * g.out_plane();
    const T* cols = x + first * g.in_channels * g.in_plane();
    std::unique_ptr<T[]> columns;
    std::unique_ptr<T[]> packed;
    if (!(count == 1 && g.pointwise())) {
      columns = chunk_buffer<T>(g.in_channels * g.taps() * width);
      im2col(g, x, first, count, columns.get());
      cols = columns.get();
    }
    const T* upstream = grad_y + first * g.out_channels * g.out_plane();
    if (count > 1) {
      packed = chunk_buffer<T>(g.out_channels * width);
      pack_samples(g, grad_y, first, count, packed.get());
      upstream = packed.get();
    }
    const T beta = which == first_chunk && overwrite ? T(0) : T(1);
    for (std::int64_t group = 0; group < g.groups; ++group) {
      gemm<T>(CblasNoTrans, CblasTrans, g.out_per_group(), g.group_rows(), width, T(1),
              upstream + group * g.out_per_group() * width, width,
              cols + group * g.group_rows() * width, width, beta,
              grad_weight + group * g.out_per_group() * g.group_rows(), g.group_rows());
    }
  }
}

// x: (N, C, H, W), grad_y: (N, O, Ho, Wo), grad_weight: (O, C/groups, K, K). With several
// chunks and a small filter, the chunks are cut into a fixed number of slices (from the shape
// alone), each summed into its own partial filter gradient in parallel, and the partials are
// added in slice order; otherwise the chunks run in order, each GEMM split over the threads.
template <typename T>
void conv_backward_filter_gemm(const ConvGeometry& g, const T* x, const T* grad_y, T* grad_weight,
                               Write write) {
  constexpr std::int64_t max_slices = 8;
  constexpr std::int64_t max_partial_elements = std::int64_t{1} << 22;
  const std::int64_t chunk = chunk_samples(g);
  const std::int64_t chunks = g.batch == 0 ? 0 : chunk_count(g, chunk);
  const std::int64_t weight_elements = g.out_channels * g.group_rows();
  if (chunks == 0) {
    if (write == Write::Overwrite) std::fill(grad_weight, grad_weight + weight_elements, T(0));
    return;
  }
  const std::int64_t slices = std::min(chunks, max_slices);
  if (slices < 2 || slices * weight_elements > max_partial_elements) {
    accumulate_filter_chunks(g, chunk, 0, chunks, x, grad_y, grad_weight,
                             write == Write::Overwrite);
    return;
  }
  // partials: (slices, O, C/groups·K·K)
  std::vector<T> partials(static_cast<std::size_t>(slices * weight_elements));
  parallel_for(slices, chunk_work(g, chunk) * chunks / slices, [&](std::int64_t slice) {
    accumulate_filter_chunks(g, chunk, slice * chunks / slices, (slice + 1) * chunks / slices, x,
                             grad_y, partials.data() + slice * weight_elements, true);
  });
  parallel_range(weight_elements, [&](std::int64_t begin, std::int64_t end) {
    for (std::int64_t i = begin; i < end; ++i) {
      T total = partials[static_cast<std::size_t>(i)];
      for (std::int64_t slice = 1; slice < slices; ++slice) {
        total += partials[static_cast<std::size_t>(slice * weight_elements + i)];
      }
      write_value(grad_weight[i], total, write);
    }
  });
}

// ---- depthwise path (direct loops over the kernel taps; groups == C == O)

// Calls visit(tap_input, output_row, tap, cols) for every (kernel tap, output row) pair that
// reaches the input: output column ow of that row reads input element tap_input.at(ow) of the
// plane, and cols are the output columns whose reads fall inside the input.
// Where output column ow of one output row reads, for one kernel tap: input element
// row_start + ow·stride + col_offset of the plane.
struct TapInput {
  std::int64_t row_start;
  std::int64_t col_offset;
  std::int64_t stride;
  std::int64_t at(std::int64_t ow) const { return row_start + ow * stride + col_offset; }
};

template <typename Visit>
void for_each_tap_row(const ConvGeometry& g, const Visit& visit) {
  for (std::int64_t kernel_row = 0; kernel_row < g.kernel; ++kernel_row) {
    const std::int64_t row_offset = kernel_row * g.dilation - g.padding;
    const ValidRange rows = valid_outputs(row_offset, g.stride, g.in_height, g.out_height);
    for (std::int64_t kernel_col = 0; kernel_col < g.kernel; ++kernel_col) {
      const std::int64_t col_offset = kernel_col * g.dilation - g.padding;
      const ValidRange cols = valid_outputs(col_offset, g.stride, g.in_width, g.out_width);
      for (std::int64_t oh = rows.begin; oh < rows.end; ++oh) {
        const TapInput tap_input{(oh * g.stride + row_offset) * g.in_width, col_offset, g.stride};
        visit(tap_input, oh * g.out_width, kernel_row * g.kernel + kernel_col, cols);
      }
    }
  }
}

template <typename T>
void conv_forward_depthwise(const ConvGeometry& g, const T* x, const T* weight, T* y) {
  parallel_for(g.batch * g.in_channels, g.taps() * g.out_plane(), [&](std::int64_t plane_index) {
    const T* plane = x + plane_index * g.in_plane();
    const T* filter = weight + plane_index % g.in_channels * g.taps();
    T* out = y + plane_index * g.out_plane();
    std::fill(out, out + g.out_plane(), T(0));
    for_each_tap_row(g, [&](const TapInput& tap_input, std::int64_t out_offset, std::int64_t tap,
                            const ValidRange& cols) {
      T* out_row = out + out_offset;
      const T tap_weight = filter[tap];
      for (std::int64_t ow = cols.begin; ow < cols.end; ++ow) {
        out_row[ow] += tap_weight * plane[tap_input.at(ow)];
      }
    });
  });
}

template <typename T>
void conv_backward_data_depthwise(const ConvGeometry& g, const T* grad_y, const T* weight,
                                  T* grad_x, Write write) {
  parallel_for(g.batch * g.in_channels, g.taps() * g.out_plane(), [&](std::int64_t plane_index) {
    const T* upstream = grad_y + plane_index * g.out_plane();
    const T* filter = weight + plane_index % g.in_channels * g.taps();
    T* plane = grad_x + plane_index * g.in_plane();
    if (write == Write::Overwrite) std::fill(plane, plane + g.in_plane(), T(0));
    for_each_tap_row(g, [&](const TapInput& tap_input, std::int64_t out_offset, std::int64_t tap,
                            const ValidRange& cols) {
      const T* out_row = upstream + out_offset;
      const T tap_weight = filter[tap];
      for (std::int64_t ow = cols.begin; ow < cols.end; ++ow) {
        plane[tap_input.at(ow)] += tap_weight * out_row[ow];
      }
    });
  });
}

template <typename T>
void conv_backward_filter_depthwise(const ConvGeometry& g, const T* x, const T* grad_y,
                                    T* grad_weight, Write write) {
  parallel_for(g.in_channels, g.batch * g.taps() * g.out_plane(), [&](std::int64_t channel) {
    std::vector<T> totals(static_cast<std::size_t>(g.taps()), T(0));
    for (std::int64_t sample = 0; sample < g.batch; ++sample) {
      const T* plane = x + (sample * g.in_channels + channel) * g.in_plane();
      const T* upstream = grad_y + (sample * g.in_channels + channel) * g.out_plane();
      for_each_tap_row(g, [&](const TapInput& tap_input, std::int64_t out_offset, std::int64_t tap,
                              const ValidRange& cols) {
        const T* out_row = upstream + out_offset;
        T total = T(0);
        for (std::int64_t ow = cols.begin; ow < cols.end; ++ow) {
          total += out_row[ow] * plane[tap_input.at(ow)];
        }
        totals[static_cast<std::size_t>(tap)] += total;
      });
    }
    T* filter = grad_weight + channel * g.taps();
    for (std::int64_t tap = 0; tap < g.taps(); ++tap) {
      write_value(filter[tap], totals[static_cast<std::size_t>(tap)], write);
    }
  });
}

}  // namespace

void CpuBackend::conv2d_forward_exact(const Tensor& x, const Tensor& weight, Tensor& y,
                                      const Conv2dParams& params) {
  const char* op = "conv2d_forward";
  dispatch_float(x.dtype(), op, [&](auto tag) {
    using T = decltype(tag);
    check_tensor(op, "x", x, x.dtype());
    check_tensor(op, "weight", weight, x.dtype());
    const ConvGeometry geometry = make_geometry(x.shape(), weight.shape(), params);
    check_tensor(op, "y", y, x.dtype(), conv2d_output_shape(x.shape(), weight.shape(), params));
    if (geometry.depthwise()) {
      conv_forward_depthwise<T>(geometry, x.data<T>(), weight.data<T>(), y.data<T>());
    } else if (use_winograd<T>(geometry, params)) {
      winograd_forward(winograd_shape(geometry), x.data<float>(), weight.data<float>(),
                       y.data<float>());
    } else {
      conv_forward_gemm<T>(geometry, x.data<T>(), weight.data<T>(), y.data<T>());
    }
  });
}

void CpuBackend::conv2d_backward_data_exact(const Tensor& grad_y, const Tensor& weight,
                                            Tensor& grad_x, const Conv2dParams& params,
                                            Write write) {
  const char* op = "conv2d_backward_data";
  dispatch_float(grad_y.dtype(), op, [&](auto tag) {
    using T = decltype(tag);
    check_tensor(op, "grad_x", grad_x, grad_y.dtype());
    check_tensor(op, "weight", weight, grad_y.dtype());
    const ConvGeometry geometry = make_geometry(grad_x.shape(), weight.shape(), params);
    check_tensor(op, "grad_y", grad_y, grad_y.dtype(),
                 conv2d_output_shape(grad_x.shape(), weight.shape(), params));
    if (geometry.depthwise()) {
      conv_backward_data_depthwise<T>(geometry, grad_y.data<T>(), weight.data<T>(),
                                      grad_x.data<T>(), write);
    } else if (use_winograd<T>(geometry, params)) {
      winograd_backward_data(winograd_shape(geometry), grad_y.data<float>(), weight.data<float>(),
                             grad_x.data<float>(), write);
    } else {
      conv_backward_data_gemm<T>(geometry, grad_y.data<T>(), weight.data<T>(), grad_x.data<T>(),
                                 write);
    }
  });
}

void CpuBackend::conv2d_backward_filter_exact(const Tensor& x, const Tensor& grad_y,
                                              Tensor& grad_weight, const Conv2dParams& params,
                                              Write write) {
  const char* op = "conv2d_backward_filter";
  dispatch_float(x.dtype(), op, [&](auto tag) {
    using T = decltype(tag);
    check_tensor(op, "x", x, x.dtype());
    check_tensor(op, "grad_weight", grad_weight, x.dtype());
    const ConvGeometry geometry = make_geometry(x.shape(), grad_weight.shape(), params);
    check_tensor(op, "grad_y", grad_y, x.dtype(),
                 conv2d_output_shape(x.shape(), grad_weight.shape(), params));
    if (geometry.depthwise()) {
      conv_backward_filter_depthwise<T>(geometry, x.data<T>(), grad_y.data<T>(),
                                        grad_weight.data<T>(), write);
    } else if (use_winograd<T>(geometry, params)) {
      winograd_backward_filter(winograd_shape(geometry), x.data<float>(), grad_y.data<float>(),
                               grad_weight.data<float>(), write);
    } else {
      conv_backward_filter_gemm<T>(geometry, x.data<T>(), grad_y.data<T>(), grad_weight.data<T>(),
                                   write);
    }
  });
}

void CpuBackend::add_channel_bias(Tensor& y, const Tensor& bias) {
  const char* op = "add_channel_bias";
  dispatch_float(y.dtype(), op, [&](auto tag) {
    using T = decltype(tag);
    check_tensor(op, "y", y, y.dtype());
    MD_CHECK(y.ndim() >= 2, "cpu ", op, ": y ", y.describe(), " is not (N, C, ...)");
    const std::int64_t channels = y.dim(1);
    check_tensor(op, "bias", bias, y.dtype(), Shape{channels});
    const std::int64_t inner = channels == 0 ? 0 : y.numel() / (y.dim(0) * channels);
    T* out = y.data<T>();
    const T* values = bias.data<T>();
    parallel_for(y.dim(0) * channels, inner, [&](std::int64_t plane_index) {
      const T value = values[plane_index % channels];
      T* plane = out + plane_index * inner;
      for (std::int64_t i = 0; i < inner; ++i) plane[i] += value;
    });
  });
}

void CpuBackend::channel_bias_backward(const Tensor& grad_y, Tensor& grad_bias, Write write) {
  const char* op = "channel_bias_backward";
  dispatch_float(grad_y.dtype(), op, [&](auto tag) {
    using T = decltype(tag);
    check_tensor(op, "grad_y", grad_y, grad_y.dtype());
    MD_CHECK(grad_y.ndim() >= 2, "cpu ", op, ": grad_y ", grad_y.describe(), " is not (N, C, ...)");
    const std::int64_t batch = grad_y.dim(0);
    const std::int64_t channels = grad_y.dim(1);
    check_tensor(op, "grad_bias", grad_bias, grad_y.dtype(), Shape{channels});
    const std::int64_t inner =
        channels == 0 || batch == 0 ? 0 : grad_y.numel() / (batch * channels);
    const T* upstream = grad_y.data<T>();
    T* out = grad_bias.data<T>();
    parallel_for(channels, batch * inner, [&](std::int64_t channel) {
      T total = T(0);
      for (std::int64_t sample = 0; sample < batch; ++sample) {
        const T* plane = upstream + (sample * channels + channel) * inner;
        for (std::int64_t i = 0; i < inner; ++i) total += plane[i];
      }
      write_value(out[channel], total, write);
    });
  });
}

}  // namespace md::cpu
