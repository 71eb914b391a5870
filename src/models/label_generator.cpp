#include "models/label_generator.h"

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

std::vector<Variable> LabelGenerator::forward(const nn::ForwardContext& context,
                                              const std::vector<Variable>& stage_features) const {
  const std::size_t stages = laterals_.size();
  MD_CHECK(stage_features.size() == stages, "label generator built for ", stages, " stages, got ",
           stage_features.size());
  std::vector<Variable> pyramid(stages);
  pyramid[stages - 1] = laterals_[stages - 1]->forward(context, stage_features[stages - 1]);
  for (std::size_t s = stages - 1; s-- > 0;) {
    const Variable lateral = laterals_[s]->forward(context, stage_features[s]);
    const Variable upper = autograd::resize(pyramid[s + 1], lateral.value().dim(2),
                                            lateral.value().dim(3), spec_.resize);
    pyramid[s] = autograd::add(lateral, upper);
  }
  std::vector<Variable> targets;
  for (std::size_t s = 0; s + 1 < stages; ++s) {
    Variable h = autograd::relu(smooth_[s]->forward(context, pyramid[s]));
    targets.push_back(classifiers_[s]->forward(context, autograd::global_avg_pool(h)));
  }
  return targets;
}

}  // namespace md::models
