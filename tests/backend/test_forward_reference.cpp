// Forward results of the CPU backend against independent references: naive loops written from
// the definitions, values computed with PyTorch 1.13 (F.interpolate, F.cross_entropy,
// F.kl_div), and the adjoint identities of convolution, which check the backward-data and
// backward-filter paths (im2col chunks, pointwise, depthwise) exactly.
#include <gtest/gtest.h>

#include <cmath>
#include <limits>

#include "cpu_test_util.h"

namespace md::test {
namespace {

struct ConvCase {
  const char* name;
  Shape x;
  Shape weight;
  Conv2dParams params;
};

std::vector<ConvCase> conv_cases() {
  return {
      {"3x3 padding 1", {2, 3, 6, 6}, {4, 3, 3, 3}, {.stride = 1, .padding = 1}},
      {"stride 2", {2, 3, 7, 7}, {5, 3, 3, 3}, {.stride = 2, .padding = 1}},
      {"dilation 2", {1, 2, 9, 8}, {3, 2, 3, 3}, {.stride = 1, .padding = 2, .dilation = 2}},
      {"groups 2", {2, 4, 6, 5}, {6, 2, 3, 3}, {.stride = 1, .padding = 1, .groups = 2}},
      {"depthwise", {2, 4, 7, 5}, {4, 1, 3, 3}, {.stride = 2, .padding = 1, .groups = 4}},
      {"depthwise multiplier 2",
       {2, 3, 6, 6},
       {6, 1, 3, 3},
       {.stride = 1, .padding = 1, .groups = 3}},
      {"kernel 1 stride 2", {2, 3, 7, 5}, {4, 3, 1, 1}, {.stride = 2}},
      {"pointwise, one sample per chunk", {2, 3, 48, 48}, {2, 3, 1, 1}, {}},
      {"pointwise, several samples per chunk", {3, 4, 5, 5}, {3, 4, 1, 1}, {}},
      {"several chunks, partial last", {8, 2, 20, 20}, {3, 2, 3, 3}, {.stride = 1, .padding = 1}},
      {"odd 7x5, kernel 5", {1, 2, 7, 5}, {3, 2, 5, 5}, {.stride = 1, .padding = 2}},
  };
}

TEST(CpuConv2d, ForwardMatchesNaiveLoops) {
  for (DType dtype : {DType::Float64, DType::Float32}) {
    std::uint64_t seed = 10;
    for (const ConvCase& c : conv_cases()) {
      SCOPED_TRACE(std::string(c.name) + " " + dtype_name(dtype));
      Tensor x = random_tensor(c.x, ++seed, -1, 1, dtype);
      Tensor weight = random_tensor(c.weight, ++seed, -1, 1, dtype);
      Tensor y = Tensor::empty(conv2d_output_shape(c.x, c.weight, c.params), dtype);
      cpu_backend().conv2d_forward(x, weight, y, c.params);
      const double tolerance = dtype == DType::Float64 ? 1e-12 : 1e-5;
      EXPECT_LT(max_relative_error(y, naive_conv2d(x, weight, c.params), 1.0), tolerance);
    }
  }
}

// <conv(x, w), g> = <x, backward_data(g, w)> = <w, backward_filter(x, g)>
TEST(CpuConv2d, BackwardPassesAreTheAdjointsOfTheForward) {
  std::uint64_t seed = 100;
  for (const ConvCase& c : conv_cases()) {
    SCOPED_TRACE(c.name);
    Backend& backend = cpu_backend();
    Tensor x = random_tensor(c.x, ++seed);
    Tensor weight = random_tensor(c.weight, ++seed);
    const Shape y_shape = conv2d_output_shape(c.x, c.weight, c.params);
    Tensor grad_y = random_tensor(y_shape, ++seed);
    Tensor y = Tensor::empty(y_shape, DType::Float64);
    backend.conv2d_forward(x, weight, y, c.params);
    Tensor grad_x = Tensor::full(c.x, std::nan(""), DType::Float64);
    backend.conv2d_backward_data(grad_y, weight, grad_x, c.params, Write::Overwrite);
    Tensor grad_weight = Tensor::full(c.weight, std::nan(""), DType::Float64);
    backend.conv2d_backward_filter(x, grad_y, grad_weight, c.params, Write::Overwrite);
    const double reference = backend.dot(y, grad_y);
    EXPECT_NEAR(backend.dot(x, grad_x), reference, 1e-10 * std::max(1.0, std::fabs(reference)));
    EXPECT_NEAR(backend.dot(weight, grad_weight), reference,
                1e-10 * std::max(1.0, std::fabs(reference)));
    // And element by element against the naive convolution's adjoint: perturbing one weight.
    Tensor unit = Tensor::zeros(c.weight, DType::Float64);
    unit.data<double>()[0] = 1.0;
    const double first_weight_grad = backend.dot(naive_conv2d(x, unit, c.params), grad_y);
    EXPECT_NEAR(grad_weight.data<double>()[0], first_weight_grad, 1e-10);
  }
}

TEST(CpuConv2d, ChannelBiasAndItsBackward) {
  Backend& backend = cpu_backend();
  Tensor y = Tensor::from_vector<double>({2, 2, 1, 2}, {1, 2, 3, 4, 5, 6, 7, 8});
  Tensor bias = Tensor::from_vector<double>({2}, {10, 20});
  backend.add_channel_bias(y, bias);
  EXPECT_EQ(y.to_vector<double>(), (std::vector<double>{11, 12, 23, 24, 15, 16, 27, 28}));
  Tensor grad_bias = Tensor::empty({2}, DType::Float64);
  backend.channel_bias_backward(y, grad_bias, Write::Overwrite);
  EXPECT_EQ(grad_bias.to_vector<double>(),
            (std::vector<double>{11 + 12 + 15 + 16, 23 + 24 + 27 + 28}));
}

TEST(CpuLinear, ForwardAndBackwardMatchNaiveLoops) {
  Backend& backend = cpu_backend();
  const std::int64_t batch = 3, in = 4, out = 5;
  Tensor x = random_tensor({batch, in}, 1);
  Tensor weight = random_tensor({out, in}, 2);
  Tensor bias = random_tensor({out}, 3);
  Tensor grad_y = random_tensor({batch, out}, 4);
  Tensor y = Tensor::empty({batch, out}, DType::Float64);
  backend.linear_forward(x, weight, bias, y);
  Tensor no_bias = Tensor::empty({batch, out}, DType::Float64);
  backend.linear_forward(x, weight, Tensor(), no_bias);
  Tensor grad_x = Tensor::empty({batch, in}, DType::Float64);
  Tensor grad_weight = Tensor::empty({out, in}, DType::Float64);
  Tensor grad_bias = Tensor::empty({out}, DType::Float64);
  backend.linear_backward(x, weight, grad_y, grad_x, grad_weight, grad_bias, Write::Overwrite);
  const double* xs = x.data<double>();
  const double* ws = weight.data<double>();
  const double* gs = grad_y.data<double>();
  for (std::int64_t n = 0; n < batch; ++n) {
    for (std::int64_t o = 0; o < out; ++o) {
      double total = 0;
      for (std::int64_t i = 0; i < in; ++i) total += xs[n * in + i] * ws[o * in + i];
      EXPECT_NEAR(no_bias.data<double>()[n * out + o], total, 1e-14);
      EXPECT_NEAR(y.data<double>()[n * out + o], total + bias.data<double>()[o], 1e-14);
    }
    for (std::int64_t i = 0; i < in; ++i) {
      double total = 0;
      for (std::int64_t o = 0; o < out; ++o) total += gs[n * out + o] * ws[o * in + i];
      EXPECT_NEAR(grad_x.data<double>()[n * in + i], total, 1e-14);
    }
  }
  for (std::int64_t o = 0; o < out; ++o) {
    double bias_total = 0;
    for (std::int64_t n = 0; n < batch; ++n) bias_total += gs[n * out + o];
    EXPECT_NEAR(grad_bias.data<double>()[o], bias_total, 1e-14);
    for (std::int64_t i = 0; i < in; ++i) {
      double total = 0;
      for (std::int64_t n = 0; n < batch; ++n) total += gs[n * out + o] * xs[n * in + i];
      EXPECT_NEAR(grad_weight.data<double>()[o * in + i], total, 1e-14);
    }
  }
}

TEST(CpuPooling, MaxAndAverageWithPaddingMatchNaiveLoops) {
  Backend& backend = cpu_backend();
  Tensor x = random_tensor({2, 3, 7, 5}, 5);
  const Pool2dParams params{.kernel = 3, .stride = 2, .padding = 1};
  const Shape out_shape = pool2d_output_shape(x.shape(), params);
  ASSERT_EQ(out_shape, (Shape{2, 3, 4, 3}));
  Tensor max_y = Tensor::empty(out_shape, DType::Float64);
  Tensor avg_y = Tensor::empty(out_shape, DType::Float64);
  backend.pool2d_forward(x, max_y, PoolKind::Max, params);
  backend.pool2d_forward(x, avg_y, PoolKind::Average, params);
  const double* in = x.data<double>();
  for (std::int64_t plane = 0; plane < 6; ++plane) {
    for (std::int64_t oh = 0; oh < 4; ++oh) {
      for (std::int64_t ow = 0; ow < 3; ++ow) {
        double best = -std::numeric_limits<double>::infinity(), total = 0;
        for (std::int64_t kh = 0; kh < 3; ++kh) {
          for (std::int64_t kw = 0; kw < 3; ++kw) {
            const std::int64_t ih = oh * 2 - 1 + kh, iw = ow * 2 - 1 + kw;
            if (ih < 0 || ih >= 7 || iw < 0 || iw >= 5) continue;  // padding: -inf / zero
            best = std::max(best, in[plane * 35 + ih * 5 + iw]);
            total += in[plane * 35 + ih * 5 + iw];
          }
        }
        const std::int64_t index = plane * 12 + oh * 3 + ow;
        EXPECT_EQ(max_y.data<double>()[index], best);
        EXPECT_NEAR(avg_y.data<double>()[index], total / 9.0, 1e-15);  // count_include_pad
      }
    }
  }
}

TEST(CpuPooling, MaxBackwardRoutesToTheFirstMaximumAndPaddingNeverWins) {
  Backend& backend = cpu_backend();
  // All values negative: a zero padding would win, -inf padding does not.
  Tensor x = Tensor::from_vector<double>({1, 1, 2, 2}, {-3, -1, -1, -2});
  const Pool2dParams params{.kernel = 2, .stride = 1, .padding = 1};
  Tensor y = Tensor::empty(pool2d_output_shape(x.shape(), params), DType::Float64);
  backend.pool2d_forward(x, y, PoolKind::Max, params);
  EXPECT_EQ(y.to_vector<double>(), (std::vector<double>{-3, -1, -1, -1, -1, -1, -1, -1, -2}));
  Tensor grad_y = Tensor::full(y.shape(), 1.0, DType::Float64);
  Tensor grad_x = Tensor::empty(x.shape(), DType::Float64);
  backend.pool2d_backward(x, y, grad_y, grad_x, PoolKind::Max, params, Write::Overwrite);
  // The centre window holds the tie -1, -1: the first in scan order (index 1) takes it.
  EXPECT_EQ(grad_x.to_vector<double>(), (std::vector<double>{1, 4, 3, 1}));
}

TEST(CpuPooling, GlobalAveragePool) {
  Backend& backend = cpu_backend();
  Tensor x = Tensor::from_vector<double>({1, 2, 1, 3}, {1, 2, 6, -1, -2, 0});
  Tensor y = Tensor::empty({1, 2}, DType::Float64);
  backend.global_avg_pool_forward(x, y);
  EXPECT_EQ(y.to_vector<double>(), (std::vector<double>{3, -1}));
  Tensor grad_x = Tensor::empty(x.shape(), DType::Float64);
  backend.global_avg_pool_backward(Tensor::from_vector<double>({1, 2}, {3, 6}), grad_x,
                                   Write::Overwrite);
  EXPECT_EQ(grad_x.to_vector<double>(), (std::vector<double>{1, 1, 1, 2, 2, 2}));
}

// x = i²/10 − i for i in [0, 15) as (1, 1, 3, 5); expected values from PyTorch 1.13
// F.interpolate(x, size, mode, align_corners=False for bilinear).
TEST(CpuResize, MatchesPyTorchInterpolate) {
  std::vector<double> values;
  for (int i = 0; i < 15; ++i) values.push_back(i * i * 0.1 - i);
  Tensor x = Tensor::from_vector<double>({1, 1, 3, 5}, values);
  struct Case {
    ResizeMode mode;
    std::int64_t height, width;
    std::vector<double> expected;
  };
  const std::vector<Case> cases = {
      {ResizeMode::Nearest, 4, 7, {0.0,  0.0,  -0.9, -1.6, -1.6, -2.1, -2.4, 0.0,  0.0,  -0.9,
                                   -1.6, -1.6, -2.1, -2.4, -2.5, -2.5, -2.4, -2.1, -2.1, -1.6,
                                   -0.9, 0.0,  0.0,  1.1,  2.4,  2.4,  3.9,  5.6}},
      {ResizeMode::Bilinear,
       4,
       7,
       {0.0,
        -0.514285714286,
        -1.1,
        -1.6,
        -1.957142857143,
        -2.228571428571,
        -2.4,
        -1.5625,
        -1.719642857143,
        -1.858928571429,
        -1.9125,
        -1.823214285714,
        -1.648214285714,
        -1.4625,
        -1.5625,
        -1.291071428571,
        -0.894642857143,
        -0.4125,
        0.2125,
        0.923214285714,
        1.5375,
        0.0,
        0.628571428571,
        1.471428571429,
        2.4,
        3.471428571429,
        4.628571428571,
        5.6}},
      {ResizeMode::Nearest, 2, 3, {0.0, -0.9, -2.1, -2.5, -2.4, -1.6}},
      {ResizeMode::Bilinear,
       2,
       3,
       {-0.841666666667, -1.725, -2.008333333333, -0.341666666667, 1.275, 3.491666666667}},
  };
  for (const Case& c : cases) {
    Tensor y = Tensor::empty({1, 1, c.height, c.width}, DType::Float64);
    cpu_backend().resize_forward(x, y, c.mode);
    const std::vector<double> got = y.to_vector<double>();
    for (std::size_t i = 0; i < got.size(); ++i) {
      EXPECT_NEAR(got[i], c.expected[i], 1e-11) << "mode " << static_cast<int>(c.mode) << " size "
                                                << c.height << "x" << c.width << " element " << i;
    }
  }
}

TEST(CpuResize, BackwardIsTheAdjoint) {
  Backend& backend = cpu_backend();
  for (ResizeMode mode : {ResizeMode::Nearest, ResizeMode::Bilinear}) {
    for (const Shape& out_shape : {Shape{2, 3, 9, 11}, Shape{2, 3, 3, 2}}) {
      Tensor x = random_tensor({2, 3, 5, 7}, 7);
      Tensor grad_y = random_tensor(out_shape, 8);
      Tensor y = Tensor::empty(out_shape, DType::Float64);
      backend.resize_forward(x, y, mode);
      Tensor grad_x = Tensor::empty(x.shape(), DType::Float64);
      backend.resize_backward(grad_y, grad_x, mode, Write::Overwrite);
      EXPECT_NEAR(backend.dot(y, grad_y), backend.dot(x, grad_x), 1e-12);
    }
  }
}

TEST(CpuConcat, ForwardAndBackwardWithSkippedEntries) {
  Backend& backend = cpu_backend();
  Tensor a = Tensor::from_vector<double>({2, 1, 2}, {1, 2, 3, 4});
  Tensor b = Tensor::from_vector<double>({2, 2, 2}, {5, 6, 7, 8, 9, 10, 11, 12});
  Tensor y = Tensor::empty({2, 3, 2}, DType::Float64);
  backend.concat_channels({a, b}, y);
  EXPECT_EQ(y.to_vector<double>(), (std::vector<double>{1, 2, 5, 6, 7, 8, 3, 4, 9, 10, 11, 12}));
  // Only the second gradient wanted: the first entry's width is inferred.
  std::vector<Tensor> grads{Tensor(), Tensor::empty({2, 2, 2}, DType::Float64)};
  backend.concat_channels_backward(y, grads, Write::Overwrite);
  EXPECT_EQ(grads[1].to_vector<double>(), b.to_vector<double>());
  // A wanted entry between two skipped ones has no known range.
  Tensor y3 = Tensor::empty({2, 4, 2}, DType::Float64);
  backend.concat_channels({a, b, a}, y3);
  std::vector<Tensor> middle{Tensor(), Tensor::empty({2, 2, 2}, DType::Float64), Tensor()};
  EXPECT_THROW(backend.concat_channels_backward(y3, middle, Write::Overwrite), Error);
}

TEST(CpuSoftmax, MatchesTheDefinitionAndIsStable) {
  Backend& backend = cpu_backend();
  Tensor x = Tensor::from_vector<double>({2, 3}, {1, 2, 3, 1000, 1001, -1000});
  Tensor y = Tensor::empty({2, 3}, DType::Float64);
  Tensor log_y = Tensor::empty({2, 3}, DType::Float64);
  backend.softmax_forward(x, y);
  backend.log_softmax_forward(x, log_y);
  const double z = std::exp(1.0) + std::exp(2.0) + std::exp(3.0);
  EXPECT_NEAR(y.data<double>()[0], std::exp(1.0) / z, 1e-15);
  EXPECT_NEAR(log_y.data<double>()[2], 3.0 - std::log(z), 1e-14);
  EXPECT_NEAR(y.data<double>()[4], 1.0 / (1.0 + std::exp(-1.0)), 1e-15);
  EXPECT_NEAR(log_y.data<double>()[5], -2001.0 - std::log(1.0 + std::exp(-1.0)), 1e-12);
  EXPECT_EQ(backend.count_nonfinite(y) + backend.count_nonfinite(log_y), 0);
}

TEST(CpuLoss, MatchesPyTorch) {
  Backend& backend = cpu_backend();
  Tensor logits = Tensor::from_vector<double>(
      {3, 4}, {1.0, -2.0, 0.5, 3.0, 0.2, 0.1, -0.3, 0.0, -1.0, 2.0, 1.0, -0.5});
  Tensor teacher = Tensor::from_vector<double>(
      {3, 4}, {0.5, 0.0, 1.5, -1.0, 1.2, -0.4, 0.3, 0.9, 0.0, 0.0, 2.0, -2.0});
  Tensor labels = Tensor::from_vector<std::int32_t>({3}, {3, 0, 2});
  Tensor loss = Tensor::empty({}, DType::Float64);
  // F.cross_entropy(logits, labels[, label_smoothing=0.2])
  backend.cross_entropy_forward(logits, labels, loss, 0.0);
  EXPECT_NEAR(loss.item(), 0.9368516211061636, 1e-14);
  backend.cross_entropy_forward(logits, labels, loss, 0.2);
  EXPECT_NEAR(loss.item(), 1.150184954439497, 1e-14);
  // F.kl_div(log_softmax(s/T), softmax(t/T), reduction='batchmean') * T²
  backend.kl_div_forward(logits, teacher, loss, 1.0);
  EXPECT_NEAR(loss.item(), 0.8886589368558117, 1e-14);
  backend.kl_div_forward(logits, teacher, loss, 3.0);
  EXPECT_NEAR(loss.item(), 1.155442161210309, 1e-14);
  backend.mse_forward(logits, teacher, loss);
  double squares = 0;
  for (int i = 0; i < 12; ++i) {
    const double d = logits.data<double>()[i] - teacher.data<double>()[i];
    squares += d * d;
  }
  EXPECT_NEAR(loss.item(), squares / 12, 1e-15);
  Tensor bad_labels = Tensor::from_vector<std::int32_t>({3}, {3, 4, 2});
  EXPECT_THROW(backend.cross_entropy_forward(logits, bad_labels, loss, 0.0), Error);
}

TEST(CpuActivation, ReluAndSigmoid) {
  Backend& backend = cpu_backend();
  Tensor x = Tensor::from_vector<double>({5}, {-2, 0, 3, -1000, 1000});
  Tensor y = Tensor::empty({5}, DType::Float64);
  backend.relu_forward(x, y);
  EXPECT_EQ(y.to_vector<double>(), (std::vector<double>{0, 0, 3, 0, 1000}));
  backend.sigmoid_forward(x, y);
  EXPECT_NEAR(y.data<double>()[0], 1 / (1 + std::exp(2.0)), 1e-16);
  EXPECT_EQ(y.data<double>()[1], 0.5);
  EXPECT_EQ(y.data<double>()[3], 0.0);  // no overflow to NaN
  EXPECT_EQ(y.data<double>()[4], 1.0);
}

TEST(CpuElementwise, BufferArithmeticAndReductions) {
  Backend& backend = cpu_backend();
  Tensor a = Tensor::from_vector<float>({4}, {1, 2, 3, 4});
  Tensor b = Tensor::from_vector<float>({4}, {10, 20, 30, 40});
  Tensor y = Tensor::full({4}, std::nan(""), DType::Float32);
  backend.add(a, b, y);
  EXPECT_EQ(y.to_vector<float>(), (std::vector<float>{11, 22, 33, 44}));
  backend.mul(a, b, y, Write::Overwrite);
  EXPECT_EQ(y.to_vector<float>(), (std::vector<float>{10, 40, 90, 160}));
  Tensor nan_target = Tensor::full({2, 2}, std::nan(""), DType::Float32);
  backend.axpby(2.0, a, 0.0, nan_target);  // beta = 0 ignores the NaNs there
  EXPECT_EQ(nan_target.to_vector<float>(), (std::vector<float>{2, 4, 6, 8}));
  backend.axpby(1.0, a, -1.0, nan_target);
  EXPECT_EQ(nan_target.to_vector<float>(), (std::vector<float>{-1, -2, -3, -4}));
  EXPECT_EQ(backend.dot(a, b), 300.0);
  EXPECT_EQ(backend.sum(b), 100.0);
  backend.copy(b, y);
  EXPECT_EQ(y.to_vector<float>(), b.to_vector<float>());
  backend.fill(y, 0.5);
  EXPECT_EQ(y.to_vector<float>(), (std::vector<float>{0.5f, 0.5f, 0.5f, 0.5f}));
  Tensor odd = Tensor::from_vector<double>(
      {4}, {1.0, std::nan(""), std::numeric_limits<double>::infinity(), -2.0});
  EXPECT_EQ(backend.count_nonfinite(odd), 2);
  // A sum over many blocks is exact for integers.
  Tensor ones = Tensor::full({100003}, 1.0, DType::Float32);
  EXPECT_EQ(backend.sum(ones), 100003.0);
}

}  // namespace
}  // namespace md::test
