// Winograd F(2x2, 3x3) (Lavin & Gray 2016) for the CPU backend's 3x3 stride-1 convolutions.
// A 2x2 output tile is A^T [(G g G^T) ⊙ (B^T d B)] A for the 4x4 input patch d that it reads, so
// the product over channels becomes 16 GEMMs, one per position ξ of the 4x4 transformed tile:
// M[ξ] (D x tiles) = U[ξ] (D x S) · V[ξ] (S x tiles), with 2.25x fewer multiplications than
// im2col. The backward-data pass is the same convolution of grad_y with the kernel rotated by
// 180° and the channels swapped (offset 2 − padding); the filter gradient is taken in the
// transformed domain: dU[ξ] = Σ_tiles (A dY A^T)[ξ] · V[ξ]^T, then grad_weight = G^T dU G.
//
// Tiles are processed in blocks whose size depends only on the channel counts (the transformed
// block stays in L2); a block writes only its own output tiles, and blocks run in parallel (a
// lone block splits its GEMMs instead, in gemm's shape-fixed pieces). The filter gradient sums
// blocks in order within at most 4 slices (from the shape alone), and adds the slices in order,
// so no result depends on the thread count. The transforms first copy a plane's rows into
// phase arrays (even and odd rows and columns, each tile's patch at one flat index), so that
// each transform is one unit-stride loop over a sample's tiles that the compiler vectorizes;
// they add and subtract in the same order as the formulas (results as before, bit for bit).
// F(2x2, 3x3) keeps float32 errors at ~1e-7 of the output's scale
// (tests/backend/test_winograd.cpp); F(4x4, 3x3), with transform coefficients up to 8, was not
// tried.
#include "backend/cpu/winograd.h"

#include <type_traits>
#include <vector>

#include "backend/cpu/cpu_common.h"

namespace md::cpu {
namespace {

constexpr std::int64_t kPositions = 16;  // 4x4 transformed tile

// A stride-1 3x3 convolution src: (N, S, Hs, Ws) -> dst: (N, D, Hd, Wd) cut into 2x2 output
// tiles: tile (i, j) writes dst rows 2i, 2i + 1 and columns 2j, 2j + 1 (those inside the map)
// and reads the 4x4 src patch whose top-left corner is (2i − offset, 2j − offset), zero outside.
struct TileConv {
  std::int64_t batch = 0;
  std::int64_t src_channels = 0;
  std::int64_t src_height = 0;
  std::int64_t src_width = 0;
  std::int64_t dst_channels = 0;
  std::int64_t dst_height = 0;
  std::int64_t dst_width = 0;
  std::int64_t offset = 0;

  std::int64_t tile_rows() const { return (dst_height + 1) / 2; }
  std::int64_t tile_cols() const { return (dst_width + 1) / 2; }
  std::int64_t tiles() const { return batch * tile_rows() * tile_cols(); }
  std::int64_t src_plane() const { return src_height * src_width; }
  std::int64_t dst_plane() const { return dst_height * dst_width; }
};

TileConv forward_tiles(const WinogradShape& s) {
  return TileConv{s.batch,        s.in_channels, s.in_height, s.in_width,
                  s.out_channels, s.out_height,  s.out_width, s.padding};
}

// grad_x = grad_y convolved with the rotated kernel, "padding" 2 − padding (negative: a crop).
TileConv backward_data_tiles(const WinogradShape& s) {
  return TileConv{s.batch,       s.out_channels, s.out_height, s.out_width,
                  s.in_channels, s.in_height,    s.in_width,   2 - s.padding};
}

// Tiles per block: the transformed block, 16·(S + D)·tiles floats, within about 1 MiB (L2),
// from 64 tiles (a GEMM narrower than that wastes the BLAS kernel) to 512.
std::int64_t block_tiles(std::int64_t src_channels, std::int64_t dst_channels) {
  constexpr std::int64_t target_floats = std::int64_t{1} << 18;
  const std::int64_t per_tile = kPositions * std::max<std::int64_t>(src_channels + dst_channels, 1);
  return std::clamp<std::int64_t>(target_floats / per_tile / 16 * 16, 64, 512);
}

// Floats between the 16 position planes of a transformed block of `channels` x `count`: one
// cache line more than the plane, so that the 16 streams of a transform do not all fall into
// the same cache set (plane sizes are mostly powers of two).
std::int64_t position_stride(std::int64_t channels, std::int64_t count) {
  return channels * count + 16;
}

// Calls run(sample, tile_row, first_col, end_col, at) for the runs of consecutive tiles of one
// tile row that make up tiles [first, first + count); `at` is the run's index in the block.
template <typename Run>
void for_each_tile_run(const TileConv& c, std::int64_t first, std::int64_t count, const Run& run) {
  const std::int64_t end = first + count;
  for (std::int64_t tile = first; tile < end;) {
    const std::int64_t row_index = tile / c.tile_cols();
    const std::int64_t first_col = tile % c.tile_cols();
    const std::int64_t end_col = std::min(c.tile_cols(), first_col + (end - tile));
    run(row_index / c.tile_rows(), row_index % c.tile_rows(), first_col, end_col, tile - first);
    tile += end_col - first_col;
  }
}

// One run of consecutive tiles of one tile row: tile columns [first_col, end_col) of tile row
// `tile_row` of sample `sample`, at index `at` of its block.
struct TileRun {
  std::int64_t sample = 0;
  std::int64_t tile_row = 0;
  std::int64_t first_col = 0;
  std::int64_t end_col = 0;
  std::int64_t at = 0;
};

// Calls segment(runs, size) for each maximal group of the block's runs that lie in one sample,
// in order; the runs of a group cover consecutive tile rows.
template <typename Segment>
void for_each_sample_segment(const TileConv& c, std::int64_t first, std::int64_t count,
                             std::vector<TileRun>& runs, const Segment& segment) {
  runs.clear();
  for_each_tile_run(c, first, count,
                    [&](std::int64_t sample, std::int64_t tile_row, std::int64_t first_col,
                        std::int64_t end_col, std::int64_t at) {
                      runs.push_back(TileRun{sample, tile_row, first_col, end_col, at});
                    });
  for (std::size_t begin = 0; begin < runs.size();) {
    std::size_t end = begin + 1;
    while (end < runs.size() && runs[end].sample == runs[begin].sample) ++end;
    segment(runs.data() + begin, static_cast<std::int64_t>(end - begin));
    begin = end;
  }
}

// phases: (8, rows, tile_cols) = for tile rows [first_tile_row, first_tile_row + rows) of the
// plane, array 4p + q holds the src element at row 2i + p − offset and column 2j + q − offset
// for tile (i, j), zero outside the plane: with p = 0, 1 and the same arrays one tile row down,
// the 16 elements of every tile's 4x4 patch at one flat index. Each src element is copied
// twice (columns 2j + 2 and 2j + 3 are those of tile j + 1), and the transform that follows is
// one unit-stride loop over all of a plane's tiles, which the compiler vectorizes.
void split_phases(const float* __restrict plane, const TileConv& c, std::int64_t first_tile_row,
                  std::int64_t rows, float* __restrict phases) {
  const std::int64_t cols = c.tile_cols();
  const std::int64_t pitch = rows * cols;  // floats between two phase arrays
  const std::int64_t width = c.src_width;
  // Tiles [inner_begin, inner_end) read only columns inside the plane.
  const std::int64_t inner_begin = std::clamp<std::int64_t>((c.offset + 1) / 2, 0, cols);
  const std::int64_t inner_end = std::clamp<std::int64_t>(
      width + c.offset >= 4 ? (width + c.offset - 4) / 2 + 1 : 0, inner_begin, cols);
  for (std::int64_t i = 0; i < rows; ++i) {
    for (std::int64_t p = 0; p < 2; ++p) {
      float* q0 = phases + (4 * p) * pitch + i * cols;
      float* q1 = q0 + pitch;
      float* q2 = q1 + pitch;
      float* q3 = q2 + pitch;
      const std::int64_t row = 2 * (first_tile_row + i) + p - c.offset;
      if (row < 0 || row >= c.src_height) {
        for (std::int64_t j = 0; j < cols; ++j) q0[j] = q1[j] = q2[j] = q3[j] = 0.0f;
        continue;
      }
      const float* line = plane + row * width;
      const auto at = [&](std::int64_t col) { return col >= 0 && col < width ? line[col] : 0.0f; };
      for (std::int64_t j = 0; j < inner_begin; ++j) {
        const std::int64_t col = 2 * j - c.offset;
        q0[j] = at(col);
        q1[j] = at(col + 1);
        q2[j] = at(col + 2);
        q3[j] = at(col + 3);
      }
      const float* shifted = line - c.offset;
      for (std::int64_t j = inner_begin; j < inner_end; ++j) {
        q0[j] = shifted[2 * j];
        q1[j] = shifted[2 * j + 1];
        q2[j] = shifted[2 * j + 2];
        q3[j] = shifted[2 * j + 3];
      }
      for (std::int64_t j = inner_end; j < cols; ++j) {
        const std::int64_t col = 2 * j - c.offset;
        q0[j] = at(col);
        q1[j] = at(col + 1);
        q2[j] = at(col + 2);
        q3[j] = at(col + 3);
      }
    }
  }
}

// Row `which` of B^T d from the 4 patch rows: d0 − d2, d1 + d2, d2 − d1, d1 − d3.
template <int which>
inline float input_row_combination(float d0, float d1, float d2, float d3) {
  if constexpr (which == 0) return d0 - d2;
  if constexpr (which == 1) return d1 + d2;
  if constexpr (which == 2) return d2 - d1;
  return d1 - d3;
}

// out0-3: (length) = positions 4·which .. 4·which + 3 of B^T d B for `length` tiles at flat
// indices [begin, begin + length) of split_phases' arrays (`pitch` floats apart, tile row
// `cols` floats long): with t = row `which` of B^T d and t0-t3 its columns,
// t0 − t2, t1 + t2, t2 − t1, t1 − t3.
template <int which>
void input_positions(const float* __restrict phases, std::int64_t pitch, std::int64_t cols,
                     std::int64_t begin, std::int64_t length, float* __restrict out0,
                     float* __restrict out1, float* __restrict out2, float* __restrict out3) {
  const float* __restrict top[4];     // patch row 0, phase q
  const float* __restrict second[4];  // patch row 1
  for (int q = 0; q < 4; ++q) {
    top[q] = phases + q * pitch + begin;
    second[q] = phases + (4 + q) * pitch + begin;
  }
  // Patch rows 2 and 3 are rows 0 and 1 of the tile one row down: `cols` further on.
  const auto column = [&](int q, std::int64_t k) {
    return input_row_combination<which>(top[q][k], second[q][k], top[q][k + cols],
                                        second[q][k + cols]);
  };
  for (std::int64_t k = 0; k < length; ++k) {
    const float t0 = column(0, k);
    const float t1 = column(1, k);
    const float t2 = column(2, k);
    const float t3 = column(3, k);
    out0[k] = t0 - t2;
    out1[k] = t1 + t2;
    out2[k] = t2 - t1;
    out3[k] = t1 - t3;
  }
}

// The part of a block of tiles [first, first + count) that lies in one sample: its tiles
// [begin_tile, end_tile) within the sample's plane, the tile rows to read from first_tile_row
// (halo_rows more below the last one), and where they land in the block.
struct SampleTiles {
  std::int64_t first_tile_row = 0;
  std::int64_t rows = 0;    // tile rows read, halo included
  std::int64_t pitch = 0;   // rows * tile columns
  std::int64_t begin = 0;   // first tile, counted from the start of first_tile_row
  std::int64_t length = 0;  // tiles of the block in this sample
  std::int64_t at = 0;      // offset of the sample's first tile in the block
};

SampleTiles sample_tiles(const TileConv& c, std::int64_t sample, std::int64_t first,
                         std::int64_t count, std::int64_t halo_rows) {
  const std::int64_t cols = c.tile_cols();
  const std::int64_t plane_tiles = c.tile_rows() * cols;
  const std::int64_t sample_first = sample * plane_tiles;
  const std::int64_t begin_tile = std::max(first, sample_first) - sample_first;
  const std::int64_t end_tile = std::min(first + count, sample_first + plane_tiles) - sample_first;
  SampleTiles tiles;
  tiles.first_tile_row = begin_tile / cols;
  tiles.rows = (end_tile - 1) / cols - tiles.first_tile_row + 1 + halo_rows;
  tiles.pitch = tiles.rows * cols;
  tiles.begin = begin_tile - tiles.first_tile_row * cols;
  tiles.length = end_tile - begin_tile;
  tiles.at = sample_first + begin_tile - first;
  return tiles;
}

// v: (16, S, count) = B^T d B for the src patch d of every tile in [first, first + count),
// position planes `stride` floats apart. The block's tiles of one sample are a contiguous range
// of the sample's flat tile indices; per channel, their rows are split into phases once and
// transformed in one loop per row of B^T d.
// Calls visit(plane, tiles, out) for every (sample, channel) plane of `planes` ((N, channels)
// planes of plane_size floats) that the block of tiles [first, first + count) touches, in
// memory order: `tiles` are the sample's tiles in the block (halo_rows more rows read below
// the last), out = block + channel · count + tiles.at.
template <typename Visit>
void for_each_block_plane(const TileConv& c, const float* planes, std::int64_t channels,
                          std::int64_t plane_size, std::int64_t first, std::int64_t count,
                          std::int64_t halo_rows, float* block, const Visit& visit) {
  const std::int64_t plane_tiles = c.tile_rows() * c.tile_cols();
  const std::int64_t end = first + count;
  for (std::int64_t sample = first / plane_tiles; sample * plane_tiles < end; ++sample) {
    const SampleTiles tiles = sample_tiles(c, sample, first, count, halo_rows);
    for (std::int64_t channel = 0; channel < channels; ++channel) {
      visit(planes + (sample * channels + channel) * plane_size, tiles,
            block + channel * count + tiles.at);
    }
  }
}

// Calls f(std::integral_constant<int, r>) for the four rows r of a 4x4 tile transform.
template <typename F>
void for_each_position_row(const F& f) {
  f(std::integral_constant<int, 0>{});
  f(std::integral_constant<int, 1>{});
  f(std::integral_constant<int, 2>{});
  f(std::integral_constant<int, 3>{});
}

void transform_input(const TileConv& c, const float* src, std::int64_t first, std::int64_t count,
                     float* v, std::int64_t stride) {
  const std::int64_t cols = c.tile_cols();
  std::vector<float> buffer(static_cast<std::size_t>(8 * (c.tile_rows() + 1) * cols));
  // The tile rows read, the last one's lower neighbour included.
  for_each_block_plane(c, src, c.src_channels, c.src_plane(), first, count, 1, v,
                       [&](const float* plane, const SampleTiles& tiles, float* out) {
                         split_phases(plane, c, tiles.first_tile_row, tiles.rows, buffer.data());
                         for_each_position_row([&](auto row) {
                           float* rows = out + 4 * decltype(row)::value * stride;
                           input_positions<decltype(row)::value>(
                               buffer.data(), tiles.pitch, cols, tiles.begin, tiles.length, rows,
                               rows + stride, rows + 2 * stride, rows + 3 * stride);
                         });
                       });
}

// even, odd: (run) = columns 0 and 1 of both rows of A^T M A for `run` tiles side by side, for
// the 4x4 M whose positions 4a + b are m + (4a + b) · stride: row0 from the sums
// (M A)[a][·] over a = 0-2, row1 from a = 1-3 with the signs of A^T.
void output_tiles(const float* __restrict m, std::int64_t stride, std::int64_t run,
                  float* __restrict row0_even, float* __restrict row0_odd,
                  float* __restrict row1_even, float* __restrict row1_odd) {
  const float* __restrict m00 = m;
  const float* __restrict m01 = m + stride;
  const float* __restrict m02 = m + 2 * stride;
  const float* __restrict m03 = m + 3 * stride;
  const float* __restrict m10 = m + 4 * stride;
  const float* __restrict m11 = m + 5 * stride;
  const float* __restrict m12 = m + 6 * stride;
  const float* __restrict m13 = m + 7 * stride;
  const float* __restrict m20 = m + 8 * stride;
  const float* __restrict m21 = m + 9 * stride;
  const float* __restrict m22 = m + 10 * stride;
  const float* __restrict m23 = m + 11 * stride;
  const float* __restrict m30 = m + 12 * stride;
  const float* __restrict m31 = m + 13 * stride;
  const float* __restrict m32 = m + 14 * stride;
  const float* __restrict m33 = m + 15 * stride;
  for (std::int64_t j = 0; j < run; ++j) {
    const float s00 = m00[j] + m01[j] + m02[j];
    const float s01 = m01[j] - m02[j] - m03[j];
    const float s10 = m10[j] + m11[j] + m12[j];
    const float s11 = m11[j] - m12[j] - m13[j];
    const float s20 = m20[j] + m21[j] + m22[j];
    const float s21 = m21[j] - m22[j] - m23[j];
    const float s30 = m30[j] + m31[j] + m32[j];
    const float s31 = m31[j] - m32[j] - m33[j];
    row0_even[j] = s00 + s10 + s20;
    row0_odd[j] = s01 + s11 + s21;
    row1_even[j] = s10 - s20 - s30;
    row1_odd[j] = s11 - s21 - s31;
  }
}

// out: (width) (+)= one output row interleaved from its even and odd columns: out[2j] = even[j],
// out[2j + 1] = odd[j]; `width` may be odd (the last tile cut by the map's edge).
void store_output_row(const float* __restrict even, const float* __restrict odd, std::int64_t width,
                      float* __restrict out, Write write) {
  const std::int64_t full = width / 2;
  if (write == Write::Overwrite) {
    for (std::int64_t j = 0; j < full; ++j) {
      out[2 * j] = even[j];
      out[2 * j + 1] = odd[j];
    }
    if (width % 2 != 0) out[width - 1] = even[full];
  } else {
    for (std::int64_t j = 0; j < full; ++j) {
      out[2 * j] += even[j];
      out[2 * j + 1] += odd[j];
    }
    if (width % 2 != 0) out[width - 1] += even[full];
  }
}

// dst tiles [first, first + count) (+)= A^T M A, for m: (16, D, count) with position planes
// `stride` floats apart; only the parts of the 2x2 tiles inside the dst map are written.
void transform_output(const TileConv& c, const float* m, std::int64_t first, std::int64_t count,
                      std::int64_t stride, float* dst, Write write) {
  const std::int64_t plane_tiles = c.tile_rows() * c.tile_cols();
  // Rows 0 and 1 of the output tiles, even and odd columns, for one sample's tiles of the block.
  std::vector<float> buffer(static_cast<std::size_t>(4 * plane_tiles));
  float* row0_even = buffer.data();
  float* row0_odd = row0_even + plane_tiles;
  float* row1_even = row0_odd + plane_tiles;
  float* row1_odd = row1_even + plane_tiles;
  std::vector<TileRun> runs;
  for_each_sample_segment(c, first, count, runs, [&](const TileRun* group, std::int64_t size) {
    const TileRun& last = group[size - 1];
    const std::int64_t base = group[0].at;
    const std::int64_t length = last.at + (last.end_col - last.first_col) - base;
    for (std::int64_t channel = 0; channel < c.dst_channels; ++channel) {
      output_tiles(m + channel * count + base, stride, length, row0_even, row0_odd, row1_even,
                   row1_odd);
      float* plane = dst + (group[0].sample * c.dst_channels + channel) * c.dst_plane();
      for (std::int64_t k = 0; k < size; ++k) {
        const TileRun& r = group[k];
        const std::int64_t run = r.end_col - r.first_col;
        const std::int64_t top = 2 * r.tile_row;
        const std::int64_t left = 2 * r.first_col;
        const std::int64_t width = std::min(2 * run, c.dst_width - left);
        const std::int64_t at = r.at - base;
        float* out = plane + top * c.dst_width + left;
        store_output_row(row0_even + at, row0_odd + at, width, out, write);
        if (top + 1 < c.dst_height) {
          store_output_row(row1_even + at, row1_odd + at, width, out + c.dst_width, write);
        }
      }
    }
  });
}

// phases: (4, rows, tile_cols) = for tile rows [first_tile_row, first_tile_row + rows) of the
// dst-gradient plane, array 2p + q holds the element at row 2i + p and column 2j + q of tile
// (i, j), zero outside the plane: each tile's 2x2 dY at one flat index, as in split_phases.
void split_gradient_phases(const float* __restrict plane, const TileConv& c,
                           std::int64_t first_tile_row, std::int64_t rows,
                           float* __restrict phases) {
  const std::int64_t cols = c.tile_cols();
  const std::int64_t pitch = rows * cols;
  const std::int64_t width = c.dst_width;
  const std::int64_t inner_end = std::min(width / 2, cols);  // tiles with both columns inside
  for (std::int64_t i = 0; i < rows; ++i) {
    for (std::int64_t p = 0; p < 2; ++p) {
      float* q0 = phases + (2 * p) * pitch + i * cols;
      float* q1 = q0 + pitch;
      const std::int64_t row = 2 * (first_tile_row + i) + p;
      if (row >= c.dst_height) {
        for (std::int64_t j = 0; j < cols; ++j) q0[j] = q1[j] = 0.0f;
        continue;
      }
      const float* line = plane + row * width;
      for (std::int64_t j = 0; j < inner_end; ++j) {
        q0[j] = line[2 * j];
        q1[j] = line[2 * j + 1];
      }
      for (std::int64_t j = inner_end; j < cols; ++j) {  // the last tile of an odd width
        q0[j] = line[2 * j];
        q1[j] = 0.0f;
      }
    }
  }
}

// out0-3: (length) = positions 4·which .. 4·which + 3 of A dY A^T for `length` tiles at flat
// indices [begin, begin + length) of split_gradient_phases' arrays (`pitch` floats apart): with
// q = row `which` of A dY (dY0, dY0 + dY1, dY0 − dY1, −dY1) and q0, q1 its columns,
// q0, q0 + q1, q0 − q1, −q1.
template <int which>
void gradient_positions(const float* __restrict phases, std::int64_t pitch, std::int64_t begin,
                        std::int64_t length, float* __restrict out0, float* __restrict out1,
                        float* __restrict out2, float* __restrict out3) {
  const float* __restrict e0 = phases + begin;              // row 0, column 0
  const float* __restrict o0 = phases + pitch + begin;      // row 0, column 1
  const float* __restrict e1 = phases + 2 * pitch + begin;  // row 1, column 0
  const float* __restrict o1 = phases + 3 * pitch + begin;  // row 1, column 1
  for (std::int64_t k = 0; k < length; ++k) {
    float even = 0.0f;
    float odd = 0.0f;
    if constexpr (which == 0) {
      even = e0[k];
      odd = o0[k];
    } else if constexpr (which == 1) {
      even = e0[k] + e1[k];
      odd = o0[k] + o1[k];
    } else if constexpr (which == 2) {
      even = e0[k] - e1[k];
      odd = o0[k] - o1[k];
    } else {
      even = -e1[k];
      odd = -o1[k];
    }
    out0[k] = even;
    out1[k] = even + odd;
    out2[k] = even - odd;
    out3[k] = -odd;
  }
}

// m: (16, D, count) = A dY A^T for the 2x2 dst-gradient tile dY of every tile (zero outside the
// dst map), position planes `stride` floats apart: the gradient of each tile's U ⊙ V. Walks
// the block like transform_input.
void transform_output_gradient(const TileConv& c, const float* grad_dst, std::int64_t first,
                               std::int64_t count, float* m, std::int64_t stride) {
  std::vector<float> buffer(static_cast<std::size_t>(4 * c.tile_rows() * c.tile_cols()));
  for_each_block_plane(
      c, grad_dst, c.dst_channels, c.dst_plane(), first, count, 0, m,
      [&](const float* plane, const SampleTiles& tiles, float* out) {
        split_gradient_phases(plane, c, tiles.first_tile_row, tiles.rows, buffer.data());
        for_each_position_row([&](auto row) {
          float* rows = out + 4 * decltype(row)::value * stride;
          gradient_positions<decltype(row)::value>(buffer.data(), tiles.pitch, tiles.begin,
                                                   tiles.length, rows, rows + stride,
                                                   rows + 2 * stride, rows + 3 * stride);
        });
      });
}

// u[16] (stride `stride` between positions) = G g G^T for g: (3, 3), read as g[3 · row + col]
// or, rotated by 180°, g[8 − 3 · row − col].
void transform_filter(const float* g, bool rotate, float* u, std::int64_t stride) {
  float k[3][3];
  for (int row = 0; row < 3; ++row) {
    for (int col = 0; col < 3; ++col)
      k[row][col] = rotate ? g[8 - 3 * row - col] : g[3 * row + col];
  }
  float rows[4][3];  // G g
  for (int col = 0; col < 3; ++col) {
    rows[0][col] = k[0][col];
    rows[1][col] = 0.5f * (k[0][col] + k[1][col] + k[2][col]);
    rows[2][col] = 0.5f * (k[0][col] - k[1][col] + k[2][col]);
    rows[3][col] = k[2][col];
  }
  for (int a = 0; a < 4; ++a) {
    u[(4 * a) * stride] = rows[a][0];
    u[(4 * a + 1) * stride] = 0.5f * (rows[a][0] + rows[a][1] + rows[a][2]);
    u[(4 * a + 2) * stride] = 0.5f * (rows[a][0] - rows[a][1] + rows[a][2]);
    u[(4 * a + 3) * stride] = rows[a][2];
  }
}

// Reusable per-thread buffers, kept between calls: a fresh allocation of the transformed
// filters (16 MiB for 512 x 512 channels) costs more in page faults than the transform itself.
enum class Scratch { Block, Filters, Partials };

float* scratch(Scratch which, std::int64_t size) {
  thread_local std::vector<float> buffers[3];
  std::vector<float>& buffer = buffers[static_cast<int>(which)];
  if (buffer.size() < static_cast<std::size_t>(size)) buffer.resize(static_cast<std::size_t>(size));
  return buffer.data();
}

// Channel pairs per piece of the filter transforms: each piece is staged in a small buffer and
// copied out as 16 runs, rather than written with a stride of a whole position plane (a power
// of two for most layers: every store of a pair would fall into the same cache set).
constexpr std::int64_t kPairPiece = 64;

// u: (16, D, S) for the tile convolution from S to D channels. Forward: D = O, S = C and
// u[ξ][o][c] from weight[o][c]; backward data: D = C, S = O and u[ξ][c][o] from weight[o][c]
// rotated. weight: (O, C, 3, 3). Returns the Filters scratch buffer of the calling thread.
const float* transformed_filters(const float* weight, std::int64_t out_channels,
                                 std::int64_t in_channels, bool backward_data) {
  const std::int64_t pairs = out_channels * in_channels;
  float* u = scratch(Scratch::Filters, kPositions * pairs);
  const std::int64_t pieces = (pairs + kPairPiece - 1) / kPairPiece;
  parallel_for(pieces, 64 * kPairPiece, [&](std::int64_t piece) {
    float staged[kPositions * kPairPiece];  // (16, piece length)
    const std::int64_t first = piece * kPairPiece;
    const std::int64_t length = std::min(kPairPiece, pairs - first);
    for (std::int64_t k = 0; k < length; ++k) {
      // The pair in the destination order: (o, c) forward, (c, o) backward data.
      const std::int64_t at = first + k;
      const std::int64_t out_channel = backward_data ? at % out_channels : at / in_channels;
      const std::int64_t in_channel = backward_data ? at / out_channels : at % in_channels;
      transform_filter(weight + (out_channel * in_channels + in_channel) * 9, backward_data,
                       staged + k, kPairPiece);
    }
    for (std::int64_t position = 0; position < kPositions; ++position) {
      std::copy(staged + position * kPairPiece, staged + position * kPairPiece + length,
                u + position * pairs + first);
    }
  });
  return u;
}

// dst (+)= the tile convolution of src with u: (16, D, S).
void tile_convolution(const TileConv& c, const float* src, const float* u, float* dst,
                      Write write) {
  const std::int64_t tiles = c.tiles();
  const std::int64_t block = block_tiles(c.src_channels, c.dst_channels);
  const std::int64_t blocks = (tiles + block - 1) / block;
  const std::int64_t block_work = kPositions * block * c.src_channels * c.dst_channels;
  parallel_for(blocks, block_work, [&](std::int64_t which) {
    const std::int64_t first = which * block;
    const std::int64_t count = std::min(block, tiles - first);
    const std::int64_t v_stride = position_stride(c.src_channels, count);
    const std::int64_t m_stride = position_stride(c.dst_channels, count);
    float* v = scratch(Scratch::Block, kPositions * (v_stride + m_stride));
    float* m = v + kPositions * v_stride;
    transform_input(c, src, first, count, v, v_stride);
    for (std::int64_t position = 0; position < kPositions; ++position) {
      gemm<float>(CblasNoTrans, CblasNoTrans, c.dst_channels, count, c.src_channels, 1.0f,
                  u + position * c.dst_channels * c.src_channels, c.src_channels,
                  v + position * v_stride, count, 0.0f, m + position * m_stride, count);
    }
    transform_output(c, m, first, count, m_stride, dst, write);
  });
}

// grad_weight[o][c] (+)= G^T dU[o][c] G, where dU is the sum of the `slices` partials, in order.
// partials: (slices, 16, O, C); read in pieces of pairs, for the same reason as the transforms.
void write_filter_gradient(const float* partials, std::int64_t slices, std::int64_t out_channels,
                           std::int64_t in_channels, float* grad_weight, Write write) {
  const std::int64_t pairs = out_channels * in_channels;
  const std::int64_t pieces = (pairs + kPairPiece - 1) / kPairPiece;
  parallel_for(pieces, 64 * kPairPiece * slices, [&](std::int64_t piece) {
    float summed[kPositions * kPairPiece];  // (16, piece length)
    const std::int64_t first = piece * kPairPiece;
    const std::int64_t length = std::min(kPairPiece, pairs - first);
    for (std::int64_t position = 0; position < kPositions; ++position) {
      float* total = summed + position * kPairPiece;
      const float* part = partials + position * pairs + first;
      std::copy(part, part + length, total);
      for (std::int64_t slice = 1; slice < slices; ++slice) {
        part += kPositions * pairs;
        for (std::int64_t k = 0; k < length; ++k) total[k] += part[k];
      }
    }
    for (std::int64_t k = 0; k < length; ++k) {
      float du[4][4];
      for (std::int64_t position = 0; position < kPositions; ++position) {
        du[position / 4][position % 4] = summed[position * kPairPiece + k];
      }
      float rows[3][4];  // G^T dU
      for (int col = 0; col < 4; ++col) {
        rows[0][col] = du[0][col] + 0.5f * (du[1][col] + du[2][col]);
        rows[1][col] = 0.5f * (du[1][col] - du[2][col]);
        rows[2][col] = 0.5f * (du[1][col] + du[2][col]) + du[3][col];
      }
      float* out = grad_weight + (first + k) * 9;
      for (int a = 0; a < 3; ++a) {
        write_value(out[3 * a], rows[a][0] + 0.5f * (rows[a][1] + rows[a][2]), write);
        write_value(out[3 * a + 1], 0.5f * (rows[a][1] - rows[a][2]), write);
        write_value(out[3 * a + 2], 0.5f * (rows[a][1] + rows[a][2]) + rows[a][3], write);
      }
    }
  });
}

}  // namespace

bool winograd_applies(const WinogradShape& shape, std::int64_t kernel, const Conv2dParams& params) {
  if (kernel != 3 || params.stride != 1 || params.dilation != 1 || params.groups != 1) {
    return false;
  }
  if (shape.in_channels * shape.out_channels < winograd_min_channel_product) return false;
  // 16 products per 2x2 tile against 9 per output: ragged small maps (3x3, 1x1) pay for the
  // tiles' unused outputs; ask for at most 3/4 of im2col's multiplications.
  const std::int64_t tiles = ((shape.out_height + 1) / 2) * ((shape.out_width + 1) / 2);
  return 4 * kPositions * tiles <= 3 * 9 * shape.out_height * shape.out_width;
}

void winograd_forward(const WinogradShape& shape, const float* x, const float* weight, float* y) {
  const float* u = transformed_filters(weight, shape.out_channels, shape.in_channels, false);
  tile_convolution(forward_tiles(shape), x, u, y, Write::Overwrite);
}

void winograd_backward_data(const WinogradShape& shape, const float* grad_y, const float* weight,
                            float* grad_x, Write write) {
  const float* u = transformed_filters(weight, shape.out_channels, shape.in_channels, true);
  tile_convolution(backward_data_tiles(shape), grad_y, u, grad_x, write);
}

void winograd_backward_filter(const WinogradShape& shape, const float* x, const float* grad_y,
                              float* grad_weight, Write write) {
  constexpr std::int64_t max_slices = 4;
  constexpr std::int64_t max_partial_floats = std::int64_t{1} << 22;
  const TileConv c = forward_tiles(shape);
  const std::int64_t pairs = shape.out_channels * shape.in_channels;
  const std::int64_t tiles = c.tiles();
  if (tiles == 0) {
    if (write == Write::Overwrite) std::fill(grad_weight, grad_weight + pairs * 9, 0.0f);
    return;
  }
  const std::int64_t block = block_tiles(c.src_channels, c.dst_channels);
  const std::int64_t blocks = (tiles + block - 1) / block;
  const std::int64_t slices = std::clamp<std::int64_t>(
      std::min(blocks, max_partial_floats / (kPositions * pairs)), 1, max_slices);
  float* partials = scratch(Scratch::Partials, slices * kPositions * pairs);  // (slices, 16, O, C)
  const std::int64_t slice_work = kPositions * tiles * pairs / slices;
  parallel_for(slices, slice_work, [&](std::int64_t slice) {
    float* du = partials + slice * kPositions * pairs;
    const std::int64_t begin = slice * blocks / slices;
    const std::int64_t end = (slice + 1) * blocks / slices;
    for (std::int64_t which = begin; which < end; ++which) {
      const std::int64_t first = which * block;
      const std::int64_t count = std::min(block, tiles - first);
      const std::int64_t v_stride = position_stride(c.src_channels, count);
      const std::int64_t m_stride = position_stride(c.dst_channels, count);
      float* v = scratch(Scratch::Block, kPositions * (v_stride + m_stride));
      float* m = v + kPositions * v_stride;
      transform_input(c, x, first, count, v, v_stride);
      transform_output_gradient(c, grad_y, first, count, m, m_stride);
      const float beta = which == begin ? 0.0f : 1.0f;
      for (std::int64_t position = 0; position < kPositions; ++position) {
        gemm<float>(CblasNoTrans, CblasTrans, c.dst_channels, c.src_channels, count, 1.0f,
                    m + position * m_stride, count, v + position * v_stride, count, beta,
                    du + position * pairs, c.src_channels);
      }
    }
  });
  write_filter_gradient(partials, slices, shape.out_channels, shape.in_channels, grad_weight,
                        write);
}

}  // namespace md::cpu
