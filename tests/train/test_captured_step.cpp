// StepCapture::Graph (runtime.cuda_graph) against eager steps, on the CPU, where a replay runs
// the recorded work again: the same losses, parameters, gradients, momentum and running
// statistics bit for bit over steps with changing batches and learning rates; a batch of another
// shape runs eagerly in between; a report keeps its values after later replays; MetaDistiller
// steps run eagerly. (tests/gpu checks the CUDA graphs and their memory pool.)
#include <gtest/gtest.h>

#include <cstdint>
#include <vector>

#include "support/gradcheck.h"
#include "train/learner.h"

namespace md::train {
namespace {

LearnerSpec spec_of(MethodKind method, StepCapture capture) {
  LearnerSpec spec;
  spec.model = models::ModelSpec{.arch = "resnet20", .num_classes = 4, .in_channels = 1};
  spec.loss = LossSpec{.method = method, .temperature = 3.0, .alpha = 0.3, .hint = 0.1};
  spec.sgd = SgdParams{.learning_rate = 0.05, .momentum = 0.9, .weight_decay = 5e-4};
  spec.meta = MetaSpec{.every = 1, .epsilon = 0.01, .generator_width = 8};
  spec.seed = 9;
  spec.capture = capture;
  spec.device = Device::cpu();
  return spec;
}

struct Batch {
  Tensor images;
  Tensor labels;
};

Batch batch_of(std::int64_t size, std::uint64_t seed) {
  std::vector<std::int32_t> labels;
  for (std::int64_t i = 0; i < size; ++i)
    labels.push_back(static_cast<std::int32_t>((i + seed) % 4));
  return {test::random_tensor({size, 1, 12, 12}, seed, -1.0, 1.0, DType::Float32),
          Tensor::from_vector<std::int32_t>({size}, labels)};
}

void expect_same(const Tensor& a, const Tensor& b, const std::string& what) {
  EXPECT_EQ(a.to_vector<float>(), b.to_vector<float>()) << what;
}

// Steps of 8 images but one of 6 (eager in between), learning rates changing every step.
void expect_graph_equals_eager(MethodKind method) {
  Collective single_rank;
  Learner eager(spec_of(method, StepCapture::Eager), single_rank);
  Learner graph(spec_of(method, StepCapture::Graph), single_rank);
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
  Learner eager(spec_of(MethodKind::MetaDistiller, StepCapture::Eager), single_rank);
  Learner graph(spec_of(MethodKind::MetaDistiller, StepCapture::Graph), single_rank);
  const Batch meta = batch_of(8, 7);
  const auto meta_source = [&] { return std::make_pair(meta.images, meta.labels); };
  for (int step = 0; step < 3; ++step) {
    const Batch batch = batch_of(8, 200 + static_cast<std::uint64_t>(step));
    const StepReport e = eager.step(batch.images, batch.labels, 0.05, meta_source);
    const StepReport g = graph.step(batch.images, batch.labels, 0.05, meta_source);
    EXPECT_TRUE(g.meta_step);
    EXPECT_EQ(g.times.graph_replay, 0.0);
    EXPECT_EQ(g.meta_loss, e.meta_loss);
  }
  expect_same(graph.model().parameters, eager.model().parameters, "parameters");
  expect_same(graph.generator_buffers().parameters, eager.generator_buffers().parameters,
              "generator parameters");
}

// Timing a captured step: the replay (forward, loss, backward, average) is one pass.
TEST(CapturedStep, TimingReportsTheReplayAsOnePass) {
  Collective single_rank;
  Learner graph(spec_of(MethodKind::Byot, StepCapture::Graph), single_rank);
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
