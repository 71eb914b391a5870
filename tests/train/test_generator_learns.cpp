// Evidence that the label generator learns (docs/method.md): on real data (the central 16x16 of
// the first 2,048 Fashion-MNIST training images), with the student held fixed after a short BYOT
// warm-up, a few hundred generator updates applied exactly as training applies them
// (Learner::generator_step: the finite-difference meta-gradient, then Adam) lower the meta
// objective F(φ) = L_meta(θ − η·∇θ L(θ; φ)) on held-out batches below that of the same generator
// left at its initialization (the control arm, method.meta.frozen). The meta-gradient alone is
// tested (label_weight 0), so the anchor cannot take the credit. Every seed must improve, and the
// mean improvement must exceed a margin.
#include <gtest/gtest.h>

#include <cstdio>
#include <numeric>
#include <vector>

#include "backend/backend.h"
#include "data/idx.h"
#include "train/learner.h"

namespace md::train {
namespace {

constexpr const char* kFashion = "/usr/share/datasets/fashion-mnist";
constexpr std::int64_t kImages = 2048, kTrainImages = 1536, kBatch = 32;
// The central 16x16 of each 28x28 image (the object; a third of the pixels, so of the cost).
constexpr std::int64_t kSide = 16;

struct Batch {
  Tensor images;  // (kBatch, 1, kSide, kSide), normalized
  Tensor labels;  // (kBatch) int32
};

// Batches of kBatch images from [first, first + count) in a seeded order.
class Batches {
 public:
  Batches(const data::ImageSet& set, std::int64_t first, std::int64_t count, std::uint64_t seed)
      : set_(&set), indices_(static_cast<std::size_t>(count)), rng_(seed, 9) {
    std::iota(indices_.begin(), indices_.end(), first);
  }
  Batch next() {
    if (position_ + kBatch > static_cast<std::int64_t>(indices_.size())) {
      for (std::size_t i = indices_.size() - 1; i > 0; --i) {
        std::swap(indices_[i], indices_[static_cast<std::size_t>(rng_.below(i + 1))]);
      }
      position_ = 0;
    }
    const std::int64_t pixels = kSide * kSide;
    const std::int64_t offset = (set_->height - kSide) / 2;
    std::vector<float> images(static_cast<std::size_t>(kBatch * pixels));
    std::vector<std::int32_t> labels(static_cast<std::size_t>(kBatch));
    for (std::int64_t b = 0; b < kBatch; ++b) {
      const std::int64_t index = indices_[static_cast<std::size_t>(position_++)];
      const std::uint8_t* image = set_->image(index);
      for (std::int64_t y = 0; y < kSide; ++y) {
        for (std::int64_t x = 0; x < kSide; ++x) {
          const std::uint8_t pixel = image[(y + offset) * set_->width + x + offset];
          images[static_cast<std::size_t>(b * pixels + y * kSide + x)] =
              (static_cast<float>(pixel) / 255.0f - 0.286f) / 0.353f;
        }
      }
      labels[static_cast<std::size_t>(b)] = set_->labels[static_cast<std::size_t>(index)];
    }
    return {Tensor::from_vector<float>({kBatch, 1, kSide, kSide}, images),
            Tensor::from_vector<std::int32_t>({kBatch}, labels)};
  }

 private:
  const data::ImageSet* set_;
  std::vector<std::int64_t> indices_;
  Rng rng_;
  std::int64_t position_ = 1 << 30;  // shuffle before the first batch
};

LearnerSpec spec_for(MethodKind method, std::uint64_t seed) {
  LearnerSpec spec;
  spec.model = models::ModelSpec{.arch = "resnet20", .num_classes = 10, .in_channels = 1};
  spec.loss = LossSpec{.method = method, .temperature = 3.0, .alpha = 0.3};
  spec.sgd = SgdParams{.learning_rate = 0.05, .momentum = 0.9, .weight_decay = 5e-4};
  spec.meta = MetaSpec{.every = 1,
                       .epsilon = 0.01,
                       .optimizer = GeneratorOptimizer::Adam,
                       .learning_rate = 1e-3,
                       .generator_width = 16,
                       .label_weight = 0.0};
  spec.seed = seed;
  spec.device = Device::cpu();
  spec.dtype = DType::Float32;
  return spec;
}

TEST(GeneratorLearns, MetaStepsLowerTheHeldOutMetaObjectiveBelowTheFrozenGenerators) {
  backend::set_cpu_threads(1);  // one core: ctest runs another test beside this one
  const data::ImageSet all = data::load_idx(std::string(kFashion) + "/train-images-idx3-ubyte.gz",
                                            std::string(kFashion) + "/train-labels-idx1-ubyte.gz");
  ASSERT_GE(all.count, kImages);
  constexpr int kWarmupSteps = 60, kGeneratorSteps = 200, kHeldOutPairs = 12;
  constexpr double kLearningRate = 0.05;
  std::vector<double> improvements;
  for (const std::uint64_t seed : {0u, 1u, 2u}) {
    Collective single_rank;
    // A student that has learned something: BYOT steps (the same layout, heads included).
    Learner warmup(spec_for(MethodKind::Byot, seed), single_rank);
    Batches train(all, 0, kTrainImages, seed);
    for (int step = 0; step < kWarmupSteps; ++step) {
      const Batch batch = train.next();
      warmup.step(batch.images, batch.labels, kLearningRate, {});
    }
    Learner learner(spec_for(MethodKind::MetaDistiller, seed), single_rank);
    learner.model().parameters.copy_from(warmup.model().parameters);
    learner.model().buffers.copy_from(warmup.model().buffers);
    const Tensor initial = learner.generator_buffers().parameters.clone();

    auto held_out_objective = [&] {
      Batches held_out(all, kTrainImages, kImages - kTrainImages, 1000);
      double total = 0.0;
      for (int pair = 0; pair < kHeldOutPairs; ++pair) {
        const Batch batch = held_out.next();
        const Batch meta = held_out.next();
        total += learner.meta_objective(batch.images, batch.labels, kLearningRate, meta.images,
                                        meta.labels);
      }
      return total / kHeldOutPairs;
    };
    const double frozen = held_out_objective();
    const Tensor theta = learner.model().parameters.clone();
    for (int step = 0; step < kGeneratorSteps; ++step) {
      const Batch batch = train.next();
      const Batch meta = train.next();
      learner.generator_step(batch.images, batch.labels, kLearningRate, meta.images, meta.labels);
    }
    ASSERT_EQ(learner.model().parameters.to_vector<float>(), theta.to_vector<float>())
        << "generator steps moved the student";
    ASSERT_NE(learner.generator_buffers().parameters.to_vector<float>(),
              initial.to_vector<float>());
    const double trained = held_out_objective();
    std::printf(
        "seed %llu: held-out meta objective %.5f with the frozen generator, %.5f after %d "
        "generator steps (%.5f lower)\n",
        static_cast<unsigned long long>(seed), frozen, trained, kGeneratorSteps, frozen - trained);
    EXPECT_LT(trained, frozen) << "seed " << seed;
    improvements.push_back(frozen - trained);
  }
  const double mean = std::accumulate(improvements.begin(), improvements.end(), 0.0) /
                      static_cast<double>(improvements.size());
  std::printf("mean improvement over %zu seeds: %.5f\n", improvements.size(), mean);
  EXPECT_GT(mean, 1e-3);
}

}  // namespace
}  // namespace md::train
