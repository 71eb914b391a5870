// The label generator's objective and how its updates are applied (docs/method.md):
// - the target statistics the trial log records (entropy, agreement with labels and final head);
// - method.meta.label_weight: G's gradient is the meta-gradient plus λ·∇φ Σ_s CE(u_s, y);
// - method.meta.frozen: G never moves, no meta batch is drawn, the student steps as usual;
// - method.meta.update_order: generator_first updates G with the meta-gradient at φ_t (the one a
//   student_first step computes) and then steps the student with the targets of φ_{t+1}.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <vector>

#include "autograd/functions.h"
#include "backend/backend.h"
#include "support/gradcheck.h"
#include "train/learner.h"
#include "train/target_stats.h"

namespace md::train {
namespace {

LearnerSpec generator_spec(DType dtype) {
  LearnerSpec spec;
  spec.model = models::ModelSpec{.arch = "resnet20", .num_classes = 4, .in_channels = 1};
  spec.loss = LossSpec{.method = MethodKind::MetaDistiller, .temperature = 3.0, .alpha = 0.3};
  spec.sgd = SgdParams{.learning_rate = 0.05, .momentum = 0.9, .weight_decay = 5e-4};
  spec.meta = MetaSpec{.every = 1,
                       .epsilon = 0.01,
                       .optimizer = GeneratorOptimizer::Adam,
                       .learning_rate = 1e-3,
                       .generator_width = 8};
  spec.seed = 7;
  spec.device = Device::cpu();
  spec.dtype = dtype;
  return spec;
}

struct Batch {
  Tensor images;  // (8, 1, 12, 12)
  Tensor labels;  // (8)
};

Batch make_batch(std::uint64_t seed, DType dtype) {
  return {test::random_tensor({8, 1, 12, 12}, seed, -1.0, 1.0, dtype),
          Tensor::from_vector<std::int32_t>({8}, {0, 1, 2, 3, 3, 2, 1, 0})};
}

std::vector<double> doubles(const Tensor& tensor) {
  return tensor.to_dtype(DType::Float64).to_vector<double>();
}

TEST(TargetStatistics, EntropyAndAgreementOfKnownTargets) {
  // Two heads over three samples and three classes. Head 0: uniform targets (entropy log 3;
  // the first argmax, class 0, is taken for ties). Head 1: very sharp targets on 2, 1, 0.
  const Tensor uniform = Tensor::from_vector<float>({3, 3}, {1, 1, 1, 2, 2, 2, 0, 0, 0});
  const Tensor sharp = Tensor::from_vector<float>({3, 3}, {0, 0, 300, 0, 300, 0, 300, 0, 0});
  const Tensor deepest = Tensor::from_vector<float>({3, 3}, {0, 0, 1, 0, 0, 1, 1, 0, 0});
  const Tensor labels = Tensor::from_vector<std::int32_t>({3}, {2, 1, 1});
  const TargetStatistics statistics =
      target_statistics({uniform, sharp}, deepest, labels, /*temperature=*/3.0);
  ASSERT_EQ(statistics.entropy.size(), 2u);
  EXPECT_NEAR(statistics.entropy[0], std::log(3.0), 1e-12);
  EXPECT_NEAR(statistics.entropy[1], 0.0, 1e-12);
  EXPECT_DOUBLE_EQ(statistics.label_agreement[0], 0.0);  // argmax 0 against labels 2, 1, 1
  EXPECT_DOUBLE_EQ(statistics.label_agreement[1], 2.0 / 3.0);
  EXPECT_DOUBLE_EQ(statistics.final_agreement[0], 1.0 / 3.0);  // deepest argmax 2, 2, 0
  EXPECT_DOUBLE_EQ(statistics.final_agreement[1], 2.0 / 3.0);
  EXPECT_EQ(statistics.samples, 3);
  const auto row = target_statistics_row(statistics);
  EXPECT_DOUBLE_EQ(row.at("gen_label_agreement_head1"), 2.0 / 3.0);
  EXPECT_NEAR(row.at("gen_entropy_head0"), std::log(3.0), 1e-12);
}

TEST(TargetStatistics, EpochMeanIsSampleWeightedAndSurvivesACheckpoint) {
  TargetStatisticsMean mean;
  EXPECT_TRUE(mean.empty());
  mean.add({.entropy = {1.0}, .label_agreement = {0.5}, .final_agreement = {1.0}, .samples = 2});
  mean.add({.entropy = {4.0}, .label_agreement = {1.0}, .final_agreement = {0.0}, .samples = 6});
  EXPECT_DOUBLE_EQ(mean.means().at("gen_entropy_head0"), (2.0 * 1.0 + 6.0 * 4.0) / 8.0);
  EXPECT_DOUBLE_EQ(mean.means().at("gen_label_agreement_head0"), (1.0 + 6.0) / 8.0);
  TargetStatisticsMean restored;
  restored.restore(mean.sums());
  EXPECT_EQ(restored.means(), mean.means());
  restored.restore({});  // a checkpoint without the sums (older trials)
  EXPECT_TRUE(restored.empty());
}

// The stage features the learner's student gives for `batch` (training mode, no stat updates).
std::vector<autograd::Variable> stage_features(Learner& learner, const Batch& batch) {
  autograd::NoGrad no_grad;
  const nn::ForwardContext student{&learner.student().layout(),
                                   learner.model().parameters,
                                   Tensor(),
                                   learner.model().buffers,
                                   nn::Mode::Train,
                                   RunningStatsUpdate::Skip};
  return learner.student().forward(student, autograd::Variable(batch.images)).stage_features;
}

// Σ_s CE(u_s, y) of the targets G gives for `features`.
double label_anchor(Learner& learner, const std::vector<autograd::Variable>& features,
                    const Tensor& labels) {
  autograd::NoGrad no_grad;
  const nn::ForwardContext generator{&learner.generator().layout(),
                                     learner.generator_buffers().parameters,
                                     Tensor(),
                                     learner.generator_buffers().buffers,
                                     nn::Mode::Train,
                                     RunningStatsUpdate::Skip};
  double total = 0.0;
  for (const autograd::Variable& target : learner.generator().forward(generator, features)) {
    total += autograd::cross_entropy(target, labels).value().item();
  }
  return total;
}

TEST(LabelAnchor, AddsTheGradientOfTheTargetsCrossEntropy) {
  const Batch batch = make_batch(31, DType::Float64);
  const Batch meta = make_batch(32, DType::Float64);
  const double learning_rate = 0.1;
  Collective single_rank;
  LearnerSpec spec = generator_spec(DType::Float64);
  spec.meta.epsilon = 1e-5;
  spec.meta.label_weight = 0.0;
  Learner without(spec, single_rank);
  without.meta_gradient(batch.images, batch.labels, learning_rate, meta.images, meta.labels);
  const std::vector<double> meta_only = doubles(without.generator_buffers().gradients);
  constexpr double kWeight = 0.7;
  spec.meta.label_weight = kWeight;
  Learner with(spec, single_rank);
  with.meta_gradient(batch.images, batch.labels, learning_rate, meta.images, meta.labels);
  const std::vector<double> anchored = doubles(with.generator_buffers().gradients);

  // (anchored − meta_only)/λ against central differences of Σ_s CE(u_s, y) over φ.
  Tensor& phi = with.generator_buffers().parameters;
  const std::vector<autograd::Variable> features = stage_features(with, batch);
  constexpr double kStep = 1e-6;
  int checked = 0;
  for (const nn::TensorSlot& slot : with.generator().layout().parameters.slots()) {
    const std::int64_t count = shape_numel(slot.shape);
    for (const std::int64_t index : {slot.offset, slot.offset + count - 1}) {
      const double original = doubles(phi.slice_flat(index, {}))[0];
      Tensor view = phi.slice_flat(index, {1});
      backend::of(phi).fill(view, original + kStep);
      const double plus = label_anchor(with, features, batch.labels);
      backend::of(phi).fill(view, original - kStep);
      const double minus = label_anchor(with, features, batch.labels);
      backend::of(phi).fill(view, original);
      const double numeric = (plus - minus) / (2.0 * kStep);
      const auto i = static_cast<std::size_t>(index);
      const double anchor = (anchored[i] - meta_only[i]) / kWeight;
      EXPECT_NEAR(anchor, numeric, 1e-6 * std::max(1.0, std::abs(numeric)))
          << slot.name << " at flat index " << index;
      ++checked;
    }
  }
  EXPECT_GT(checked, 10);
}

TEST(FrozenGenerator, NeverMovesAndDrawsNoMetaBatch) {
  Collective single_rank;
  LearnerSpec spec = generator_spec(DType::Float32);
  spec.meta.frozen = true;
  Learner frozen(spec, single_rank);
  const std::vector<double> phi = doubles(frozen.generator_buffers().parameters);
  const std::vector<double> theta = doubles(frozen.model().parameters);
  int meta_batches = 0;
  for (std::uint64_t step = 0; step < 3; ++step) {
    const Batch batch = make_batch(40 + step, DType::Float32);
    const StepReport report = frozen.step(batch.images, batch.labels, 0.05, [&] {
      ++meta_batches;
      const Batch meta = make_batch(90, DType::Float32);
      return std::make_pair(meta.images, meta.labels);
    });
    EXPECT_FALSE(report.meta_step);
    EXPECT_EQ(report.targets.size(), 2u) << "the targets still teach the shallow heads";
    EXPECT_GT(LossTerms::value(report.terms.kd), 0.0);
  }
  EXPECT_EQ(meta_batches, 0);
  EXPECT_EQ(doubles(frozen.generator_buffers().parameters), phi);
  EXPECT_NE(doubles(frozen.model().parameters), theta);
}

TEST(UpdateOrder, GeneratorFirstStepsTheStudentWithTheUpdatedGenerator) {
  Collective single_rank;
  const Batch batch = make_batch(51, DType::Float32);
  const Batch meta = make_batch(52, DType::Float32);
  auto meta_source = [&] { return std::make_pair(meta.images, meta.labels); };
  LearnerSpec spec = generator_spec(DType::Float32);
  Learner student_first(spec, single_rank);
  spec.meta.update_order = UpdateOrder::GeneratorFirst;
  Learner generator_first(spec, single_rank);
  const StepReport first = student_first.step(batch.images, batch.labels, 0.05, meta_source);
  const StepReport second = generator_first.step(batch.images, batch.labels, 0.05, meta_source);
  ASSERT_TRUE(first.meta_step && second.meta_step);
  // The same meta-gradient at φ_t: the same φ_{t+1}.
  EXPECT_EQ(doubles(generator_first.generator_buffers().parameters),
            doubles(student_first.generator_buffers().parameters));
  EXPECT_EQ(first.meta_loss, second.meta_loss);
  // The student's step: that of a frozen learner holding φ_{t+1} from the start.
  spec.meta.frozen = true;
  Learner reference(spec, single_rank);
  reference.generator_buffers().parameters.copy_from(
      generator_first.generator_buffers().parameters);
  const StepReport expected = reference.step(batch.images, batch.labels, 0.05, meta_source);
  EXPECT_EQ(doubles(generator_first.model().parameters), doubles(reference.model().parameters));
  EXPECT_EQ(doubles(generator_first.model().buffers), doubles(reference.model().buffers))
      << "the look-ahead pass updated running statistics";
  EXPECT_EQ(second.loss.item(), expected.loss.item());
  EXPECT_NE(doubles(generator_first.model().parameters), doubles(student_first.model().parameters));
}

}  // namespace
}  // namespace md::train
