// The MetaDistiller meta-gradient (DESIGN.md §1, §8), in float64 on the CPU:
// - against PyTorch's exact second-order gradient through the virtual step, on the tiny student
//   and generator of tests/reference/make_meta_fixture.py rebuilt here from nn modules, computed
//   by train::finite_difference_meta_gradient (the routine Learner::step uses); and the same with
//   the real label generator (models::LabelGenerator) at both resolutions;
// - the forward-difference variant: first-order accurate (its error falls with ε);
// - the θ± forwards of the shallow heads only (the backbone cut after the last auxiliary head's
//   stage) give bit for bit the meta-gradient of full forwards whose final head is dropped, on
//   real learners of three architectures, in float32 (the CPU backend's fast paths);
// - against central differences of the whole bilevel objective F(φ) = L_meta(θ − η·∇θL(θ; φ))
//   on a real Learner (resnet20 student with auxiliary heads and the label generator), where
//   each F is evaluated by the learner's own passes (the default generator; central and
//   forward differences).
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <memory>
#include <ostream>
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
      : conv1(layout, "conv1",
              {.in_channels = channels, .out_channels = 4, .kernel = 3, .params = {.padding = 1}}),
        bn1(layout, "bn1", 4),
        conv2(layout, "conv2",
              {.in_channels = 4,
               .out_channels = 6,
               .kernel = 3,
               .params = {.stride = 2, .padding = 1}}),
        head0(layout, "head0", {.in_features = 4, .out_features = classes}),
        head1(layout, "head1", {.in_features = 6, .out_features = classes}) {}

  // x: (N, C, H, W); pooled: per stage (N, C_s); stage_maps (when given): per stage
  // (N, C_s, H_s, W_s)
  std::vector<Variable> forward(const nn::ForwardContext& context, const Variable& x,
                                std::vector<Variable>& pooled,
                                std::vector<Variable>* stage_maps = nullptr) const {
    const Variable stage0 = autograd::relu(bn1.forward(context, conv1.forward(context, x)));
    const Variable stage1 = autograd::relu(conv2.forward(context, stage0));
    pooled = {autograd::global_avg_pool(stage0), autograd::global_avg_pool(stage1)};
    if (stage_maps != nullptr) *stage_maps = {stage0, stage1};
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

  std::vector<Variable> forward(const nn::ForwardContext& context,
                                const std::vector<Variable>& pooled) const {
    const Variable fused = autograd::relu(
        autograd::add(lat0.forward(context, pooled[0]), lat1.forward(context, pooled[1])));
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

// The generator of each fixture of make_meta_fixture.py: the tiny one on pooled features, or
// models::LabelGenerator on the stage maps at either resolution.
enum class FixtureGenerator { Tiny, PyramidStage, PyramidDeepest };

const char* fixture_name(FixtureGenerator generator) {
  switch (generator) {
    case FixtureGenerator::Tiny:
      return "meta_gradient";
    case FixtureGenerator::PyramidStage:
      return "meta_gradient_pyramid_stage";
    case FixtureGenerator::PyramidDeepest:
      return "meta_gradient_pyramid_deepest";
  }
  return "";
}

// Runs train::finite_difference_meta_gradient on the fixture's problem with ε₀ = the fixture's
// times `epsilon_scale`, checks the meta-gradient against PyTorch's exact one (relative norm
// error below `tolerance` overall and 10·tolerance per generator tensor) and that θ, g and the
// running statistics stay untouched; returns the overall relative error.
// One call of the student's logits by the meta-gradient routine: which heads, and the runtime
// precision it ran under.
struct StudentCall {
  models::StudentHeads heads;
  backend::MathPrecision precision;
};

double fixture_meta_gradient_error(FixtureGenerator kind, FiniteDifference difference,
                                   double epsilon_scale, double tolerance,
                                   std::vector<StudentCall>* calls = nullptr) {
  const test::Fixture fixture = test::Fixture::load(fixture_name(kind));
  Backend& backend = backend::get(Device::cpu());
  Collective single_rank;
  const int channels = static_cast<int>(fixture.get("images").dim(1));
  const int classes = static_cast<int>(fixture.get("theta.head0.weight").dim(0));
  const TinyStudent student(channels, classes);
  std::unique_ptr<TinyGenerator> tiny;
  std::unique_ptr<models::LabelGenerator> pyramid;
  if (kind == FixtureGenerator::Tiny) {
    tiny = std::make_unique<TinyGenerator>(
        static_cast<int>(fixture.get("phi.gen.fc.weight").dim(1)), classes);
  } else {
    pyramid = std::make_unique<models::LabelGenerator>(models::LabelGeneratorSpec{
        .stage_channels = {4, 6},
        .width = static_cast<int>(fixture.get("phi.gen.fc.0.weight").dim(1)),
        .num_classes = classes,
        .resize = ResizeMode::Nearest,
        .resolution = kind == FixtureGenerator::PyramidStage
                          ? models::GeneratorResolution::Stage
                          : models::GeneratorResolution::Deepest});
  }
  const nn::ModelLayout& generator_layout = tiny ? tiny->layout : pyramid->layout();
  Rng rng(0, 0);
  nn::ModelBuffers theta =
      nn::ModelBuffers::allocate(student.layout, DType::Float64, Device::cpu());
  theta.initialize(student.layout, rng);
  load_slots(student.layout.parameters, theta.parameters, fixture, "theta.");
  nn::ModelBuffers phi =
      nn::ModelBuffers::allocate(generator_layout, DType::Float64, Device::cpu());
  phi.initialize(generator_layout, rng);
  load_slots(generator_layout.parameters, phi.parameters, fixture, "phi.");
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
  models::StudentOutput output;
  {
    autograd::TapeScope scope(tape);
    const nn::ForwardContext context{&student.layout, theta.parameters, theta.gradients,
                                     theta.buffers,   nn::Mode::Train,  RunningStatsUpdate::Skip};
    std::vector<Variable> pooled, stage_maps;
    output.logits = student.forward(context, Variable(images), pooled, &stage_maps);
    output.head_features = pooled;
    {
      autograd::TapeScope generator_scope(generator_tape);
      const nn::ForwardContext generator_context{&generator_layout, phi.parameters,
                                                 phi.gradients,     phi.buffers,
                                                 nn::Mode::Train,   RunningStatsUpdate::Skip};
      targets = tiny ? tiny->forward(generator_context, {pooled[0].detach(), pooled[1].detach()})
                     : pyramid->forward(generator_context,
                                        {stage_maps[0].detach(), stage_maps[1].detach()});
    }
    terms = student_loss(loss, output, fixture.get("labels"), {targets[0].detach()});
  }
  tape.backward(terms.total);
  EXPECT_NEAR(terms.total.value().item(), fixture.get("student_loss").item(), 1e-12);
  for (std::size_t i = 0; i < student.layout.parameters.slots().size(); ++i) {
    const std::string& name = student.layout.parameters.slots()[i].name;
    EXPECT_LT(test::relative_norm_error(
                  student.layout.parameters.view(theta.gradients, static_cast<int>(i)),
                  fixture.get("grad_theta." + name)),
              1e-12)
        << "∇θ L of " << name;
  }

  const StudentLogits student_logits = [&](const Tensor& parameters, const Tensor& gradients,
                                           const Tensor& batch, models::StudentHeads heads) {
    if (calls != nullptr) calls->push_back({heads, backend::compute_options().precision});
    const nn::ForwardContext context{&student.layout, parameters,      gradients,
                                     theta.buffers,   nn::Mode::Train, RunningStatsUpdate::Skip};
    std::vector<Variable> pooled;
    std::vector<Variable> logits = student.forward(context, Variable(batch), pooled);
    if (heads == models::StudentHeads::Auxiliary) logits.pop_back();
    return logits;
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
                                  .epsilon = epsilon_scale * fixture.get("epsilon").item(),
                                  .difference = difference,
                                  .logits_at_parameters = output.logits};
  const MetaGradientResult result =
      finite_difference_meta_gradient(backend, single_rank, student_logits, inputs, scratch);
  EXPECT_TRUE(result.computed);
  EXPECT_NEAR(result.meta_loss, fixture.get("meta_loss").item(), 1e-12);
  EXPECT_NEAR(result.v_norm, fixture.get("v_norm").item(), 1e-12 * result.v_norm);

  // The whole meta-gradient ∇φ, and each generator tensor.
  Tensor exact = Tensor::zeros(phi.gradients.shape(), DType::Float64);  // zero padding
  load_slots(generator_layout.parameters, exact, fixture, "meta_gradient.");
  const double error = test::relative_norm_error(phi.gradients, exact);
  std::printf(
      "%s: %s difference (eps0 %.1e) vs exact meta-gradient: relative error %.3e (PyTorch's "
      "central "
      "%.3e)\n",
      fixture_name(kind), difference == FiniteDifference::Central ? "central" : "forward",
      inputs.epsilon, error, fixture.get("torch_fd_relative_error").item());
  EXPECT_LT(error, tolerance);
  for (std::size_t i = 0; i < generator_layout.parameters.slots().size(); ++i) {
    const std::string& name = generator_layout.parameters.slots()[i].name;
    EXPECT_LT(test::relative_norm_error(
                  generator_layout.parameters.view(phi.gradients, static_cast<int>(i)),
                  fixture.get("meta_gradient." + name)),
              10.0 * tolerance)
        << name;
  }
  // The routine leaves θ, g and the running statistics alone.
  EXPECT_EQ(theta.parameters.to_vector<double>(), parameters_before.to_vector<double>());
  EXPECT_EQ(theta.gradients.to_vector<double>(), gradients_before.to_vector<double>());
  EXPECT_EQ(theta.buffers.to_vector<double>(), buffers_before.to_vector<double>());
  return error;
}

TEST(MetaGradient, FiniteDifferenceMatchesPyTorchExactSecondOrder) {
  const double error =
      fixture_meta_gradient_error(FixtureGenerator::Tiny, FiniteDifference::Central, 1.0, 1e-7);
  RecordProperty("relative_error", std::to_string(error));
}

// The same with the real label generator on the stage maps, at both resolutions.
TEST(MetaGradient, LabelGeneratorMatchesPyTorchExactSecondOrder) {
  fixture_meta_gradient_error(FixtureGenerator::PyramidStage, FiniteDifference::Central, 1.0, 1e-7);
  fixture_meta_gradient_error(FixtureGenerator::PyramidDeepest, FiniteDifference::Central, 1.0,
                              1e-7);
}

// The forward difference reuses z(θ): one student forward fewer, an O(ε) error instead of
// O(ε²). Its error must shrink about tenfold when ε does, and exceed the central one.
TEST(MetaGradient, ForwardDifferenceIsFirstOrderAccurate) {
  const FixtureGenerator kind = FixtureGenerator::PyramidDeepest;
  const double central = fixture_meta_gradient_error(kind, FiniteDifference::Central, 1.0, 1e-7);
  const double coarse = fixture_meta_gradient_error(kind, FiniteDifference::Forward, 1.0, 1e-2);
  const double fine = fixture_meta_gradient_error(kind, FiniteDifference::Forward, 0.1, 1e-3);
  EXPECT_GT(coarse, 100.0 * central);
  EXPECT_GT(coarse / fine, 5.0);
  EXPECT_LT(coarse / fine, 20.0);
}

// Under a reduced runtime precision the θ± forwards run in float32 arithmetic: ε·v moves most
// weights by less than a bfloat16 step, so differencing bf16 forwards would difference rounding
// noise. The virtual step's forward keeps the runtime precision; a forward difference also
// recomputes the logits at θ in float32 (the step's came from bf16 arithmetic). Float64 values
// are never rounded, so the fixture's tolerance holds under bf16 too.
TEST(MetaGradient, ReducedPrecisionRunsTheDifferencedForwardsInFloat32) {
  const backend::PrecisionScope bf16(backend::MathPrecision::Bf16);
  for (FiniteDifference difference : {FiniteDifference::Central, FiniteDifference::Forward}) {
    std::vector<StudentCall> calls;
    fixture_meta_gradient_error(FixtureGenerator::PyramidDeepest, difference, 1.0,
                                difference == FiniteDifference::Central ? 1e-7 : 1e-2, &calls);
    ASSERT_EQ(calls.size(), 3u) << "the virtual step's forward and two differenced forwards";
    EXPECT_EQ(calls[0].precision, backend::MathPrecision::Bf16) << "the virtual step's forward";
    for (std::size_t i = 1; i < calls.size(); ++i) {
      EXPECT_EQ(calls[i].heads, models::StudentHeads::Auxiliary);
      EXPECT_EQ(calls[i].precision, backend::MathPrecision::Fp32) << "differenced forward " << i;
    }
  }
  EXPECT_EQ(backend::compute_options().precision, backend::MathPrecision::Bf16);
}

// A resnet20 student with auxiliary heads and the label generator, all in float64; the meta-
// gradient alone (no label anchor: test_generator_objective.cpp checks that term).
LearnerSpec tiny_learner_spec(models::GeneratorResolution resolution, FiniteDifference difference) {
  LearnerSpec spec;
  spec.model = models::ModelSpec{.arch = "resnet20", .num_classes = 3, .in_channels = 1};
  spec.loss = LossSpec{.method = MethodKind::MetaDistiller, .temperature = 3.0, .alpha = 0.5};
  spec.sgd = SgdParams{.learning_rate = 0.1, .momentum = 0.9, .weight_decay = 5e-4};
  spec.meta = MetaSpec{.every = 1,
                       .epsilon = 1e-5,
                       .optimizer = GeneratorOptimizer::Adam,
                       .learning_rate = 1e-3,
                       .generator_width = 6,
                       .generator_resolution = resolution,
                       .difference = difference,
                       .label_weight = 0.0};
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

// `tolerance`: on each entry's error relative to max(|numeric|, 1% of the largest entry).
void check_against_bilevel_objective(models::GeneratorResolution resolution,
                                     FiniteDifference difference, double tolerance,
                                     bool kd_temperature_squared = true) {
  Collective single_rank;
  LearnerSpec spec = tiny_learner_spec(resolution, difference);
  spec.loss.kd_temperature_squared = kd_temperature_squared;
  Learner learner(spec, single_rank);
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
  for (const double value : meta_gradient.to_vector<double>())
    largest = std::max(largest, std::abs(value));
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
      const double plus =
          learner.meta_objective(images, labels, learning_rate, meta_images, meta_labels);
      set_element(phi, index, original - kStep);
      const double minus =
          learner.meta_objective(images, labels, learning_rate, meta_images, meta_labels);
      set_element(phi, index, original);
      const double numeric = (plus - minus) / (2.0 * kStep);
      const double analytic = element(meta_gradient, index);
      const double error =
          std::abs(analytic - numeric) / std::max(std::abs(numeric), 1e-2 * largest);
      worst = std::max(worst, error);
      ++checked;
      EXPECT_LT(error, tolerance) << slot.name << "[" << local
                                  << "]: finite-difference meta-gradient " << analytic
                                  << ", dF/dφ numerically " << numeric;
    }
  }
  std::printf(
      "meta-gradient vs numerical dF/dphi: %d entries, worst relative error %.3e (max |grad| "
      "%.3e)\n",
      checked, worst, largest);
}

// ---- the θ± forwards stop after the last auxiliary head's stage

struct TruncationCase {
  const char* arch;
  FiniteDifference difference;
};

void PrintTo(const TruncationCase& truncation_case, std::ostream* out) {
  *out << truncation_case.arch
       << (truncation_case.difference == FiniteDifference::Central ? " central" : " forward");
}

std::string truncation_case_name(const testing::TestParamInfo<TruncationCase>& case_info) {
  return std::string(case_info.param.arch) +
         (case_info.param.difference == FiniteDifference::Central ? "_central" : "_forward");
}

class ShallowHeadForwards : public testing::TestWithParam<TruncationCase> {};

// The learner's meta-gradient (θ± forwards of the shallow heads only) against the same routine
// fed full forwards, whose final head is dropped: ∂L/∂u_s reads head s < S only, and a stage's
// features do not depend on the stages after it, so the two must agree bit for bit.
TEST_P(ShallowHeadForwards, GiveTheMetaGradientOfFullForwardsBitForBit) {
  const TruncationCase& param = GetParam();
  LearnerSpec spec = tiny_learner_spec(models::GeneratorResolution::Deepest, param.difference);
  spec.model.arch = param.arch;
  spec.dtype = DType::Float32;
  spec.meta.epsilon = 1e-2;
  Collective single_rank;
  Learner learner(spec, single_rank);
  const Tensor images = test::random_tensor({6, 1, 8, 8}, 21, -1.0, 1.0, DType::Float32);
  const Tensor labels = labels_of({0, 1, 2, 2, 1, 0});
  const Tensor meta_images = test::random_tensor({6, 1, 8, 8}, 22, -1.0, 1.0, DType::Float32);
  const Tensor meta_labels = labels_of({1, 1, 0, 2, 0, 2});
  const double learning_rate = 0.1;
  const MetaGradientResult truncated =
      learner.meta_gradient(images, labels, learning_rate, meta_images, meta_labels);
  ASSERT_TRUE(truncated.computed);
  const std::vector<float> truncated_gradient =
      learner.generator_buffers().gradients.to_vector<float>();
  const std::vector<float> student_gradient = learner.model().gradients.to_vector<float>();

  // The learner's passes by hand: the student and G at θ, L(θ; φ) and g = ∇θ L.
  Backend& backend = backend::get(Device::cpu());
  const models::Student& student = learner.student();
  nn::ModelBuffers& model = learner.model();
  nn::ModelBuffers& generator = learner.generator_buffers();
  backend.fill(model.gradients, 0.0);
  autograd::Tape tape, generator_tape;
  models::StudentOutput output;
  std::vector<Variable> targets;
  LossTerms terms;
  {
    autograd::TapeScope scope(tape);
    const nn::ForwardContext context{&student.layout(), model.parameters, model.gradients,
                                     model.buffers,     nn::Mode::Train,  RunningStatsUpdate::Skip};
    output = student.forward(context, Variable(images));
    std::vector<Variable> stage_features, teachers;
    for (const Variable& feature : output.stage_features)
      stage_features.push_back(feature.detach());
    {
      autograd::TapeScope generator_scope(generator_tape);
      const nn::ForwardContext generator_context{&learner.generator().layout(),
                                                 generator.parameters,
                                                 generator.gradients,
                                                 generator.buffers,
                                                 nn::Mode::Train,
                                                 RunningStatsUpdate::Skip};
      targets = learner.generator().forward(generator_context, stage_features);
    }
    for (const Variable& target : targets) teachers.push_back(target.detach());
    terms = student_loss(spec.loss, output, labels, teachers);
  }
  tape.backward(terms.total);
  ASSERT_EQ(model.gradients.to_vector<float>(), student_gradient);

  const StudentLogits full_forwards = [&](const Tensor& parameters, const Tensor& gradients,
                                          const Tensor& batch, models::StudentHeads heads) {
    const nn::ForwardContext context{&student.layout(), parameters,      gradients,
                                     model.buffers,     nn::Mode::Train, RunningStatsUpdate::Skip};
    std::vector<Variable> logits = student.forward(context, Variable(batch)).logits;
    if (heads == models::StudentHeads::Auxiliary) logits.pop_back();
    return logits;
  };
  MetaScratch scratch{.virtual_parameters = Tensor::empty(model.parameters.shape(), DType::Float32),
                      .meta_gradients = Tensor::empty(model.parameters.shape(), DType::Float32)};
  backend.fill(generator.gradients, 0.0);
  const MetaGradientInputs inputs{.parameters = model.parameters,
                                  .gradients = model.gradients,
                                  .learning_rate = learning_rate,
                                  .images = images,
                                  .meta_images = meta_images,
                                  .meta_labels = meta_labels,
                                  .targets = targets,
                                  .generator_tape = &generator_tape,
                                  .alpha = spec.loss.alpha,
                                  .temperature = spec.loss.temperature,
                                  .epsilon = spec.meta.epsilon,
                                  .difference = param.difference,
                                  .logits_at_parameters = output.logits};
  const MetaGradientResult full =
      finite_difference_meta_gradient(backend, single_rank, full_forwards, inputs, scratch);
  ASSERT_TRUE(full.computed);
  EXPECT_EQ(full.meta_loss, truncated.meta_loss);
  EXPECT_EQ(full.v_norm, truncated.v_norm);
  const std::vector<float> full_gradient = generator.gradients.to_vector<float>();
  EXPECT_EQ(full_gradient, truncated_gradient);
  double norm = 0.0;
  for (const float value : full_gradient) norm += static_cast<double>(value) * value;
  EXPECT_GT(norm, 0.0);
}

INSTANTIATE_TEST_SUITE_P(Learners, ShallowHeadForwards,
                         testing::Values(TruncationCase{"resnet20", FiniteDifference::Central},
                                         TruncationCase{"resnet20", FiniteDifference::Forward},
                                         TruncationCase{"resnet18_cifar",
                                                        FiniteDifference::Central},
                                         TruncationCase{"wrn_16_2", FiniteDifference::Central},
                                         TruncationCase{"wrn_16_2", FiniteDifference::Forward}),
                         truncation_case_name);

// The default generator: fusion and smoothing on the deepest stage's grid.
TEST(MetaGradient, MatchesNumericalDerivativeOfBilevelObjective) {
  check_against_bilevel_objective(models::GeneratorResolution::Deepest, FiniteDifference::Central,
                                  1e-5);
}

// method.kd_temperature_squared: false (the KD term without T²): the meta-gradient follows.
TEST(MetaGradient, MatchesNumericalDerivativeWithoutTemperatureSquared) {
  check_against_bilevel_objective(models::GeneratorResolution::Deepest, FiniteDifference::Central,
                                  1e-5, /*kd_temperature_squared=*/false);
}

// The learner's forward difference (z(θ) from its own student pass): first order, so looser.
TEST(MetaGradient, ForwardDifferenceMatchesNumericalDerivativeOfBilevelObjective) {
  check_against_bilevel_objective(models::GeneratorResolution::Deepest, FiniteDifference::Forward,
                                  1e-3);
}

}  // namespace
}  // namespace md::train
