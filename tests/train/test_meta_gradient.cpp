// The MetaDistiller meta-gradient (DESIGN.md §1, §8), in float64 on the CPU:
// - against PyTorch's exact second-order gradient through the virtual step, on the tiny student
//   and generator of tests/reference/make_meta_fixture.py rebuilt here from nn modules, computed
//   by train::finite_difference_meta_gradient (the routine Learner::step uses);
// - against central differences of the whole bilevel objective F(φ) = L_meta(θ − η·∇θL(θ; φ))
//   on a real Learner (resnet20 student with auxiliary heads and the label generator), where
//   each F is evaluated by the learner's own passes.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <string>

#include "autograd/functions.h"
#include "backend/backend.h"
#include "nn/module.h"
#include "support/fixture.h"
#include "support/gradcheck.h"
#include "train/learner.h"

namespace md::train {
namespace {

using autograd::Variable;

// The tiny student of make_meta_fixture.py: conv 3x3 → BN (batch statistics) → ReLU;
// conv 3x3 stride 2 → ReLU; a linear head on the global average of each stage.
struct TinyStudent {
  explicit TinyStudent(int channels, int classes)
      : conv1(layout, "conv1", {.in_channels = channels, .out_channels = 4, .kernel = 3, .params = {.padding = 1}}),
        bn1(layout, "bn1", 4),
        conv2(layout, "conv2", {.in_channels = 4, .out_channels = 6, .kernel = 3, .params = {.stride = 2, .padding = 1}}),
        head0(layout, "head0", {.in_features = 4, .out_features = classes}),
        head1(layout, "head1", {.in_features = 6, .out_features = classes}) {}

  // x: (N, C, H, W); pooled: per stage (N, C_s)
  std::vector<Variable> forward(const nn::ForwardContext& context, const Variable& x,
                                std::vector<Variable>& pooled) const {
    const Variable stage0 = autograd::relu(bn1.forward(context, conv1.forward(context, x)));
    const Variable stage1 = autograd::relu(conv2.forward(context, stage0));
    pooled = {autograd::global_avg_pool(stage0), autograd::global_avg_pool(stage1)};
    return {head0.forward(context, pooled[0]), head1.forward(context, pooled[1])};
  }

  nn::ModelLayout layout;
  nn::Conv2d conv1;
  nn::BatchNorm2d bn1;
  nn::Conv2d conv2;
  nn::Linear head0;
  nn::Linear head1;
};

// u_0 = fc(relu(lat0(f_0) + lat1(f_1))) on the detached pooled stage features.
struct TinyGenerator {
  TinyGenerator(int width, int classes)
      : lat0(layout, "gen.lat0", {.in_features = 4, .out_features = width}),
        lat1(layout, "gen.lat1", {.in_features = 6, .out_features = width}),
        fc(layout, "gen.fc", {.in_features = width, .out_features = classes}) {}

  std::vector<Variable> forward(const nn::ForwardContext& context, const std::vector<Variable>& pooled) const {
    const Variable fused = autograd::relu(autograd::add(lat0.forward(context, pooled[0]),
                                                        lat1.forward(context, pooled[1])));
    return {fc.forward(context, fused)};
  }

  nn::ModelLayout layout;
  nn::Linear lat0;
  nn::Linear lat1;
  nn::Linear fc;
};

// Copies fixture tensors "<prefix><slot name>" into every slot of a flat parameter buffer.
void load_slots(const nn::FlatLayout& layout, Tensor& buffer, const test::Fixture& fixture,
                const std::string& prefix) {
  for (std::size_t i = 0; i < layout.slots().size(); ++i) {
    Tensor view = layout.view(buffer, static_cast<int>(i));
    view.copy_from(fixture.get(prefix + layout.slots()[i].name));
  }
}

TEST(MetaGradient, FiniteDifferenceMatchesPyTorchExactSecondOrder) {
  const test::Fixture fixture = test::Fixture::load("meta_gradient");
  Backend& backend = backend::get(Device::cpu());
  Collective single_rank;
  const int channels = static_cast<int>(fixture.get("images").dim(1));
  const int classes = static_cast<int>(fixture.get("theta.head0.weight").dim(0));
  const int width = static_cast<int>(fixture.get("phi.gen.fc.weight").dim(1));
  const TinyStudent student(channels, classes);
  const TinyGenerator generator(width, classes);
  Rng rng(0, 0);
  nn::ModelBuffers theta = nn::ModelBuffers::allocate(student.layout, DType::Float64, Device::cpu());
  theta.initialize(student.layout, rng);
  load_slots(student.layout.parameters, theta.parameters, fixture, "theta.");
  nn::ModelBuffers phi = nn::ModelBuffers::allocate(generator.layout, DType::Float64, Device::cpu());
  phi.initialize(generator.layout, rng);
  load_slots(generator.layout.parameters, phi.parameters, fixture, "phi.");
  const Tensor buffers_before = theta.buffers.clone();

  const LossSpec loss{.method = MethodKind::MetaDistiller,
                      .temperature = fixture.get("temperature").item(),
                      .alpha = fixture.get("alpha").item()};
  const Tensor& images = fixture.get("images");
  // L(θ; φ) by train::student_loss and its gradient g; G's targets on their own tape.
  backend.fill(theta.gradients, 0.0);
  autograd::Tape tape, generator_tape;
  std::vector<Variable> targets;
  LossTerms terms;
  {
    autograd::TapeScope scope(tape);
    const nn::ForwardContext context{&student.layout, theta.parameters, theta.gradients, theta.buffers,
                                     nn::Mode::Train, RunningStatsUpdate::Skip};
    models::StudentOutput output;
    std::vector<Variable> pooled;
    output.logits = student.forward(context, Variable(images), pooled);
    output.head_features = pooled;
    std::vector<Variable> detached{pooled[0].detach(), pooled[1].detach()};
    {
      autograd::TapeScope generator_scope(generator_tape);
      const nn::ForwardContext generator_context{&generator.layout, phi.parameters, phi.gradients,
                                                 phi.buffers, nn::Mode::Train, RunningStatsUpdate::Skip};
      targets = generator.forward(generator_context, detached);
    }
    terms = student_loss(loss, output, fixture.get("labels"), {targets[0].detach()});
  }
  tape.backward(terms.total);
  EXPECT_NEAR(terms.total.value().item(), fixture.get("student_loss").item(), 1e-12);
  for (std::size_t i = 0; i < student.layout.parameters.slots().size(); ++i) {
    const std::string& name = student.layout.parameters.slots()[i].name;
    EXPECT_LT(test::relative_norm_error(student.layout.parameters.view(theta.gradients, static_cast<int>(i)),
                                        fixture.get("grad_theta." + name)),
              1e-12)
        << "∇θ L of " << name;
  }

  const StudentLogits student_logits = [&](const Tensor& parameters, const Tensor& gradients,
                                           const Tensor& batch) {
    const nn::ForwardContext context{&student.layout, parameters, gradients, theta.buffers,
                                     nn::Mode::Train, RunningStatsUpdate::Skip};
    std::vector<Variable> pooled;
    return student.forward(context, Variable(batch), pooled);
  };
  MetaScratch scratch{.virtual_parameters = Tensor::empty(theta.parameters.shape(), DType::Float64),
                      .meta_gradients = Tensor::empty(theta.parameters.shape(), DType::Float64)};
  const Tensor parameters_before = theta.parameters.clone();
  const Tensor gradients_before = theta.gradients.clone();
  backend.fill(phi.gradients, 0.0);
  const MetaGradientInputs inputs{.parameters = theta.parameters,
                                  .gradients = theta.gradients,
                                  .learning_rate = fixture.get("learning_rate").item(),
                                  .images = images,
                                  .meta_images = fixture.get("meta_images"),
                                  .meta_labels = fixture.get("meta_labels"),
                                  .targets = targets,
                                  .generator_tape = &generator_tape,
                                  .alpha = loss.alpha,
                                  .temperature = loss.temperature,
                                  .epsilon = fixture.get("epsilon").item()};
  const MetaGradientResult result =
      finite_difference_meta_gradient(backend, single_rank, student_logits, inputs, scratch);
  ASSERT_TRUE(result.computed);
  EXPECT_NEAR(result.meta_loss, fixture.get("meta_loss").item(), 1e-12);
  EXPECT_NEAR(result.v_norm, fixture.get("v_norm").item(), 1e-12 * result.v_norm);

  // The whole meta-gradient ∇φ, and each generator tensor.
  Tensor exact = Tensor::empty(phi.gradients.shape(), DType::Float64);
  load_slots(generator.layout.parameters, exact, fixture, "meta_gradient.");
  const double error = test::relative_norm_error(phi.gradients, exact);
  RecordProperty("relative_error", std::to_string(error));
  std::printf("finite-difference vs exact meta-gradient: relative error %.3e (PyTorch's own %.3e)\n",
              error, fixture.get("torch_fd_relative_error").item());
  EXPECT_LT(error, 1e-7);
  for (std::size_t i = 0; i < generator.layout.parameters.slots().size(); ++i) {
    const std::string& name = generator.layout.parameters.slots()[i].name;
    EXPECT_LT(test::relative_norm_error(generator.layout.parameters.view(phi.gradients, static_cast<int>(i)),
                                        fixture.get("meta_gradient." + name)),
              1e-6)
        << name;
  }
  // The routine leaves θ, g and the running statistics alone.
  EXPECT_EQ(theta.parameters.to_vector<double>(), parameters_before.to_vector<double>());
  EXPECT_EQ(theta.gradients.to_vector<double>(), gradients_before.to_vector<double>());
  EXPECT_EQ(theta.buffers.to_vector<double>(), buffers_before.to_vector<double>());
}

// A resnet20 student with auxiliary heads and the label generator, all in float64.
LearnerSpec tiny_learner_spec() {
  LearnerSpec spec;
  spec.model = models::ModelSpec{.arch = "resnet20", .num_classes = 3, .in_channels = 1};
  spec.loss = LossSpec{.method = MethodKind::MetaDistiller, .temperature = 3.0, .alpha = 0.5};
  spec.sgd = SgdParams{.learning_rate = 0.1, .momentum = 0.9, .weight_decay = 5e-4};
  spec.meta = MetaSpec{.every = 1, .epsilon = 1e-5, .optimizer = GeneratorOptimizer::Adam,
                       .learning_rate = 1e-3, .generator_width = 6};
  spec.seed = 3;
  spec.device = Device::cpu();
  spec.dtype = DType::Float64;
  return spec;
}

Tensor labels_of(const std::vector<std::int32_t>& labels) {
  return Tensor::from_vector<std::int32_t>({static_cast<std::int64_t>(labels.size())}, labels);
}

double element(const Tensor& flat, std::int64_t index) {
  return flat.slice_flat(index, {}).to_dtype(DType::Float64).item();
}

void set_element(Tensor& flat, std::int64_t index, double value) {
  Tensor view = flat.slice_flat(index, {1});
  backend::of(flat).fill(view, value);
}

TEST(MetaGradient, MatchesNumericalDerivativeOfBilevelObjective) {
  Collective single_rank;
  Learner learner(tiny_learner_spec(), single_rank);
  const Tensor images = test::random_tensor({6, 1, 8, 8}, 11, -1.0, 1.0);
  const Tensor labels = labels_of({0, 1, 2, 2, 1, 0});
  const Tensor meta_images = test::random_tensor({6, 1, 8, 8}, 12, -1.0, 1.0);
  const Tensor meta_labels = labels_of({1, 1, 0, 2, 0, 2});
  const double learning_rate = 0.1;
  const Tensor buffers_before = learner.model().buffers.clone();

  const MetaGradientResult result =
      learner.meta_gradient(images, labels, learning_rate, meta_images, meta_labels);
  ASSERT_TRUE(result.computed);
  const Tensor meta_gradient = learner.generator_buffers().gradients.clone();
  EXPECT_EQ(learner.model().buffers.to_vector<double>(), buffers_before.to_vector<double>())
      << "meta_gradient updated running statistics";
  EXPECT_NEAR(learner.meta_objective(images, labels, learning_rate, meta_images, meta_labels),
              result.meta_loss, 1e-12);

  // Central differences of F over φ entries from every generator tensor (first, middle and
  // last element of each slot), each F by the learner's own forward, backward, virtual step and
  // meta loss. Entries are compared relative to the largest meta-gradient entry.
  Tensor& phi = learner.generator_buffers().parameters;
  const nn::FlatLayout& layout = learner.generator().layout().parameters;
  double largest = 0.0;
  for (const double value : meta_gradient.to_vector<double>()) largest = std::max(largest, std::abs(value));
  ASSERT_GT(largest, 0.0);
  constexpr double kStep = 1e-5;
  double worst = 0.0;
  int checked = 0;
  for (const nn::TensorSlot& slot : layout.slots()) {
    const std::int64_t count = shape_numel(slot.shape);
    for (const std::int64_t local : {std::int64_t{0}, count / 2, count - 1}) {
      const std::int64_t index = slot.offset + local;
      const double original = element(phi, index);
      set_element(phi, index, original + kStep);
      const double plus = learner.meta_objective(images, labels, learning_rate, meta_images, meta_labels);
      set_element(phi, index, original - kStep);
      const double minus = learner.meta_objective(images, labels, learning_rate, meta_images, meta_labels);
      set_element(phi, index, original);
      const double numeric = (plus - minus) / (2.0 * kStep);
      const double analytic = element(meta_gradient, index);
      const double error = std::abs(analytic - numeric) / std::max(std::abs(numeric), 1e-2 * largest);
      worst = std::max(worst, error);
      ++checked;
      EXPECT_LT(error, 1e-5) << slot.name << "[" << local << "]: finite-difference meta-gradient "
                             << analytic << ", dF/dφ numerically " << numeric;
    }
  }
  std::printf("meta-gradient vs numerical dF/dphi: %d entries, worst relative error %.3e (max |grad| %.3e)\n",
              checked, worst, largest);
}

}  // namespace
}  // namespace md::train
