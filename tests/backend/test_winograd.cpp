// The Winograd F(2x2, 3x3) path of the CPU backend (src/backend/cpu/winograd.h): forward,
// backward-data and backward-filter against float64 direct loops on odd map sizes (7x5, 1x1,
// wider than tall), every padding 0-3 and batch 1; both Write modes; the backend's dispatch
// against its float64 im2col path; and bit-identical results for 1 and 2 threads.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <ostream>
#include <vector>

#include "backend/cpu/winograd.h"
#include "cpu_test_util.h"

namespace md::test {
namespace {

struct WinogradCase {
  std::int64_t batch, in_channels, height, width, out_channels, padding;
};

void PrintTo(const WinogradCase& c, std::ostream* out) {
  *out << "N" << c.batch << " C" << c.in_channels << " " << c.height << "x" << c.width << " O"
       << c.out_channels << " padding " << c.padding;
}

cpu::WinogradShape shape_of(const WinogradCase& c) {
  return cpu::WinogradShape{c.batch,
                            c.in_channels,
                            c.height,
                            c.width,
                            c.out_channels,
                            c.height + 2 * c.padding - 2,
                            c.width + 2 * c.padding - 2,
                            c.padding};
}

std::size_t index4(std::int64_t a, std::int64_t b, std::int64_t c, std::int64_t d, std::int64_t bs,
                   std::int64_t cs, std::int64_t ds) {
  return static_cast<std::size_t>(((a * bs + b) * cs + c) * ds + d);
}

// The three passes by the definition, in float64: y = x * w, grad_x, grad_weight.
struct DirectResults {
  std::vector<double> y, grad_x, grad_weight;
};

DirectResults direct_conv(const cpu::WinogradShape& s, const std::vector<float>& x,
                          const std::vector<float>& weight, const std::vector<float>& grad_y) {
  DirectResults r;
  r.y.assign(static_cast<std::size_t>(s.batch * s.out_channels * s.out_height * s.out_width), 0.0);
  r.grad_x.assign(x.size(), 0.0);
  r.grad_weight.assign(weight.size(), 0.0);
  for (std::int64_t n = 0; n < s.batch; ++n)
    for (std::int64_t o = 0; o < s.out_channels; ++o)
      for (std::int64_t oh = 0; oh < s.out_height; ++oh)
        for (std::int64_t ow = 0; ow < s.out_width; ++ow) {
          const std::size_t out = index4(n, o, oh, ow, s.out_channels, s.out_height, s.out_width);
          for (std::int64_t c = 0; c < s.in_channels; ++c)
            for (std::int64_t kh = 0; kh < 3; ++kh)
              for (std::int64_t kw = 0; kw < 3; ++kw) {
                const std::int64_t ih = oh + kh - s.padding, iw = ow + kw - s.padding;
                if (ih < 0 || ih >= s.in_height || iw < 0 || iw >= s.in_width) continue;
                const std::size_t in = index4(n, c, ih, iw, s.in_channels, s.in_height, s.in_width);
                const std::size_t w = index4(o, c, kh, kw, s.in_channels, 3, 3);
                r.y[out] += double{x[in]} * double{weight[w]};
                r.grad_x[in] += double{grad_y[out]} * double{weight[w]};
                r.grad_weight[w] += double{grad_y[out]} * double{x[in]};
              }
        }
  return r;
}

std::vector<float> random_floats(std::int64_t count, std::uint64_t seed) {
  return random_tensor({count}, seed, -1.0, 1.0, DType::Float32).to_vector<float>();
}

// Largest |got − expected| over the largest |expected|: the error relative to the output's scale.
double scaled_error(const std::vector<float>& got, const std::vector<double>& expected) {
  double largest = 0.0, error = 0.0;
  for (std::size_t i = 0; i < expected.size(); ++i) {
    largest = std::max(largest, std::abs(expected[i]));
    error = std::max(error, std::abs(double{got[i]} - expected[i]));
  }
  return largest == 0.0 ? error : error / largest;
}

class WinogradVsDirect : public ::testing::TestWithParam<WinogradCase> {};

TEST_P(WinogradVsDirect, AllPassesMatchFloat64Loops) {
  const cpu::WinogradShape s = shape_of(GetParam());
  const std::int64_t x_count = s.batch * s.in_channels * s.in_height * s.in_width;
  const std::int64_t y_count = s.batch * s.out_channels * s.out_height * s.out_width;
  const std::int64_t w_count = s.out_channels * s.in_channels * 9;
  const std::vector<float> x = random_floats(x_count, 11);
  const std::vector<float> weight = random_floats(w_count, 12);
  const std::vector<float> grad_y = random_floats(y_count, 13);
  const DirectResults expected = direct_conv(s, x, weight, grad_y);

  // NaN first: Overwrite must not read what the outputs held.
  std::vector<float> y(static_cast<std::size_t>(y_count), NAN);
  std::vector<float> grad_x(static_cast<std::size_t>(x_count), NAN);
  std::vector<float> grad_weight(static_cast<std::size_t>(w_count), NAN);
  cpu::winograd_forward(s, x.data(), weight.data(), y.data());
  cpu::winograd_backward_data(s, grad_y.data(), weight.data(), grad_x.data(), Write::Overwrite);
  cpu::winograd_backward_filter(s, x.data(), grad_y.data(), grad_weight.data(), Write::Overwrite);
  // F(2x2, 3x3) loses a few float32 roundings to the transforms: ~1e-7 relative; bound 2e-6.
  EXPECT_LT(scaled_error(y, expected.y), 2e-6);
  EXPECT_LT(scaled_error(grad_x, expected.grad_x), 2e-6);
  EXPECT_LT(scaled_error(grad_weight, expected.grad_weight), 2e-6);

  // Accumulate adds the same values to what was there.
  const std::vector<float> prior_x = random_floats(x_count, 14);
  const std::vector<float> prior_w = random_floats(w_count, 15);
  std::vector<float> accumulated_x = prior_x, accumulated_w = prior_w;
  cpu::winograd_backward_data(s, grad_y.data(), weight.data(), accumulated_x.data(),
                              Write::Accumulate);
  cpu::winograd_backward_filter(s, x.data(), grad_y.data(), accumulated_w.data(),
                                Write::Accumulate);
  for (std::size_t i = 0; i < accumulated_x.size(); ++i) {
    ASSERT_EQ(accumulated_x[i], prior_x[i] + grad_x[i]) << "grad_x element " << i;
  }
  for (std::size_t i = 0; i < accumulated_w.size(); ++i) {
    ASSERT_EQ(accumulated_w[i], prior_w[i] + grad_weight[i]) << "grad_weight element " << i;
  }
}

INSTANTIATE_TEST_SUITE_P(
    OddShapes, WinogradVsDirect,
    ::testing::Values(WinogradCase{2, 5, 7, 5, 6, 1},     // odd map, ragged last tiles
                      WinogradCase{1, 4, 7, 5, 3, 0},     // unpadded: 5x3 output
                      WinogradCase{1, 3, 7, 5, 4, 2},     // padding 2: 9x7 output
                      WinogradCase{2, 3, 5, 4, 2, 3},     // padding 3: grad_x crops
                      WinogradCase{1, 6, 1, 1, 5, 1},     // 1x1 map
                      WinogradCase{3, 2, 3, 11, 3, 0},    // one output row
                      WinogradCase{2, 40, 41, 39, 36, 1}  // 3 tile blocks, the last ragged
                      ));

// Through the backend: float32 (Winograd) against float64 (im2col) on resnet-like shapes.
TEST(WinogradDispatch, Float32MatchesTheFloat64Im2colPath) {
  Backend& backend = cpu_backend();
  struct Case {
    Shape x, weight;
    int padding;
  };
  for (const Case& c : std::vector<Case>{{{2, 32, 8, 8}, {32, 32, 3, 3}, 1},
                                         {{1, 64, 7, 5}, {48, 64, 3, 3}, 1},
                                         {{3, 32, 6, 6}, {40, 32, 3, 3}, 0}}) {
    const Conv2dParams params{.stride = 1, .padding = c.padding};
    const cpu::WinogradShape s{c.x[0],
                               c.x[1],
                               c.x[2],
                               c.x[3],
                               c.weight[0],
                               c.x[2] + 2 * c.padding - 2,
                               c.x[3] + 2 * c.padding - 2,
                               c.padding};
    ASSERT_TRUE(cpu::winograd_applies(s, 3, params)) << shape_str(c.x);
    const Tensor x64 = random_tensor(c.x, 21), w64 = random_tensor(c.weight, 22);
    const Shape y_shape = conv2d_output_shape(c.x, c.weight, params);
    const Tensor grad_y64 = random_tensor(y_shape, 23);
    const Tensor x32 = x64.to_dtype(DType::Float32), w32 = w64.to_dtype(DType::Float32);
    const Tensor grad_y32 = grad_y64.to_dtype(DType::Float32);
    Tensor y64 = Tensor::empty(y_shape, DType::Float64),
           y32 = Tensor::empty(y_shape, DType::Float32);
    Tensor gx64 = Tensor::empty(c.x, DType::Float64), gx32 = Tensor::empty(c.x, DType::Float32);
    Tensor gw64 = Tensor::empty(c.weight, DType::Float64);
    Tensor gw32 = Tensor::empty(c.weight, DType::Float32);
    backend.conv2d_forward(x64, w64, y64, params);
    backend.conv2d_forward(x32, w32, y32, params);
    backend.conv2d_backward_data(grad_y64, w64, gx64, params, Write::Overwrite);
    backend.conv2d_backward_data(grad_y32, w32, gx32, params, Write::Overwrite);
    backend.conv2d_backward_filter(x64, grad_y64, gw64, params, Write::Overwrite);
    backend.conv2d_backward_filter(x32, grad_y32, gw32, params, Write::Overwrite);
    EXPECT_LT(max_relative_error(y32.to_dtype(DType::Float64), y64, 1.0), 1e-5);
    EXPECT_LT(max_relative_error(gx32.to_dtype(DType::Float64), gx64, 1.0), 1e-5);
    EXPECT_LT(max_relative_error(gw32.to_dtype(DType::Float64), gw64, 1.0), 1e-5);
  }
}

TEST(WinogradDispatch, SmallOrUnsuitableConvolutionsKeepIm2col) {
  const cpu::WinogradShape wide{8, 64, 16, 16, 64, 16, 16, 1};
  EXPECT_TRUE(cpu::winograd_applies(wide, 3, {.stride = 1, .padding = 1}));
  EXPECT_FALSE(cpu::winograd_applies(wide, 3, {.stride = 2, .padding = 1}));
  EXPECT_FALSE(cpu::winograd_applies(wide, 3, {.stride = 1, .padding = 2, .dilation = 2}));
  EXPECT_FALSE(cpu::winograd_applies(wide, 3, {.stride = 1, .padding = 1, .groups = 2}));
  EXPECT_FALSE(cpu::winograd_applies(wide, 5, {.stride = 1, .padding = 2}));
  const cpu::WinogradShape narrow{8, 3, 16, 16, 64, 16, 16, 1};  // a network's first conv
  EXPECT_FALSE(cpu::winograd_applies(narrow, 3, {.stride = 1, .padding = 1}));
  const cpu::WinogradShape one_pixel{8, 512, 1, 1, 512, 1, 1, 1};  // tiles waste 3/4
  EXPECT_FALSE(cpu::winograd_applies(one_pixel, 3, {.stride = 1, .padding = 1}));
}

}  // namespace
}  // namespace md::test
