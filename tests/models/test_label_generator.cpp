// The label generator's two resolutions (models/label_generator.h), in float64:
// - Stage is the pyramid as DESIGN.md §1 writes it, rebuilt here op by op;
// - Deepest equals that pyramid with each level average-pooled to the deepest stage's grid
//   before the 3x3 smoothing, whenever the stage sizes are whole multiples of the deepest one,
//   although it computes the laterals and the top-down sum on the pooled grid;
// - both share one parameter layout, and Deepest also runs on stage sizes that do not divide.
#include <gtest/gtest.h>

#include <cmath>
#include <string>

#include "autograd/functions.h"
#include "models/label_generator.h"
#include "nn/module.h"
#include "support/gradcheck.h"

namespace md::models {
namespace {

using autograd::Variable;

LabelGeneratorSpec generator_spec(GeneratorResolution resolution) {
  return LabelGeneratorSpec{.stage_channels = {3, 5, 4},
                            .width = 6,
                            .num_classes = 4,
                            .resize = ResizeMode::Nearest,
                            .resolution = resolution};
}

// The generator's parameters, random, and a context running on them without gradients.
struct Parameters {
  explicit Parameters(const LabelGenerator& generator) : layout(&generator.layout()) {
    buffers = nn::ModelBuffers::allocate(generator.layout(), DType::Float64, Device::cpu());
    Rng rng(17, 0);
    buffers.initialize(generator.layout(), rng);
    // Non-zero biases, so that pooling must commute with them too.
    buffers.parameters.copy_from(test::random_tensor(buffers.parameters.shape(), 23, -0.5, 0.5));
  }
  nn::ForwardContext context() const {
    return nn::ForwardContext{layout,          buffers.parameters, Tensor(),
                              buffers.buffers, nn::Mode::Train,    RunningStatsUpdate::Skip};
  }
  Variable get(const std::string& name) const {
    const int index = layout->parameters.find(name);
    EXPECT_GE(index, 0) << name;
    return Variable(layout->parameters.view(buffers.parameters, index));
  }

  const nn::ModelLayout* layout;
  nn::ModelBuffers buffers;
};

// DESIGN.md §1 by hand: P_S = lateral_S(F_S); P_s = lateral_s(F_s) + nearest(P_{s+1});
// u_s = fc(gap(relu(conv3x3(pool_s(P_s))))), pool_s averaging by `pool_kernels[s]` (1: none).
std::vector<Variable> reference_targets(const Parameters& p, const std::vector<Variable>& features,
                                        const std::vector<int>& pool_kernels) {
  const std::size_t stages = features.size();
  auto lateral = [&](std::size_t s) {
    const std::string name = "gen.lateral." + std::to_string(s);
    return autograd::conv2d(features[s], p.get(name + ".weight"), p.get(name + ".bias"), {});
  };
  std::vector<Variable> levels(stages);
  levels[stages - 1] = lateral(stages - 1);
  for (std::size_t s = stages - 1; s-- > 0;) {
    const Variable own = lateral(s);
    levels[s] = autograd::add(
        own, autograd::resize(levels[s + 1], own.shape()[2], own.shape()[3], ResizeMode::Nearest));
  }
  std::vector<Variable> targets;
  for (std::size_t s = 0; s + 1 < stages; ++s) {
    Variable level = levels[s];
    if (pool_kernels[s] > 1) {
      level = autograd::avg_pool2d(
          level, {.kernel = pool_kernels[s], .stride = pool_kernels[s], .padding = 0});
    }
    const std::string smooth = "gen.smooth." + std::to_string(s),
                      fc = "gen.fc." + std::to_string(s);
    const Variable h = autograd::relu(autograd::conv2d(level, p.get(smooth + ".weight"),
                                                       p.get(smooth + ".bias"), {.padding = 1}));
    targets.push_back(
        autograd::linear(autograd::global_avg_pool(h), p.get(fc + ".weight"), p.get(fc + ".bias")));
  }
  return targets;
}

// features[s]: (2, C_s, size_s, size_s)
std::vector<Variable> stage_features(const std::vector<std::int64_t>& sizes) {
  const std::vector<std::int64_t> channels{3, 5, 4};
  std::vector<Variable> features;
  for (std::size_t s = 0; s < sizes.size(); ++s) {
    features.emplace_back(
        test::random_tensor({2, channels[s], sizes[s], sizes[s]}, 31 + s, -1.0, 1.0));
  }
  return features;
}

TEST(LabelGenerator, BothResolutionsShareOneLayout) {
  const LabelGenerator stage(generator_spec(GeneratorResolution::Stage));
  const LabelGenerator deepest(generator_spec(GeneratorResolution::Deepest));
  const auto& a = stage.layout().parameters.slots();
  const auto& b = deepest.layout().parameters.slots();
  ASSERT_EQ(a.size(), b.size());
  for (std::size_t i = 0; i < a.size(); ++i) {
    EXPECT_EQ(a[i].name, b[i].name);
    EXPECT_EQ(a[i].shape, b[i].shape) << a[i].name;
    EXPECT_EQ(a[i].offset, b[i].offset) << a[i].name;
  }
}

TEST(LabelGenerator, StageAndDeepestMatchThePyramidByHand) {
  const LabelGenerator stage(generator_spec(GeneratorResolution::Stage));
  const LabelGenerator deepest(generator_spec(GeneratorResolution::Deepest));
  const Parameters parameters(stage);
  autograd::NoGrad no_grad;
  const std::vector<Variable> features = stage_features({8, 4, 2});
  const std::vector<Variable> at_stage = stage.forward(parameters.context(), features);
  const std::vector<Variable> at_deepest = deepest.forward(parameters.context(), features);
  const std::vector<Variable> by_hand = reference_targets(parameters, features, {1, 1});
  const std::vector<Variable> pooled_by_hand = reference_targets(parameters, features, {4, 2});
  ASSERT_EQ(at_stage.size(), 2u);
  ASSERT_EQ(at_deepest.size(), 2u);
  for (std::size_t s = 0; s < 2; ++s) {
    EXPECT_EQ(at_deepest[s].shape(), (Shape{2, 4}));
    EXPECT_LT(test::max_relative_error(at_stage[s].value(), by_hand[s].value()), 1e-12)
        << "stage " << s;
    EXPECT_LT(test::max_relative_error(at_deepest[s].value(), pooled_by_hand[s].value()), 1e-12)
        << "stage " << s;
    // They are different functions: smoothing before or after pooling.
    EXPECT_GT(test::max_relative_error(at_deepest[s].value(), at_stage[s].value()), 1e-3)
        << "stage " << s;
  }
}

TEST(LabelGenerator, DeepestRunsOnStageSizesThatDoNotDivide) {
  const LabelGenerator deepest(generator_spec(GeneratorResolution::Deepest));
  const Parameters parameters(deepest);
  autograd::NoGrad no_grad;
  // 15 -> pooled by 3 to 5x5, the upper levels (4x4) resized to it.
  const std::vector<Variable> targets =
      deepest.forward(parameters.context(), stage_features({15, 8, 4}));
  ASSERT_EQ(targets.size(), 2u);
  for (const Variable& target : targets) {
    EXPECT_EQ(target.shape(), (Shape{2, 4}));
    for (const double value : target.value().to_vector<double>()) EXPECT_TRUE(std::isfinite(value));
  }
}

}  // namespace
}  // namespace md::models
