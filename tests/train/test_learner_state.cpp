// What one Learner step may change. A MetaDistiller step with a meta step must leave the
// student exactly as the same step without one: parameters θ − SGD(∇θ L), BN running
// statistics as after ONE real forward (the virtual passes θ', θ± update none), the same
// momentum and gradients; only the generator moves, and the meta batch is drawn once.
// Also: BYOT and baseline steps touch no generator, and every method's loss goes down on a
// fixed batch. Pass timing (StepReport::times) accounts for the whole step. Captured steps
// (StepCapture::Graph) equal eager ones.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

#include "autograd/functions.h"
#include "backend/backend.h"
#include "core/error.h"
#include "support/gradcheck.h"
#include "train/learner.h"

namespace md::train {
namespace {

LearnerSpec small_spec(MethodKind method, DType dtype) {
  LearnerSpec spec;
  spec.model = models::ModelSpec{.arch = "resnet20", .num_classes = 4, .in_channels = 1};
  spec.loss = LossSpec{.method = method, .temperature = 3.0, .alpha = 0.3, .hint = 0.1};
  spec.sgd = SgdParams{.learning_rate = 0.05, .momentum = 0.9, .weight_decay = 5e-4};
  spec.meta = MetaSpec{.every = 2,
                       .epsilon = 0.01,
                       .optimizer = GeneratorOptimizer::Adam,
                       .learning_rate = 1e-3,
                       .generator_width = 8};
  spec.seed = 5;
  spec.device = Device::cpu();
  spec.dtype = dtype;
  return spec;
}

struct Batch {
  Tensor images;  // (8, 1, 12, 12)
  Tensor labels;  // (8)
};

Batch make_batch(std::uint64_t seed, DType dtype) {
  Batch batch;
  batch.images = test::random_tensor({8, 1, 12, 12}, seed, -1.0, 1.0, dtype);
  batch.labels = Tensor::from_vector<std::int32_t>({8}, {0, 1, 2, 3, 3, 2, 1, 0});
  return batch;
}

std::vector<float> values(const Tensor& tensor) {
  return tensor.to_vector<float>();
}

TEST(LearnerState, MetaStepLeavesStudentAsPlainStep) {
  Collective single_rank;
  Learner with_meta(small_spec(MethodKind::MetaDistiller, DType::Float32), single_rank);
  Learner without_meta(small_spec(MethodKind::MetaDistiller, DType::Float32), single_rank);
  with_meta.set_steps(0);     // 0 % every == 0: a meta step is due
  without_meta.set_steps(1);  // 1 % 2 != 0: none
  const Batch batch = make_batch(21, DType::Float32);
  const Batch meta = make_batch(22, DType::Float32);
  ASSERT_EQ(values(with_meta.model().parameters), values(without_meta.model().parameters));
  const std::vector<float> theta = values(with_meta.model().parameters);
  const std::vector<float> generator_before = values(with_meta.generator_buffers().parameters);
  const std::vector<float> buffers_before = values(with_meta.model().buffers);

  // The running statistics after ONE real forward from the same state, computed directly.
  nn::ModelBuffers reference =
      nn::ModelBuffers::allocate(with_meta.student().layout(), DType::Float32, Device::cpu());
  reference.parameters.copy_from(with_meta.model().parameters);
  reference.buffers.copy_from(with_meta.model().buffers);
  {
    autograd::NoGrad no_grad;
    const nn::ForwardContext context{&with_meta.student().layout(),
                                     reference.parameters,
                                     Tensor(),
                                     reference.buffers,
                                     nn::Mode::Train,
                                     RunningStatsUpdate::Update};
    with_meta.student().forward(context, autograd::Variable(batch.images));
  }

  int meta_draws = 0, plain_draws = 0;
  const StepReport meta_report = with_meta.step(batch.images, batch.labels, 0.05, [&] {
    ++meta_draws;
    return std::make_pair(meta.images, meta.labels);
  });
  const StepReport plain_report = without_meta.step(batch.images, batch.labels, 0.05, [&] {
    ++plain_draws;
    return std::make_pair(meta.images, meta.labels);
  });
  ASSERT_TRUE(meta_report.meta_step);
  ASSERT_TRUE(std::isfinite(meta_report.meta_loss) && meta_report.v_norm > 0.0);
  EXPECT_GT(meta_report.generator_grad_norm, 0.0);
  EXPECT_FALSE(plain_report.meta_step);
  EXPECT_EQ(meta_draws, 1);
  EXPECT_EQ(plain_draws, 0);
  EXPECT_EQ(meta_report.loss.item(), plain_report.loss.item());

  // Bit for bit: θ, ∇θ L, momentum and running statistics.
  EXPECT_EQ(values(with_meta.model().parameters), values(without_meta.model().parameters));
  EXPECT_EQ(values(with_meta.model().gradients), values(without_meta.model().gradients));
  EXPECT_EQ(values(with_meta.optimizer().momentum_buffer()),
            values(without_meta.optimizer().momentum_buffer()));
  EXPECT_EQ(values(with_meta.model().buffers), values(reference.buffers));
  EXPECT_EQ(values(without_meta.model().buffers), values(reference.buffers));
  EXPECT_NE(values(with_meta.model().buffers), buffers_before);

  // θ after = θ − lr·(g + wd·θ) (the first SGD step: momentum buffer = g + wd·θ).
  const std::vector<float> gradient = values(with_meta.model().gradients);
  const std::vector<float> after = values(with_meta.model().parameters);
  double worst = 0.0;
  for (std::size_t i = 0; i < theta.size(); ++i) {
    const double expected = theta[i] - 0.05 * (static_cast<double>(gradient[i]) + 5e-4 * theta[i]);
    worst = std::max(worst, std::abs(after[i] - expected) / std::max(1e-3, std::abs(expected)));
  }
  EXPECT_LT(worst, 1e-5);
  EXPECT_NE(after, theta);

  // Only the generator moved, and only in the learner that took the meta step.
  EXPECT_NE(values(with_meta.generator_buffers().parameters), generator_before);
  EXPECT_EQ(values(without_meta.generator_buffers().parameters), generator_before);
  EXPECT_EQ(with_meta.steps(), 1);
}

// The auxiliary heads' CE and KD terms train the backbone too: from the same initial backbone
// (aux slots come after the backbone's), a BYOT step's backbone gradient differs from a
// baseline step's, while the final head's own parameters see the same CE gradient.
TEST(LearnerState, AuxiliaryLossesReachTheBackbone) {
  Collective single_rank;
  Learner baseline(small_spec(MethodKind::Baseline, DType::Float32), single_rank);
  Learner byot(small_spec(MethodKind::Byot, DType::Float32), single_rank);
  const std::int64_t backbone = baseline.student().backbone_parameter_count();
  ASSERT_EQ(byot.student().backbone_parameter_count(), backbone);
  ASSERT_EQ(baseline.model().parameters.numel(), backbone);
  ASSERT_GT(byot.model().parameters.numel(), backbone);
  const auto prefix = [&](const Tensor& flat) { return values(flat.slice_flat(0, {backbone})); };
  ASSERT_EQ(prefix(baseline.model().parameters), prefix(byot.model().parameters));
  const Batch batch = make_batch(60, DType::Float32);
  const auto no_meta = [&] { return std::make_pair(batch.images, batch.labels); };
  baseline.step(batch.images, batch.labels, 0.05, no_meta);
  byot.step(batch.images, batch.labels, 0.05, no_meta);
  const std::vector<float> baseline_gradient = prefix(baseline.model().gradients);
  const std::vector<float> byot_gradient = prefix(byot.model().gradients);
  // The first convolution (conv1.weight, slot 0) is below every auxiliary head.
  const nn::TensorSlot& conv1 = baseline.student().layout().parameters.slot(0);
  double difference = 0.0, norm = 0.0;
  for (std::int64_t i = conv1.offset; i < conv1.offset + shape_numel(conv1.shape); ++i) {
    const auto index = static_cast<std::size_t>(i);
    difference += std::abs(byot_gradient[index] - baseline_gradient[index]);
    norm += std::abs(baseline_gradient[index]);
  }
  EXPECT_GT(difference, 1e-3 * norm) << "the auxiliary losses do not reach " << conv1.name;
  // fc (the final head, the last backbone slots) gets only the final CE in both methods.
  const int fc = baseline.student().layout().parameters.find("fc.weight");
  ASSERT_GE(fc, 0);
  const nn::TensorSlot& fc_slot = baseline.student().layout().parameters.slot(fc);
  for (std::int64_t i = fc_slot.offset; i < fc_slot.offset + shape_numel(fc_slot.shape); ++i) {
    const auto index = static_cast<std::size_t>(i);
    EXPECT_NEAR(byot_gradient[index], baseline_gradient[index], 1e-5)
        << "fc.weight[" << i - fc_slot.offset << "]";
  }
}

TEST(LearnerState, RunningStatisticsMoveByOneForwardPerStep) {
  Collective single_rank;
  Learner learner(small_spec(MethodKind::MetaDistiller, DType::Float32), single_rank);
  const int tracked = learner.student().layout().buffers.find("bn1.num_batches_tracked");
  ASSERT_GE(tracked, 0);
  const Batch meta = make_batch(32, DType::Float32);
  for (int step = 0; step < 3; ++step) {
    const Batch batch = make_batch(40 + static_cast<std::uint64_t>(step), DType::Float32);
    learner.step(batch.images, batch.labels, 0.05,
                 [&] { return std::make_pair(meta.images, meta.labels); });
    EXPECT_EQ(learner.student().layout().buffers.view(learner.model().buffers, tracked).item(),
              step + 1.0);
  }
}

TEST(LearnerState, EveryMethodDecreasesTheLossOnAFixedBatch) {
  Collective single_rank;
  for (const MethodKind method :
       {MethodKind::Baseline, MethodKind::Byot, MethodKind::MetaDistiller}) {
    LearnerSpec spec = small_spec(method, DType::Float32);
    spec.meta.every = 1;
    Learner learner(spec, single_rank);
    EXPECT_EQ(learner.has_generator(), method == MethodKind::MetaDistiller);
    EXPECT_EQ(learner.student().num_heads(), method == MethodKind::Baseline ? 1 : 3);
    const Batch batch = make_batch(50, DType::Float32);
    double first = NAN, last = NAN;
    for (int step = 0; step < 8; ++step) {
      const StepReport report = learner.step(batch.images, batch.labels, 0.05, [&] {
        return std::make_pair(batch.images, batch.labels);
      });
      EXPECT_EQ(report.meta_step, method == MethodKind::MetaDistiller);
      (step == 0 ? first : last) = report.loss.item();
    }
    EXPECT_LT(last, 0.8 * first) << "method " << static_cast<int>(method);
  }
}

// Pass timing: off by default (all zero); on, a meta step times every pass, the passes sum to
// the step, and a step without a meta step times only the student's passes and the update.
TEST(LearnerState, PassTimingCoversEveryPassOfTheStep) {
  Collective single_rank;
  Learner learner(small_spec(MethodKind::MetaDistiller, DType::Float32), single_rank);
  const Batch batch = make_batch(41, DType::Float32);
  const Batch meta = make_batch(42, DType::Float32);
  const auto meta_source = [&] { return std::make_pair(meta.images, meta.labels); };
  const StepReport untimed = learner.step(batch.images, batch.labels, 0.05, meta_source);
  ASSERT_TRUE(untimed.meta_step);
  EXPECT_EQ(untimed.times.total, 0.0);
  for (const auto& [name, seconds] : untimed.times.passes()) EXPECT_EQ(seconds, 0.0) << name;

  learner.set_pass_timing(PassTiming::WallClock);
  const StepReport plain =
      learner.step(batch.images, batch.labels, 0.05, meta_source);  // every = 2
  ASSERT_FALSE(plain.meta_step);
  EXPECT_GT(plain.times.student_forward, 0.0);
  EXPECT_GT(plain.times.generator_forward, 0.0);
  EXPECT_GT(plain.times.student_backward, 0.0);
  EXPECT_EQ(plain.times.meta_forward, 0.0);
  EXPECT_EQ(plain.times.perturbed_forwards, 0.0);

  learner.set_pass_timing(PassTiming::ProcessCpuClock);
  const StepReport timed = learner.step(batch.images, batch.labels, 0.05, meta_source);
  ASSERT_TRUE(timed.meta_step);
  double sum = 0.0;
  for (const auto& [name, seconds] : timed.times.passes()) {
    if (name == std::string("graph_replay")) {
      EXPECT_EQ(seconds, 0.0) << "an eager step replayed a graph";
    } else {
      EXPECT_GT(seconds, 0.0) << name;
    }
    sum += seconds;
  }
  EXPECT_NEAR(sum, timed.times.total, 1e-9 * std::max(1.0, timed.times.total));
}

// ---- StepCapture::Graph (runtime.cuda_graph) against eager steps. On the CPU a replay runs the
// recorded work again: the same losses, parameters, gradients, momentum and running statistics
// bit for bit over steps with changing batches and learning rates; a batch of another shape
// runs eagerly in between; a report keeps its values after later replays; MetaDistiller steps
// run eagerly. (tests/gpu checks the CUDA graphs and their memory pool.)

// An architecture models/ does not know is an InputError naming the config key.
TEST(LearnerErrors, UnknownArchitectureNamesTheKey) {
  Collective single_rank;
  LearnerSpec spec = small_spec(MethodKind::Byot, DType::Float32);
  spec.model.arch = "resnet19";
  try {
    Learner learner(spec, single_rank);
    FAIL() << "no exception";
  } catch (const InputError& error) {
    EXPECT_EQ(std::string(error.what()).rfind("model.arch: unknown architecture 'resnet19'", 0), 0u)
        << error.what();
  }
}

LearnerSpec captured_spec(MethodKind method, StepCapture capture) {
  LearnerSpec spec = small_spec(method, DType::Float32);
  spec.capture = capture;
  return spec;
}

Batch batch_of(std::int64_t size, std::uint64_t seed) {
  std::vector<std::int32_t> labels;
  for (std::int64_t i = 0; i < size; ++i)
    labels.push_back(static_cast<std::int32_t>((i + seed) % 4));
  return {test::random_tensor({size, 1, 12, 12}, seed, -1.0, 1.0, DType::Float32),
          Tensor::from_vector<std::int32_t>({size}, labels)};
}

void expect_same(const Tensor& a, const Tensor& b, const std::string& what) {
  EXPECT_EQ(values(a), values(b)) << what;
}

// Steps of 8 images but one of 6 (eager in between), learning rates changing every step.
void expect_graph_equals_eager(MethodKind method) {
  Collective single_rank;
  Learner eager(captured_spec(method, StepCapture::Eager), single_rank);
  Learner graph(captured_spec(method, StepCapture::Graph), single_rank);
  const auto no_meta = [] { return std::pair<Tensor, Tensor>(); };
  StepReport first_graph_report;
  double first_eager_loss = 0.0;
  const std::int64_t sizes[] = {8, 8, 8, 6, 8, 8};
  for (int step = 0; step < 6; ++step) {
    const Batch batch = batch_of(sizes[step], 100 + static_cast<std::uint64_t>(step));
    const double learning_rate = 0.05 - 0.005 * step;
    const StepReport e = eager.step(batch.images, batch.labels, learning_rate, no_meta);
    const StepReport g = graph.step(batch.images, batch.labels, learning_rate, no_meta);
    const std::string at = "step " + std::to_string(step);
    EXPECT_EQ(g.loss.item(), e.loss.item()) << at;
    EXPECT_EQ(LossTerms::value(g.terms.ce), LossTerms::value(e.terms.ce)) << at;
    EXPECT_EQ(LossTerms::value(g.terms.kd), LossTerms::value(e.terms.kd)) << at;
    EXPECT_EQ(LossTerms::value(g.terms.hint), LossTerms::value(e.terms.hint)) << at;
    ASSERT_EQ(g.terms.ce.size(), e.terms.ce.size());
    ASSERT_EQ(g.terms.kd.size(), e.terms.kd.size());
    ASSERT_EQ(g.terms.hint.size(), e.terms.hint.size());
    expect_same(graph.model().parameters, eager.model().parameters, "parameters, " + at);
    expect_same(graph.model().gradients, eager.model().gradients, "gradients, " + at);
    expect_same(graph.model().buffers, eager.model().buffers, "running statistics, " + at);
    expect_same(graph.optimizer().momentum_buffer(), eager.optimizer().momentum_buffer(),
                "momentum, " + at);
    if (step == 1) {  // the first replayed (recorded) step
      first_graph_report = g;
      first_eager_loss = e.loss.item();
    }
  }
  EXPECT_EQ(first_graph_report.loss.item(), first_eager_loss)
      << "a report's loss changed with later replays";
}

TEST(CapturedStep, BaselineStepsEqualEagerStepsBitForBit) {
  expect_graph_equals_eager(MethodKind::Baseline);
}

TEST(CapturedStep, ByotStepsEqualEagerStepsBitForBit) {
  expect_graph_equals_eager(MethodKind::Byot);
}

TEST(CapturedStep, MetaDistillerStepsRunEagerly) {
  Collective single_rank;
  Learner eager(captured_spec(MethodKind::MetaDistiller, StepCapture::Eager), single_rank);
  Learner graph(captured_spec(MethodKind::MetaDistiller, StepCapture::Graph), single_rank);
  const Batch meta = batch_of(8, 7);
  const auto meta_source = [&] { return std::make_pair(meta.images, meta.labels); };
  for (int step = 0; step < 3; ++step) {
    const Batch batch = batch_of(8, 200 + static_cast<std::uint64_t>(step));
    const StepReport e = eager.step(batch.images, batch.labels, 0.05, meta_source);
    const StepReport g = graph.step(batch.images, batch.labels, 0.05, meta_source);
    EXPECT_EQ(g.meta_step, e.meta_step);
    EXPECT_EQ(g.times.graph_replay, 0.0);
    if (e.meta_step) {
      EXPECT_EQ(g.meta_loss, e.meta_loss);
    }
  }
  expect_same(graph.model().parameters, eager.model().parameters, "parameters");
  expect_same(graph.generator_buffers().parameters, eager.generator_buffers().parameters,
              "generator parameters");
}

// Timing a captured step: the replay (forward, loss, backward, average) is one pass.
TEST(CapturedStep, TimingReportsTheReplayAsOnePass) {
  Collective single_rank;
  Learner graph(captured_spec(MethodKind::Byot, StepCapture::Graph), single_rank);
  graph.set_pass_timing(PassTiming::WallClock);
  const Batch batch = batch_of(8, 300);
  const auto no_meta = [] { return std::pair<Tensor, Tensor>(); };
  const StepReport warm_up = graph.step(batch.images, batch.labels, 0.05, no_meta);
  EXPECT_EQ(warm_up.times.graph_replay, 0.0);
  EXPECT_GT(warm_up.times.student_forward, 0.0);
  for (int step = 0; step < 2; ++step) {
    const StepReport replayed = graph.step(batch.images, batch.labels, 0.05, no_meta);
    EXPECT_GT(replayed.times.graph_replay, 0.0);
    EXPECT_EQ(replayed.times.student_forward, 0.0);
    EXPECT_EQ(replayed.times.student_backward, 0.0);
    EXPECT_NEAR(replayed.times.graph_replay + replayed.times.optimizer, replayed.times.total, 1e-9);
  }
}

}  // namespace
}  // namespace md::train
