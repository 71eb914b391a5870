// See label_generator.h for the two resolutions the fusion can run at.
#include "models/label_generator.h"

#include <algorithm>

#include "core/error.h"

namespace md::models {

using autograd::Variable;

LabelGenerator::LabelGenerator(const LabelGeneratorSpec& spec) : spec_(spec) {
  const std::size_t stages = spec.stage_channels.size();
  MD_CHECK(stages >= 2, "the label generator needs at least two stages");
  for (std::size_t s = 0; s < stages; ++s) {
    laterals_.push_back(
        std::make_unique<nn::Conv2d>(layout_, "gen.lateral." + std::to_string(s),
                                     nn::Conv2dSpec{.in_channels = spec.stage_channels[s],
                                                    .out_channels = spec.width,
                                                    .kernel = 1,
                                                    .params = {},
                                                    .bias = nn::Bias::With,
                                                    .init = nn::InitKind::UniformFanIn}));
  }
  for (std::size_t s = 0; s + 1 < stages; ++s) {
    smooth_.push_back(
        std::make_unique<nn::Conv2d>(layout_, "gen.smooth." + std::to_string(s),
                                     nn::Conv2dSpec{.in_channels = spec.width,
                                                    .out_channels = spec.width,
                                                    .kernel = 3,
                                                    .params = {.padding = 1},
                                                    .bias = nn::Bias::With,
                                                    .init = nn::InitKind::UniformFanIn}));
    classifiers_.push_back(std::make_unique<nn::Linear>(
        layout_, "gen.fc." + std::to_string(s),
        nn::LinearSpec{.in_features = spec.width, .out_features = spec.num_classes}));
  }
}

std::vector<Variable> LabelGenerator::pyramid(const nn::ForwardContext& context,
                                              const std::vector<Variable>& stage_features) const {
  const std::size_t stages = laterals_.size();
  const Shape& deepest = stage_features.back().shape();
  // F_s as its lateral sees it: itself (Stage), or average-pooled to the deepest grid.
  auto level_input = [&](std::size_t s) {
    const Variable& feature = stage_features[s];
    if (spec_.resolution == GeneratorResolution::Stage) return feature;
    const std::int64_t kernel =
        std::min(feature.shape()[2] / deepest[2], feature.shape()[3] / deepest[3]);
    if (kernel <= 1) return feature;
    const int pool = static_cast<int>(kernel);
    return autograd::avg_pool2d(feature,
                                Pool2dParams{.kernel = pool, .stride = pool, .padding = 0});
  };
  std::vector<Variable> levels(stages);
  levels[stages - 1] = laterals_[stages - 1]->forward(context, level_input(stages - 1));
  for (std::size_t s = stages - 1; s-- > 0;) {
    const Variable lateral = laterals_[s]->forward(context, level_input(s));
    Variable upper = levels[s + 1];
    const std::int64_t height = lateral.shape()[2], width = lateral.shape()[3];
    if (upper.shape()[2] != height || upper.shape()[3] != width) {
      upper = autograd::resize(upper, height, width, spec_.resize);
    }
    levels[s] = autograd::add(lateral, upper);
  }
  return levels;
}

std::vector<Variable> LabelGenerator::forward(const nn::ForwardContext& context,
                                              const std::vector<Variable>& stage_features) const {
  const std::size_t stages = laterals_.size();
  MD_CHECK(stage_features.size() == stages, "label generator built for ", stages, " stages, got ",
           stage_features.size());
  for (const Variable& feature : stage_features) {
    MD_CHECK(feature.value().ndim() == 4, "label generator: stage feature ",
             feature.value().describe(), " is not (N, C, H, W)");
  }
  const std::vector<Variable> levels = pyramid(context, stage_features);
  std::vector<Variable> targets;
  for (std::size_t s = 0; s + 1 < stages; ++s) {
    Variable h = autograd::relu(smooth_[s]->forward(context, levels[s]));
    targets.push_back(classifiers_[s]->forward(context, autograd::global_avg_pool(h)));
  }
  return targets;
}

}  // namespace md::models
