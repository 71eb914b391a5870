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
// so no result depends on the thread count. F(2x2, 3x3) keeps float32 errors at ~1e-7 of the
// output's scale (tests/backend/test_winograd.cpp); F(4x4, 3x3), with transform coefficients
// up to 8, was not tried.
#include "backend/cpu/winograd.h"

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

// row: (length) = plane row `row` at columns [first_col, first_col + length), zero outside the
// plane (rows outside it included).
void load_row(const float* plane, std::int64_t height, std::int64_t width, std::int64_t row,
              std::int64_t first_col, std::int64_t length, float* out) {
  if (row < 0 || row >= height) {
    std::fill(out, out + length, 0.0f);
    return;
  }
  const std::int64_t begin = std::clamp<std::int64_t>(-first_col, 0, length);
  const std::int64_t end = std::clamp<std::int64_t>(width - first_col, begin, length);
  std::fill(out, out + begin, 0.0f);
  std::copy(plane + row * width + first_col + begin, plane + row * width + first_col + end,
            out + begin);
  std::fill(out + end, out + length, 0.0f);
}

// v: (16, S, count) = B^T d B for the src patch d of every tile in [first, first + count),
// position planes `stride` floats apart.
void transform_input(const TileConv& c, const float* src, std::int64_t first, std::int64_t count,
                     float* v, std::int64_t stride) {
  const std::int64_t max_span = 2 * c.tile_cols() + 2;
  std::vector<float> rows(static_cast<std::size_t>(4 * max_span));    // d rows 0-3 of the run
  std::vector<float> combos(static_cast<std::size_t>(4 * max_span));  // B^T d, rows 0-3
  for_each_tile_run(c, first, count,
                    [&](std::int64_t sample, std::int64_t tile_row, std::int64_t first_col,
                        std::int64_t end_col, std::int64_t at) {
                      const std::int64_t run = end_col - first_col;
                      const std::int64_t span = 2 * run + 2;
                      float* d0 = rows.data();
                      float* d1 = d0 + max_span;
                      float* d2 = d1 + max_span;
                      float* d3 = d2 + max_span;
                      float* t0 = combos.data();
                      float* t1 = t0 + max_span;
                      float* t2 = t1 + max_span;
                      float* t3 = t2 + max_span;
                      const std::int64_t top = 2 * tile_row - c.offset;
                      const std::int64_t left = 2 * first_col - c.offset;
                      for (std::int64_t channel = 0; channel < c.src_channels; ++channel) {
                        const float* plane =
                            src + (sample * c.src_channels + channel) * c.src_plane();
                        load_row(plane, c.src_height, c.src_width, top, left, span, d0);
                        load_row(plane, c.src_height, c.src_width, top + 1, left, span, d1);
                        load_row(plane, c.src_height, c.src_width, top + 2, left, span, d2);
                        load_row(plane, c.src_height, c.src_width, top + 3, left, span, d3);
                        for (std::int64_t k = 0; k < span; ++k) {
                          t0[k] = d0[k] - d2[k];
                          t1[k] = d1[k] + d2[k];
                          t2[k] = d2[k] - d1[k];
                          t3[k] = d1[k] - d3[k];
                        }
                        const float* combo_rows[4] = {t0, t1, t2, t3};
                        for (std::int64_t a = 0; a < 4; ++a) {
                          const float* t = combo_rows[a];
                          float* out0 = v + (4 * a) * stride + channel * count + at;
                          float* out1 = out0 + stride;
                          float* out2 = out1 + stride;
                          float* out3 = out2 + stride;
                          for (std::int64_t j = 0; j < run; ++j) {
                            const float* p = t + 2 * j;
                            out0[j] = p[0] - p[2];
                            out1[j] = p[1] + p[2];
                            out2[j] = p[2] - p[1];
                            out3[j] = p[1] - p[3];
                          }
                        }
                      }
                    });
}

// dst tiles [first, first + count) (+)= A^T M A, for m: (16, D, count) with position planes
// `stride` floats apart; only the parts of the 2x2 tiles inside the dst map are written.
void transform_output(const TileConv& c, const float* m, std::int64_t first, std::int64_t count,
                      std::int64_t stride, float* dst, Write write) {
  const std::int64_t max_run = c.tile_cols();
  // (M A)[a][0] and (M A)[a][1] for a = 0..3, then the two output rows.
  std::vector<float> buffer(static_cast<std::size_t>(12 * max_run));
  for_each_tile_run(c, first, count,
                    [&](std::int64_t sample, std::int64_t tile_row, std::int64_t first_col,
                        std::int64_t end_col, std::int64_t at) {
                      const std::int64_t run = end_col - first_col;
                      float* sums = buffer.data();
                      float* row0 = sums + 8 * max_run;
                      float* row1 = row0 + 2 * max_run;
                      const std::int64_t top = 2 * tile_row;
                      const std::int64_t left = 2 * first_col;
                      const std::int64_t width = std::min(2 * run, c.dst_width - left);
                      const std::int64_t height = std::min<std::int64_t>(2, c.dst_height - top);
                      for (std::int64_t channel = 0; channel < c.dst_channels; ++channel) {
                        for (std::int64_t a = 0; a < 4; ++a) {
                          const float* m0 = m + (4 * a) * stride + channel * count + at;
                          const float* m1 = m0 + stride;
                          const float* m2 = m1 + stride;
                          const float* m3 = m2 + stride;
                          float* s0 = sums + 2 * a * max_run;
                          float* s1 = s0 + max_run;
                          for (std::int64_t j = 0; j < run; ++j) {
                            s0[j] = m0[j] + m1[j] + m2[j];
                            s1[j] = m1[j] - m2[j] - m3[j];
                          }
                        }
                        const float* s00 = sums;
                        const float* s01 = sums + max_run;
                        const float* s10 = sums + 2 * max_run;
                        const float* s11 = sums + 3 * max_run;
                        const float* s20 = sums + 4 * max_run;
                        const float* s21 = sums + 5 * max_run;
                        const float* s30 = sums + 6 * max_run;
                        const float* s31 = sums + 7 * max_run;
                        for (std::int64_t j = 0; j < run; ++j) {
                          row0[2 * j] = s00[j] + s10[j] + s20[j];
                          row0[2 * j + 1] = s01[j] + s11[j] + s21[j];
                          row1[2 * j] = s10[j] - s20[j] - s30[j];
                          row1[2 * j + 1] = s11[j] - s21[j] - s31[j];
                        }
                        float* plane = dst + (sample * c.dst_channels + channel) * c.dst_plane();
                        const float* computed[2] = {row0, row1};
                        for (std::int64_t r = 0; r < height; ++r) {
                          float* out = plane + (top + r) * c.dst_width + left;
                          const float* values = computed[r];
                          if (write == Write::Overwrite) {
                            std::copy(values, values + width, out);
                          } else {
                            for (std::int64_t k = 0; k < width; ++k) out[k] += values[k];
                          }
                        }
                      }
                    });
}

// m: (16, D, count) = A dY A^T for the 2x2 dst-gradient tile dY of every tile (zero outside the
// dst map), position planes `stride` floats apart: the gradient of each tile's U ⊙ V.
void transform_output_gradient(const TileConv& c, const float* grad_dst, std::int64_t first,
                               std::int64_t count, float* m, std::int64_t stride) {
  const std::int64_t max_span = 2 * c.tile_cols();
  std::vector<float> rows(static_cast<std::size_t>(6 * max_span));
  for_each_tile_run(
      c, first, count,
      [&](std::int64_t sample, std::int64_t tile_row, std::int64_t first_col, std::int64_t end_col,
          std::int64_t at) {
        const std::int64_t run = end_col - first_col;
        const std::int64_t span = 2 * run;
        float* g0 = rows.data();
        float* g1 = g0 + max_span;
        float* q[4] = {g1 + max_span, g1 + 2 * max_span, g1 + 3 * max_span, g1 + 4 * max_span};
        for (std::int64_t channel = 0; channel < c.dst_channels; ++channel) {
          const float* plane = grad_dst + (sample * c.dst_channels + channel) * c.dst_plane();
          load_row(plane, c.dst_height, c.dst_width, 2 * tile_row, 2 * first_col, span, g0);
          load_row(plane, c.dst_height, c.dst_width, 2 * tile_row + 1, 2 * first_col, span, g1);
          // Rows of A dY: dY0, dY0 + dY1, dY0 − dY1, −dY1; then the same on the columns.
          for (std::int64_t k = 0; k < span; ++k) {
            q[0][k] = g0[k];
            q[1][k] = g0[k] + g1[k];
            q[2][k] = g0[k] - g1[k];
            q[3][k] = -g1[k];
          }
          for (std::int64_t a = 0; a < 4; ++a) {
            const float* t = q[a];
            float* out0 = m + (4 * a) * stride + channel * count + at;
            float* out1 = out0 + stride;
            float* out2 = out1 + stride;
            float* out3 = out2 + stride;
            for (std::int64_t j = 0; j < run; ++j) {
              out0[j] = t[2 * j];
              out1[j] = t[2 * j] + t[2 * j + 1];
              out2[j] = t[2 * j] - t[2 * j + 1];
              out3[j] = -t[2 * j + 1];
            }
          }
        }
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
