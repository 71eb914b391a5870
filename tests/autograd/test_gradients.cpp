// Float64 central finite-difference checks (support/gradcheck.h) of every differentiable
// function, for every input that receives a gradient, over the parameter variants the models
// use: strides, padding, dilation, groups, depthwise, odd sizes, label smoothing, temperatures.
#include <gtest/gtest.h>

#include "autograd/functions.h"
#include "backend/backend.h"
#include "support/gradcheck.h"

namespace md::test {
namespace {

using autograd::Variable;
using Inputs = std::vector<Variable>;

// ---- convolution

struct ConvCase {
  const char* name;
  Shape x;
  Shape weight;
  Conv2dParams params;
};

void PrintTo(const ConvCase& c, std::ostream* out) {
  *out << c.name;
}

class Conv2dGradients : public ::testing::TestWithParam<ConvCase> {};

TEST_P(Conv2dGradients, InputWeightAndBias) {
  const ConvCase& c = GetParam();
  const Conv2dParams params = c.params;
  const Tensor x = random_tensor(c.x, 1);
  const Tensor weight = random_tensor(c.weight, 2);
  const Tensor bias = random_tensor({c.weight[0]}, 3);
  expect_gradients_match(
      [params](const Inputs& in) { return autograd::conv2d(in[0], in[1], in[2], params); },
      {x, weight, bias});
  expect_gradients_match(
      [params](const Inputs& in) { return autograd::conv2d(in[0], in[1], Variable(), params); },
      {x, weight});
}

INSTANTIATE_TEST_SUITE_P(
    Variants, Conv2dGradients,
    ::testing::Values(
        ConvCase{"padding1", {2, 3, 5, 5}, {4, 3, 3, 3}, {.stride = 1, .padding = 1}},
        ConvCase{"stride2", {2, 2, 7, 7}, {3, 2, 3, 3}, {.stride = 2, .padding = 1}},
        ConvCase{
            "dilation2", {1, 2, 8, 7}, {3, 2, 3, 3}, {.stride = 1, .padding = 2, .dilation = 2}},
        ConvCase{"groups2", {2, 4, 5, 5}, {6, 2, 3, 3}, {.stride = 1, .padding = 1, .groups = 2}},
        ConvCase{"depthwise", {2, 3, 6, 5}, {3, 1, 3, 3}, {.stride = 1, .padding = 1, .groups = 3}},
        ConvCase{"depthwise_stride2",
                 {2, 4, 7, 5},
                 {4, 1, 3, 3},
                 {.stride = 2, .padding = 1, .groups = 4}},
        ConvCase{"depthwise_multiplier2",
                 {1, 2, 5, 5},
                 {4, 1, 3, 3},
                 {.stride = 1, .padding = 1, .groups = 2}},
        ConvCase{"kernel1_stride2", {2, 3, 7, 5}, {4, 3, 1, 1}, {.stride = 2}},
        ConvCase{"pointwise", {2, 3, 4, 4}, {2, 3, 1, 1}, {}},
        ConvCase{"batch1", {1, 2, 6, 6}, {3, 2, 3, 3}, {.stride = 1, .padding = 1}},
        ConvCase{"odd_7x5", {2, 2, 7, 5}, {3, 2, 3, 3}, {.stride = 1, .padding = 0}},
        ConvCase{"several_chunks", {7, 1, 20, 20}, {2, 1, 3, 3}, {.stride = 1, .padding = 1}}),
    [](const ::testing::TestParamInfo<ConvCase>& param_info) {
      return std::string(param_info.param.name);
    });

// ---- linear, batch norm

TEST(Gradients, Linear) {
  expect_gradients_match(
      [](const Inputs& in) { return autograd::linear(in[0], in[1], in[2]); },
      {random_tensor({4, 6}, 1), random_tensor({3, 6}, 2), random_tensor({3}, 3)});
  expect_gradients_match(
      [](const Inputs& in) { return autograd::linear(in[0], in[1], Variable()); },
      {random_tensor({1, 5}, 4), random_tensor({2, 5}, 5)});
}

TEST(Gradients, BatchNormTrain) {
  for (const Shape& shape : {Shape{3, 2, 4, 3}, Shape{5, 3}}) {
    const std::int64_t channels = shape[1];
    Tensor running_mean = Tensor::zeros({channels}, DType::Float64);
    Tensor running_var = Tensor::full({channels}, 1.0, DType::Float64);
    expect_gradients_match(
        [&](const Inputs& in) {
          return autograd::batch_norm(in[0], in[1], in[2], running_mean, running_var,
                                      autograd::BatchNormMode::Train, RunningStatsUpdate::Skip,
                                      BatchNormParams{});
        },
        {random_tensor(shape, 6, -2, 3), random_tensor({channels}, 7, 0.5, 1.5),
         random_tensor({channels}, 8)});
  }
}

TEST(Gradients, BatchNormEval) {
  for (const Shape& shape : {Shape{2, 3, 3, 4}, Shape{4, 3}}) {
    Tensor running_mean = random_tensor({3}, 9);
    Tensor running_var = random_tensor({3}, 10, 0.5, 2.0);
    expect_gradients_match(
        [&](const Inputs& in) {
          return autograd::batch_norm(in[0], in[1], in[2], running_mean, running_var,
                                      autograd::BatchNormMode::Eval, RunningStatsUpdate::Skip,
                                      BatchNormParams{});
        },
        {random_tensor(shape, 11), random_tensor({3}, 12), random_tensor({3}, 13)});
  }
}

TEST(Gradients, BatchNormAddReluTrain) {
  // x, gamma, beta and the residual; then without a residual. Some outputs are clipped by the
  // ReLU and some pass, on the kink band's terms.
  for (const Shape& shape : {Shape{3, 2, 4, 3}, Shape{5, 3}}) {
    const std::int64_t channels = shape[1];
    Tensor running_mean = Tensor::zeros({channels}, DType::Float64);
    Tensor running_var = Tensor::full({channels}, 1.0, DType::Float64);
    const auto fused = [&](const Inputs& in) {
      return autograd::batch_norm_add_relu(
          in[0], in[1], in[2], in.size() > 3 ? in[3] : Variable(), running_mean, running_var,
          autograd::BatchNormMode::Train, RunningStatsUpdate::Skip, BatchNormParams{});
    };
    expect_gradients_match(
        fused, {random_tensor(shape, 31, -2, 3), random_tensor({channels}, 32, 0.5, 1.5),
                random_tensor({channels}, 33), random_tensor(shape, 34)});
    expect_gradients_match(
        fused, {random_tensor(shape, 35, -2, 3), random_tensor({channels}, 36, 0.5, 1.5),
                random_tensor({channels}, 37)});
  }
}

// An input used twice reaches the batch norm's backward with an accumulating data gradient
// and fresh parameter gradients (the reverse of the usual modes), and the fused op may get the
// same variable as x and as residual: one backend call with scratch for the odd slots must
// still give every gradient.
TEST(Gradients, BatchNormWithMixedGradientWriteModes) {
  Tensor running_mean = Tensor::zeros({3}, DType::Float64);
  Tensor running_var = Tensor::full({3}, 1.0, DType::Float64);
  const auto train = [&](const Variable& x, const Variable& gamma, const Variable& beta) {
    return autograd::batch_norm(x, gamma, beta, running_mean, running_var,
                                autograd::BatchNormMode::Train, RunningStatsUpdate::Skip,
                                BatchNormParams{});
  };
  const std::vector<Tensor> inputs{random_tensor({4, 3, 3, 2}, 50, -2, 3),
                                   random_tensor({3}, 51, 0.5, 1.5), random_tensor({3}, 52)};
  expect_gradients_match(
      [&](const Inputs& in) {
        // The scale is recorded after the batch norm, so its backward runs first and x's
        // gradient exists when the batch norm's backward writes to it.
        const Variable normalized = train(in[0], in[1], in[2]);
        const Variable scaled = autograd::scale(in[0], 0.5);
        return autograd::add(normalized, scaled);
      },
      inputs);
  expect_gradients_match(
      [&](const Inputs& in) {
        return autograd::batch_norm_add_relu(in[0], in[1], in[2], in[0], running_mean, running_var,
                                             autograd::BatchNormMode::Train,
                                             RunningStatsUpdate::Skip, BatchNormParams{});
      },
      inputs);
}

TEST(Gradients, BatchNormAddReluEvalWithGradients) {
  Tensor running_mean = random_tensor({3}, 38);
  Tensor running_var = random_tensor({3}, 39, 0.5, 2.0);
  expect_gradients_match(
      [&](const Inputs& in) {
        return autograd::batch_norm_add_relu(in[0], in[1], in[2], in[3], running_mean, running_var,
                                             autograd::BatchNormMode::Eval,
                                             RunningStatsUpdate::Skip, BatchNormParams{});
      },
      {random_tensor({2, 3, 3, 4}, 40), random_tensor({3}, 41), random_tensor({3}, 42),
       random_tensor({2, 3, 3, 4}, 43)});
}

// ---- activations, pooling, resize, concat

TEST(Gradients, ReluWithKinkBand) {
  Tensor x = random_tensor({3, 4, 5}, 14);
  x.data<double>()[7] = 0.0;  // exactly on the kink: skipped by the checker's kink band
  x.data<double>()[31] = 0.0;
  expect_gradients_match([](const Inputs& in) { return autograd::relu(in[0]); }, {x});
}

TEST(Gradients, Sigmoid) {
  expect_gradients_match([](const Inputs& in) { return autograd::sigmoid(in[0]); },
                         {random_tensor({4, 7}, 15, -6, 6)});
}

TEST(Gradients, MaxPool) {
  for (const Pool2dParams& params : {Pool2dParams{.kernel = 3, .stride = 2, .padding = 1},
                                     Pool2dParams{.kernel = 2, .stride = 2, .padding = 0},
                                     Pool2dParams{.kernel = 3, .stride = 1, .padding = 1}}) {
    expect_gradients_match(
        [params](const Inputs& in) { return autograd::max_pool2d(in[0], params); },
        {random_tensor({2, 2, 7, 5}, 16)});
  }
}

TEST(Gradients, AvgPoolWithPadding) {
  for (const Pool2dParams& params : {Pool2dParams{.kernel = 3, .stride = 2, .padding = 1},
                                     Pool2dParams{.kernel = 2, .stride = 1, .padding = 1}}) {
    expect_gradients_match(
        [params](const Inputs& in) { return autograd::avg_pool2d(in[0], params); },
        {random_tensor({2, 2, 7, 5}, 17)});
  }
}

TEST(Gradients, GlobalAvgPool) {
  expect_gradients_match([](const Inputs& in) { return autograd::global_avg_pool(in[0]); },
                         {random_tensor({2, 3, 5, 3}, 18)});
}

TEST(Gradients, ResizeUpAndDown) {
  for (ResizeMode mode : {ResizeMode::Nearest, ResizeMode::Bilinear}) {
    for (auto [height, width] : {std::pair<std::int64_t, std::int64_t>{9, 11}, {3, 2}, {10, 14}}) {
      SCOPED_TRACE(std::to_string(height) + "x" + std::to_string(width));
      expect_gradients_match(
          [mode, height, width](const Inputs& in) {
            return autograd::resize(in[0], height, width, mode);
          },
          {random_tensor({2, 2, 5, 7}, 19)});
    }
  }
}

TEST(Gradients, ConcatChannels) {
  expect_gradients_match(
      [](const Inputs& in) {
        return autograd::concat_channels({in[0], in[1], in[2]});
      },
      {random_tensor({2, 1, 3, 2}, 20), random_tensor({2, 3, 3, 2}, 21),
       random_tensor({2, 2, 3, 2}, 22)});
}

// ---- elementwise

TEST(Gradients, AddMulScaleWeightedSum) {
  const std::vector<Tensor> pair{random_tensor({3, 4}, 23), random_tensor({3, 4}, 24)};
  expect_gradients_match([](const Inputs& in) { return autograd::add(in[0], in[1]); }, pair);
  expect_gradients_match([](const Inputs& in) { return autograd::mul(in[0], in[1]); }, pair);
  expect_gradients_match([](const Inputs& in) { return autograd::scale(in[0], -2.5); }, {pair[0]});
  expect_gradients_match(
      [](const Inputs& in) {
        return autograd::weighted_sum({in[0], in[1], in[2]}, {0.5, -1.5, 2.0});
      },
      {pair[0], pair[1], random_tensor({3, 4}, 25)});
}

TEST(Gradients, ReshapeAndFlatten) {
  expect_gradients_match(
      [](const Inputs& in) {
        return autograd::mul(autograd::reshape(in[0], {6, 2}), autograd::flatten(in[1]));
      },
      {random_tensor({3, 4}, 26), random_tensor({6, 1, 2}, 27)});
}

// ---- softmax and losses

TEST(Gradients, SoftmaxAndLogSoftmax) {
  const Tensor x = random_tensor({4, 6}, 28, -3, 3);
  expect_gradients_match([](const Inputs& in) { return autograd::softmax(in[0]); }, {x});
  expect_gradients_match([](const Inputs& in) { return autograd::log_softmax(in[0]); }, {x});
}

TEST(Gradients, CrossEntropyWithAndWithoutLabelSmoothing) {
  const Tensor labels = Tensor::from_vector<std::int32_t>({5}, {0, 3, 3, 1, 2});
  for (double smoothing : {0.0, 0.1, 0.3}) {
    SCOPED_TRACE(smoothing);
    expect_gradients_match(
        [&labels, smoothing](const Inputs& in) {
          return autograd::cross_entropy(in[0], labels, smoothing);
        },
        {random_tensor({5, 4}, 29, -3, 3)});
  }
}

TEST(Gradients, KlDivToStudentAndTeacher) {
  for (double temperature : {1.0, 3.0}) {
    SCOPED_TRACE(temperature);
    expect_gradients_match(
        [temperature](const Inputs& in) { return autograd::kl_div(in[0], in[1], temperature); },
        {random_tensor({4, 5}, 30, -3, 3), random_tensor({4, 5}, 31, -3, 3)});
  }
}

TEST(Gradients, Mse) {
  expect_gradients_match([](const Inputs& in) { return autograd::mse(in[0], in[1]); },
                         {random_tensor({3, 5}, 32), random_tensor({3, 5}, 33)});
}

// ---- a whole small network: conv, batch norm, relu, pooling, linear, the distillation loss

TEST(Gradients, SmallNetworkEndToEnd) {
  const Tensor labels = Tensor::from_vector<std::int32_t>({3}, {1, 0, 2});
  Tensor running_mean = Tensor::zeros({4}, DType::Float64);
  Tensor running_var = Tensor::full({4}, 1.0, DType::Float64);
  expect_gradients_match(
      [&](const Inputs& in) {
        Variable h = autograd::conv2d(in[0], in[1], Variable(), {.stride = 1, .padding = 1});
        h = autograd::batch_norm(h, in[2], in[3], running_mean, running_var,
                                 autograd::BatchNormMode::Train, RunningStatsUpdate::Skip, {});
        h = autograd::relu(h);
        h = autograd::max_pool2d(h, {.kernel = 2, .stride = 2});
        h = autograd::global_avg_pool(h);
        Variable logits = autograd::linear(h, in[4], in[5]);
        Variable teacher = autograd::scale(logits, 0.5);
        return autograd::weighted_sum(
            {autograd::cross_entropy(logits, labels, 0.1), autograd::kl_div(logits, teacher, 3.0)},
            {0.7, 0.3});
      },
      {random_tensor({3, 2, 6, 6}, 34), random_tensor({4, 2, 3, 3}, 35),
       random_tensor({4}, 36, 0.5, 1.5), random_tensor({4}, 37), random_tensor({3, 4}, 38),
       random_tensor({3}, 39)});
}

}  // namespace
}  // namespace md::test
