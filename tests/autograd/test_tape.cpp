// Tape mechanics: gradients accumulate when a variable is used twice, NoGrad records nothing,
// detach stops gradients, external gradient buffers accumulate across backward passes,
// reshape shares storage, and the batch norm function moves running statistics only on request.
#include <gtest/gtest.h>

#include "autograd/functions.h"
#include "backend/backend.h"
#include "support/gradcheck.h"

namespace md::test {
namespace {

using autograd::Variable;

std::vector<double> values(const Tensor& tensor) {
  return tensor.to_vector<double>();
}

Tensor ones_like(const Variable& variable) {
  return Tensor::full(variable.shape(), 1.0, variable.value().dtype());
}

TEST(Tape, GradientsAccumulateWhenAVariableIsUsedTwice) {
  autograd::Tape tape;
  autograd::TapeScope scope(tape);
  Variable x(Tensor::from_vector<double>({3}, {1.0, -2.0, 3.0}), true);
  Variable doubled = autograd::add(x, x);
  tape.backward(doubled, ones_like(doubled));
  EXPECT_EQ(values(x.grad()), (std::vector<double>{2, 2, 2}));

  Variable y(Tensor::from_vector<double>({3}, {1.0, -2.0, 3.0}), true);
  Variable square = autograd::mul(y, y);
  tape.backward(square, ones_like(square));
  EXPECT_EQ(values(y.grad()), (std::vector<double>{2, -4, 6}));

  // A diamond: z = relu(w) + 3·w, with one input of the sum through each branch.
  Variable w(Tensor::from_vector<double>({2}, {-1.0, 2.0}), true);
  Variable z = autograd::add(autograd::relu(w), autograd::scale(w, 3.0));
  tape.backward(z, ones_like(z));
  EXPECT_EQ(values(w.grad()), (std::vector<double>{3, 4}));
  EXPECT_EQ(tape.size(), 0u);  // backward clears the tape
}

TEST(Tape, NoGradRecordsNothing) {
  autograd::Tape tape;
  autograd::TapeScope scope(tape);
  Variable x(Tensor::from_vector<double>({2}, {1.0, -1.0}), true);
  {
    autograd::NoGrad no_grad;
    Variable y = autograd::relu(autograd::scale(x, 2.0));
    EXPECT_FALSE(y.requires_grad());
    EXPECT_EQ(values(y.value()), (std::vector<double>{2, 0}));
  }
  EXPECT_EQ(tape.size(), 0u);
  Variable recorded = autograd::relu(x);
  EXPECT_TRUE(recorded.requires_grad());
  EXPECT_EQ(tape.size(), 1u);
  tape.clear();
}

TEST(Tape, FunctionsOfConstantsRecordNothing) {
  autograd::Tape tape;
  autograd::TapeScope scope(tape);
  Variable constant(Tensor::from_vector<double>({2, 2}, {1, 2, 3, 4}), false);
  Variable y = autograd::softmax(autograd::mul(constant, constant));
  EXPECT_FALSE(y.requires_grad());
  EXPECT_EQ(tape.size(), 0u);
}

TEST(Tape, DetachStopsGradients) {
  autograd::Tape tape;
  autograd::TapeScope scope(tape);
  Variable x(Tensor::from_vector<double>({3}, {1.0, -2.0, 3.0}), true);
  Variable y = autograd::mul(x.detach(), x);
  tape.backward(y, ones_like(y));
  EXPECT_EQ(values(x.grad()), (std::vector<double>{1, -2, 3}));  // not 2x

  // A detached teacher: the KL gradient reaches the student only.
  Variable student(random_tensor({2, 3}, 1), true);
  Variable teacher(random_tensor({2, 3}, 2), true);
  Variable loss = autograd::kl_div(student, teacher.detach(), 2.0);
  tape.backward(loss);
  EXPECT_TRUE(student.has_grad());
  EXPECT_FALSE(teacher.has_grad());
}

TEST(Tape, ExternalGradientBuffersAccumulate) {
  autograd::Tape tape;
  autograd::TapeScope scope(tape);
  Tensor flat_grads = Tensor::full({5}, 1.0, DType::Float64);  // a flat buffer, pre-filled
  Tensor parameters = Tensor::from_vector<double>({5}, {1, 2, 3, 4, 5});
  Variable weight =
      Variable::with_grad_buffer(parameters.slice_flat(1, {3}), flat_grads.slice_flat(1, {3}));
  Variable y = autograd::scale(weight, 2.0);
  tape.backward(y, ones_like(y));
  EXPECT_EQ(values(flat_grads), (std::vector<double>{1, 3, 3, 3, 1}));
  Variable again = autograd::mul(weight, weight);
  tape.backward(again, ones_like(again));
  EXPECT_EQ(values(flat_grads), (std::vector<double>{1, 3 + 4, 3 + 6, 3 + 8, 1}));
}

TEST(Tape, MixedWriteModesInOneBackwardCall) {
  // linear's three gradients in one backend call: x is fresh (overwrite), the weight's buffer
  // accumulates; the same for batch norm.
  autograd::Tape tape;
  autograd::TapeScope scope(tape);
  Tensor weight_grads = Tensor::full({2, 3}, 10.0, DType::Float64);
  Variable x(Tensor::from_vector<double>({1, 3}, {1, 2, 3}), true);
  Variable weight = Variable::with_grad_buffer(
      Tensor::from_vector<double>({2, 3}, {1, 0, 0, 0, 1, 0}), weight_grads);
  Variable y = autograd::linear(x, weight, Variable());
  tape.backward(y, ones_like(y));
  EXPECT_EQ(values(x.grad()), (std::vector<double>{1, 1, 0}));
  EXPECT_EQ(values(weight_grads), (std::vector<double>{11, 12, 13, 11, 12, 13}));
}

TEST(Tape, ReshapeSharesStorageAndPassesGradients) {
  autograd::Tape tape;
  autograd::TapeScope scope(tape);
  Variable x(Tensor::from_vector<double>({2, 3}, {1, 2, 3, 4, 5, 6}), true);
  Variable reshaped = autograd::reshape(x, {3, 2});
  EXPECT_EQ(reshaped.shape(), (Shape{3, 2}));
  EXPECT_EQ(reshaped.value().raw_data(), x.value().raw_data());
  x.value().data<double>()[4] = 50;
  EXPECT_EQ(reshaped.value().data<double>()[4], 50);
  Variable flat = autograd::flatten(Variable(Tensor::zeros({2, 3, 4, 5}, DType::Float64), false));
  EXPECT_EQ(flat.shape(), (Shape{2, 60}));
  Variable square = autograd::mul(reshaped, reshaped);
  tape.backward(square, ones_like(square));
  EXPECT_EQ(x.grad().shape(), (Shape{2, 3}));
  EXPECT_EQ(values(x.grad()), (std::vector<double>{2, 4, 6, 8, 100, 12}));
  EXPECT_THROW(autograd::reshape(x, {4, 2}), Error);
}

TEST(Tape, ConcatGradientsReachOnlyTheInputsThatWantThem) {
  autograd::Tape tape;
  autograd::TapeScope scope(tape);
  // The input that wants a gradient sits between two constants.
  Variable left(random_tensor({2, 1, 2}, 1), false);
  Variable middle(random_tensor({2, 2, 2}, 2), true);
  Variable right(random_tensor({2, 3, 2}, 3), false);
  Variable y = autograd::concat_channels({left, middle, right});
  EXPECT_EQ(y.shape(), (Shape{2, 6, 2}));
  Tensor seed = random_tensor({2, 6, 2}, 4);
  tape.backward(y, seed);
  ASSERT_TRUE(middle.has_grad());
  const std::vector<double> seed_values = values(seed);
  const std::vector<double> grad = values(middle.grad());
  for (std::size_t n = 0; n < 2; ++n) {
    for (std::size_t i = 0; i < 4; ++i) EXPECT_EQ(grad[n * 4 + i], seed_values[n * 12 + 2 + i]);
  }
  EXPECT_FALSE(left.has_grad());
  EXPECT_FALSE(right.has_grad());
}

TEST(Tape, LossesAreScalarsAndBackwardSeedsOne) {
  autograd::Tape tape;
  autograd::TapeScope scope(tape);
  Variable logits(random_tensor({4, 3}, 5), true);
  const Tensor labels = Tensor::from_vector<std::int32_t>({4}, {0, 1, 2, 1});
  Variable loss = autograd::cross_entropy(logits, labels);
  EXPECT_EQ(loss.shape(), Shape{});
  EXPECT_EQ(autograd::mse(logits, logits.detach()).shape(), Shape{});
  EXPECT_EQ(autograd::kl_div(logits, logits, 2.0).shape(), Shape{});
  tape.clear();
  loss = autograd::cross_entropy(logits, labels);
  tape.backward(loss);
  // Each row of the cross-entropy gradient sums to zero (softmax minus a distribution).
  const std::vector<double> grad = values(logits.grad());
  for (std::size_t row = 0; row < 4; ++row) {
    EXPECT_NEAR(grad[row * 3] + grad[row * 3 + 1] + grad[row * 3 + 2], 0.0, 1e-15);
  }
}

TEST(Tape, BatchNormMovesRunningStatsOnlyOnRequest) {
  Tensor running_mean = Tensor::zeros({2}, DType::Float64);
  Tensor running_var = Tensor::full({2}, 1.0, DType::Float64);
  Variable x(random_tensor({4, 2, 3, 3}, 6, 1.0, 3.0), false);
  Variable gamma(Tensor::full({2}, 1.0, DType::Float64), false);
  Variable beta(Tensor::zeros({2}, DType::Float64), false);
  autograd::batch_norm(x, gamma, beta, running_mean, running_var, autograd::BatchNormMode::Train,
                       RunningStatsUpdate::Skip, {});
  EXPECT_EQ(values(running_mean), (std::vector<double>{0, 0}));
  autograd::batch_norm(x, gamma, beta, running_mean, running_var, autograd::BatchNormMode::Eval,
                       RunningStatsUpdate::Update, {});
  EXPECT_EQ(values(running_mean), (std::vector<double>{0, 0}));  // eval never updates
  autograd::batch_norm(x, gamma, beta, running_mean, running_var, autograd::BatchNormMode::Train,
                       RunningStatsUpdate::Update, {});
  EXPECT_GT(values(running_mean)[0], 0.1);
  EXPECT_NE(values(running_var)[0], 1.0);
}

TEST(Tape, InvalidArgumentsAreErrors) {
  Variable a(Tensor::zeros({2, 3}, DType::Float64), false);
  Variable b(Tensor::zeros({3, 2}, DType::Float64), false);
  EXPECT_THROW(autograd::add(a, b), Error);
  EXPECT_THROW(autograd::weighted_sum({a, a}, {1.0}), Error);
  EXPECT_THROW(autograd::weighted_sum({a, b}, {1.0, 1.0}), Error);
  EXPECT_THROW(autograd::cross_entropy(a, Tensor::zeros({2}, DType::Float32)), Error);
}

}  // namespace
}  // namespace md::test
