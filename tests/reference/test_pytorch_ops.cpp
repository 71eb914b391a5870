// Every op of the engine against PyTorch (tests/reference/make_fixtures.py): the forward output
// and the gradients of sum(r ⊙ out) with respect to every input, through the autograd functions
// and the CPU backend in float32, and three steps of SGD / Adam through the backend.
// Comparison: max over elements of |ours − PyTorch| / max(|PyTorch|, 0.1 · max|PyTorch|) must be
// at most 1e-5: a per-element relative error, floored at a tenth of the tensor's largest
// magnitude (float32 cancellation makes near-zero elements meaningless in relative terms).
// PyTorch's own float32 results differ from float64 by at most 4e-7 of each tensor's largest
// magnitude (make_fixtures.py prints it); ours differ from PyTorch's by at most 3e-6 on the
// metric above, except where our arithmetic differs from PyTorch's.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <set>
#include <string>
#include <vector>

#include "autograd/functions.h"
#include "backend/backend.h"
#include "support/fixture.h"
#include "support/gradcheck.h"

namespace md {
namespace {

using autograd::Variable;
using test::Fixture;

constexpr double kTolerance = 1e-5;
constexpr double kFloorFraction = 0.1;

double max_abs(const Tensor& tensor) {
  const Tensor values = tensor.to_dtype(DType::Float64);
  double largest = 0.0;
  for (std::int64_t i = 0; i < values.numel(); ++i) {
    largest = std::max(largest, std::fabs(values.data<double>()[i]));
  }
  return largest;
}

void expect_close(const Tensor& actual, const Tensor& expected, const std::string& what,
                  double tolerance = kTolerance) {
  ASSERT_TRUE(actual.defined()) << what << ": no value";
  ASSERT_EQ(actual.shape(), expected.shape()) << what;
  const double floor = std::max(kFloorFraction * max_abs(expected), 1e-30);
  const double error = test::max_relative_error(actual, expected, floor);
  EXPECT_LE(error, tolerance) << what << ": relative error " << error;
}

double scalar(const Fixture& fixture, const std::string& key) {
  return fixture.get(key).item();
}
int integer(const Fixture& fixture, const std::string& key) {
  return static_cast<int>(std::lround(scalar(fixture, key)));
}

// A leaf that requires a gradient, holding a copy of the fixture tensor.
Variable leaf(const Fixture& fixture, const std::string& key) {
  return Variable(fixture.get(key).clone(), true);
}

// Runs backward from `out` with the fixture's r and compares out and the named gradients.
void check_case(const Fixture& fixture, const std::string& name, autograd::Tape& tape,
                const Variable& out, const std::vector<std::pair<std::string, Variable>>& inputs) {
  expect_close(out.value(), fixture.get(name + "/out"), name + " forward");
  tape.backward(out, fixture.get(name + "/r"));
  for (const auto& [input_name, input] : inputs) {
    ASSERT_TRUE(input.has_grad()) << name << ": no gradient for " << input_name;
    expect_close(input.grad(), fixture.get(name + "/grad_" + input_name),
                 name + " gradient of " + input_name);
  }
}

// The case names ("<case>/...") a fixture file holds.
std::set<std::string> fixture_cases(const Fixture& fixture) {
  std::set<std::string> cases;
  for (const auto& [key, value] : fixture.all()) cases.insert(key.substr(0, key.find('/')));
  return cases;
}

std::string case_name(const testing::TestParamInfo<std::string>& info) {
  return info.param;
}

// ---- convolution

const std::vector<std::string> kConvCases = {
    "plain",     "bias",   "stride2",     "padding2",        "dilation2",       "groups2",
    "depthwise", "batch1", "odd_spatial", "kernel1_stride2", "kernel2_stride3", "kernel7_stride2"};

class Conv2dReference : public testing::TestWithParam<std::string> {};

TEST_P(Conv2dReference, ForwardAndBackward) {
  const Fixture fixture = Fixture::load("ops_conv2d");
  const std::string name = "conv2d_" + GetParam();
  const Conv2dParams params{.stride = integer(fixture, name + "/stride"),
                            .padding = integer(fixture, name + "/padding"),
                            .dilation = integer(fixture, name + "/dilation"),
                            .groups = integer(fixture, name + "/groups")};
  autograd::Tape tape;
  autograd::TapeScope scope(tape);
  Variable x = leaf(fixture, name + "/x");
  Variable weight = leaf(fixture, name + "/weight");
  std::vector<std::pair<std::string, Variable>> inputs = {{"x", x}, {"weight", weight}};
  Variable bias;
  if (fixture.has(name + "/bias")) {
    bias = leaf(fixture, name + "/bias");
    inputs.emplace_back("bias", bias);
  }
  check_case(fixture, name, tape, autograd::conv2d(x, weight, bias, params), inputs);
}

INSTANTIATE_TEST_SUITE_P(PyTorch, Conv2dReference, testing::ValuesIn(kConvCases), case_name);

// ---- linear

class LinearReference : public testing::TestWithParam<std::string> {};

TEST_P(LinearReference, ForwardAndBackward) {
  const Fixture fixture = Fixture::load("ops_linear");
  const std::string name = "linear_" + GetParam();
  autograd::Tape tape;
  autograd::TapeScope scope(tape);
  Variable x = leaf(fixture, name + "/x");
  Variable weight = leaf(fixture, name + "/weight");
  std::vector<std::pair<std::string, Variable>> inputs = {{"x", x}, {"weight", weight}};
  Variable bias;
  if (fixture.has(name + "/bias")) {
    bias = leaf(fixture, name + "/bias");
    inputs.emplace_back("bias", bias);
  }
  check_case(fixture, name, tape, autograd::linear(x, weight, bias), inputs);
}

INSTANTIATE_TEST_SUITE_P(PyTorch, LinearReference, testing::Values("bias", "no_bias"), case_name);

// ---- batch norm: outputs, gradients, running statistics

class BatchNormReference : public testing::TestWithParam<std::string> {};

TEST_P(BatchNormReference, ForwardBackwardAndRunningStats) {
  const Fixture fixture = Fixture::load("ops_batch_norm");
  const std::string name = "batch_norm_" + GetParam();
  const bool train = GetParam().rfind("train", 0) == 0;
  const BatchNormParams params{.momentum = scalar(fixture, name + "/momentum"),
                               .epsilon = scalar(fixture, name + "/epsilon")};
  Tensor running_mean = fixture.get(name + "/running_mean").clone();
  Tensor running_var = fixture.get(name + "/running_var").clone();
  autograd::Tape tape;
  autograd::TapeScope scope(tape);
  Variable x = leaf(fixture, name + "/x");
  Variable gamma = leaf(fixture, name + "/gamma");
  Variable beta = leaf(fixture, name + "/beta");
  Variable out =
      autograd::batch_norm(x, gamma, beta, running_mean, running_var,
                           train ? autograd::BatchNormMode::Train : autograd::BatchNormMode::Eval,
                           RunningStatsUpdate::Update, params);
  check_case(fixture, name, tape, out, {{"x", x}, {"gamma", gamma}, {"beta", beta}});
  expect_close(running_mean, fixture.get(name + "/running_mean_after"), name + " running_mean");
  expect_close(running_var, fixture.get(name + "/running_var_after"), name + " running_var");
}

TEST(BatchNormReference, SkipLeavesRunningStatsAlone) {
  const Fixture fixture = Fixture::load("ops_batch_norm");
  const std::string name = "batch_norm_train";
  Tensor running_mean = fixture.get(name + "/running_mean").clone();
  Tensor running_var = fixture.get(name + "/running_var").clone();
  autograd::NoGrad no_grad;
  Variable out = autograd::batch_norm(
      Variable(fixture.get(name + "/x")), Variable(fixture.get(name + "/gamma")),
      Variable(fixture.get(name + "/beta")), running_mean, running_var,
      autograd::BatchNormMode::Train, RunningStatsUpdate::Skip, BatchNormParams{});
  expect_close(out.value(), fixture.get(name + "/out"), name + " forward with Skip");
  EXPECT_EQ(running_mean.to_vector<float>(),
            fixture.get(name + "/running_mean").to_vector<float>());
  EXPECT_EQ(running_var.to_vector<float>(), fixture.get(name + "/running_var").to_vector<float>());
}

INSTANTIATE_TEST_SUITE_P(PyTorch, BatchNormReference,
                         testing::Values("train", "train_2d", "eval", "eval_2d"), case_name);

// ---- activations

TEST(ActivationReference, Relu) {
  const Fixture fixture = Fixture::load("ops_activation");
  autograd::Tape tape;
  autograd::TapeScope scope(tape);
  Variable x = leaf(fixture, "relu/x");
  check_case(fixture, "relu", tape, autograd::relu(x), {{"x", x}});
}

TEST(ActivationReference, Sigmoid) {
  const Fixture fixture = Fixture::load("ops_activation");
  autograd::Tape tape;
  autograd::TapeScope scope(tape);
  Variable x = leaf(fixture, "sigmoid/x");
  check_case(fixture, "sigmoid", tape, autograd::sigmoid(x), {{"x", x}});
}

// ---- pooling

class PoolReference : public testing::TestWithParam<std::string> {};

TEST_P(PoolReference, ForwardAndBackward) {
  const Fixture fixture = Fixture::load("ops_pool");
  const std::string name = "pool_" + GetParam();
  const Pool2dParams params{.kernel = integer(fixture, name + "/kernel"),
                            .stride = integer(fixture, name + "/stride"),
                            .padding = integer(fixture, name + "/padding")};
  autograd::Tape tape;
  autograd::TapeScope scope(tape);
  Variable x = leaf(fixture, name + "/x");
  Variable out = GetParam().rfind("max", 0) == 0 ? autograd::max_pool2d(x, params)
                                                 : autograd::avg_pool2d(x, params);
  check_case(fixture, name, tape, out, {{"x", x}});
}

INSTANTIATE_TEST_SUITE_P(PyTorch, PoolReference,
                         testing::Values("max_k2s2", "max_k3s2p1", "max_k3s2p1_even", "avg_k2s2",
                                         "avg_k3s2p1", "avg_k3s1p1"),
                         case_name);

TEST(PoolReference, GlobalAveragePool) {
  const Fixture fixture = Fixture::load("ops_pool");
  autograd::Tape tape;
  autograd::TapeScope scope(tape);
  Variable x = leaf(fixture, "global_avg_pool/x");
  check_case(fixture, "global_avg_pool", tape, autograd::global_avg_pool(x), {{"x", x}});
}

// ---- resize

class ResizeReference : public testing::TestWithParam<std::string> {};

TEST_P(ResizeReference, ForwardAndBackward) {
  const Fixture fixture = Fixture::load("ops_resize");
  const std::string name = "resize_" + GetParam();
  const ResizeMode mode =
      GetParam().rfind("nearest", 0) == 0 ? ResizeMode::Nearest : ResizeMode::Bilinear;
  autograd::Tape tape;
  autograd::TapeScope scope(tape);
  Variable x = leaf(fixture, name + "/x");
  Variable out = autograd::resize(x, integer(fixture, name + "/out_height"),
                                  integer(fixture, name + "/out_width"), mode);
  check_case(fixture, name, tape, out, {{"x", x}});
}

INSTANTIATE_TEST_SUITE_P(PyTorch, ResizeReference,
                         testing::Values("nearest_up", "nearest_down", "nearest_2x", "bilinear_up",
                                         "bilinear_down", "bilinear_2x"),
                         case_name);

// ---- concat, add, mul

TEST(ElementwiseReference, ConcatChannels) {
  const Fixture fixture = Fixture::load("ops_elementwise");
  autograd::Tape tape;
  autograd::TapeScope scope(tape);
  Variable x0 = leaf(fixture, "concat/x0");
  Variable x1 = leaf(fixture, "concat/x1");
  Variable x2 = leaf(fixture, "concat/x2");
  check_case(fixture, "concat", tape, autograd::concat_channels({x0, x1, x2}),
             {{"x0", x0}, {"x1", x1}, {"x2", x2}});
}

TEST(ElementwiseReference, Add) {
  const Fixture fixture = Fixture::load("ops_elementwise");
  autograd::Tape tape;
  autograd::TapeScope scope(tape);
  Variable a = leaf(fixture, "add/a");
  Variable b = leaf(fixture, "add/b");
  check_case(fixture, "add", tape, autograd::add(a, b), {{"a", a}, {"b", b}});
}

TEST(ElementwiseReference, Mul) {
  const Fixture fixture = Fixture::load("ops_elementwise");
  autograd::Tape tape;
  autograd::TapeScope scope(tape);
  Variable a = leaf(fixture, "mul/a");
  Variable b = leaf(fixture, "mul/b");
  check_case(fixture, "mul", tape, autograd::mul(a, b), {{"a", a}, {"b", b}});
}

// ---- softmax

TEST(SoftmaxReference, Softmax) {
  const Fixture fixture = Fixture::load("ops_softmax");
  autograd::Tape tape;
  autograd::TapeScope scope(tape);
  Variable x = leaf(fixture, "softmax/x");
  check_case(fixture, "softmax", tape, autograd::softmax(x), {{"x", x}});
}

TEST(SoftmaxReference, LogSoftmax) {
  const Fixture fixture = Fixture::load("ops_softmax");
  autograd::Tape tape;
  autograd::TapeScope scope(tape);
  Variable x = leaf(fixture, "log_softmax/x");
  check_case(fixture, "log_softmax", tape, autograd::log_softmax(x), {{"x", x}});
}

// ---- losses

class CrossEntropyReference : public testing::TestWithParam<std::string> {};

TEST_P(CrossEntropyReference, ForwardAndBackward) {
  const Fixture fixture = Fixture::load("ops_loss");
  const std::string name = GetParam();
  autograd::Tape tape;
  autograd::TapeScope scope(tape);
  Variable logits = leaf(fixture, name + "/logits");
  const Tensor& labels = fixture.get(name + "/labels");
  ASSERT_EQ(labels.dtype(), DType::Int32);
  Variable loss =
      autograd::cross_entropy(logits, labels, scalar(fixture, name + "/label_smoothing"));
  check_case(fixture, name, tape, loss, {{"logits", logits}});
}

INSTANTIATE_TEST_SUITE_P(PyTorch, CrossEntropyReference,
                         testing::Values("cross_entropy", "cross_entropy_smooth"), case_name);

class KlDivReference : public testing::TestWithParam<std::string> {};

TEST_P(KlDivReference, ForwardAndBothGradients) {
  const Fixture fixture = Fixture::load("ops_loss");
  const std::string name = GetParam();
  autograd::Tape tape;
  autograd::TapeScope scope(tape);
  Variable student = leaf(fixture, name + "/student");
  Variable teacher = leaf(fixture, name + "/teacher");
  Variable loss = autograd::kl_div(student, teacher, scalar(fixture, name + "/temperature"));
  check_case(fixture, name, tape, loss, {{"student", student}, {"teacher", teacher}});
}

INSTANTIATE_TEST_SUITE_P(PyTorch, KlDivReference, testing::Values("kl_div_t1", "kl_div_t3"),
                         case_name);

TEST(LossReference, MeanSquaredError) {
  const Fixture fixture = Fixture::load("ops_loss");
  autograd::Tape tape;
  autograd::TapeScope scope(tape);
  Variable a = leaf(fixture, "mse/a");
  Variable b = leaf(fixture, "mse/b");
  check_case(fixture, "mse", tape, autograd::mse(a, b), {{"a", a}, {"b", b}});
}

// ---- optimizers: 3 steps against torch.optim

class SgdReference : public testing::TestWithParam<std::string> {};

TEST_P(SgdReference, ThreeSteps) {
  const Fixture fixture = Fixture::load("optim");
  const std::string name = GetParam();
  const SgdParams params{.learning_rate = scalar(fixture, name + "/learning_rate"),
                         .momentum = scalar(fixture, name + "/momentum"),
                         .weight_decay = scalar(fixture, name + "/weight_decay"),
                         .nesterov = scalar(fixture, name + "/nesterov") != 0.0};
  Tensor param = fixture.get(name + "/param0").clone();
  Tensor momentum_buffer = Tensor::zeros(param.shape());
  Backend& backend = backend::get(Device::cpu());
  for (int step = 1; step <= 3; ++step) {
    backend.sgd_update(param, fixture.get(name + "/grad" + std::to_string(step)), momentum_buffer,
                       params);
  }
  expect_close(param, fixture.get(name + "/param3"), name + " parameters after 3 steps");
  if (fixture.has(name + "/momentum_buffer")) {
    expect_close(momentum_buffer, fixture.get(name + "/momentum_buffer"), name + " momentum");
  }
}

INSTANTIATE_TEST_SUITE_P(PyTorch, SgdReference,
                         testing::Values("sgd_momentum", "sgd_nesterov", "sgd_plain"), case_name);

class AdamReference : public testing::TestWithParam<std::string> {};

TEST_P(AdamReference, ThreeSteps) {
  const Fixture fixture = Fixture::load("optim");
  const std::string name = GetParam();
  Tensor param = fixture.get(name + "/param0").clone();
  Tensor exp_avg = Tensor::zeros(param.shape());
  Tensor exp_avg_sq = Tensor::zeros(param.shape());
  Backend& backend = backend::get(Device::cpu());
  for (int step = 1; step <= 3; ++step) {
    const AdamParams params{.learning_rate = scalar(fixture, name + "/learning_rate"),
                            .beta1 = scalar(fixture, name + "/beta1"),
                            .beta2 = scalar(fixture, name + "/beta2"),
                            .epsilon = scalar(fixture, name + "/epsilon"),
                            .weight_decay = scalar(fixture, name + "/weight_decay"),
                            .step = step};
    backend.adam_update(param, fixture.get(name + "/grad" + std::to_string(step)), exp_avg,
                        exp_avg_sq, params);
  }
  expect_close(param, fixture.get(name + "/param3"), name + " parameters after 3 steps");
  expect_close(exp_avg, fixture.get(name + "/exp_avg"), name + " exp_avg");
  expect_close(exp_avg_sq, fixture.get(name + "/exp_avg_sq"), name + " exp_avg_sq");
}

INSTANTIATE_TEST_SUITE_P(PyTorch, AdamReference, testing::Values("adam", "adam_weight_decay"),
                         case_name);

// ---- every case the script writes is tested above

TEST(FixtureCoverage, EveryCaseHasATest) {
  const std::vector<std::pair<std::string, std::set<std::string>>> files = {
      {"ops_conv2d",
       [] {
         std::set<std::string> names;
         for (const std::string& c : kConvCases) names.insert("conv2d_" + c);
         return names;
       }()},
      {"ops_linear", {"linear_bias", "linear_no_bias"}},
      {"ops_batch_norm",
       {"batch_norm_train", "batch_norm_train_2d", "batch_norm_eval", "batch_norm_eval_2d"}},
      {"ops_activation", {"relu", "sigmoid"}},
      {"ops_pool",
       {"pool_max_k2s2", "pool_max_k3s2p1", "pool_max_k3s2p1_even", "pool_avg_k2s2",
        "pool_avg_k3s2p1", "pool_avg_k3s1p1", "global_avg_pool"}},
      {"ops_resize",
       {"resize_nearest_up", "resize_nearest_down", "resize_nearest_2x", "resize_bilinear_up",
        "resize_bilinear_down", "resize_bilinear_2x"}},
      {"ops_elementwise", {"concat", "add", "mul"}},
      {"ops_softmax", {"softmax", "log_softmax"}},
      {"ops_loss", {"cross_entropy", "cross_entropy_smooth", "kl_div_t1", "kl_div_t3", "mse"}},
      {"optim", {"sgd_momentum", "sgd_nesterov", "sgd_plain", "adam", "adam_weight_decay"}},
  };
  for (const auto& [file, tested] : files) {
    EXPECT_EQ(fixture_cases(Fixture::load(file)), tested) << "fixture " << file;
  }
}

}  // namespace
}  // namespace md
