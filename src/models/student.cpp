// The student's auxiliary heads and its forward (backbone, then one head per shallow stage);
// the layout and the head split are documented in student.h. No losses or training logic here.
#include "models/student.h"

#include "core/error.h"

namespace md::models {

using autograd::Variable;

int AuxWidth::bottleneck(int stage_channels, int last_stage_channels) const {
  switch (rule) {
    case AuxWidthRule::InputQuarter:
      return std::max(8, stage_channels / 4);
    case AuxWidthRule::LastStageQuarter:
      return std::max(1, last_stage_channels / 4);
    case AuxWidthRule::Fixed:
      MD_CHECK(channels >= 1, "auxiliary head width ", channels, " is not positive");
      return channels;
  }
  return std::max(8, stage_channels / 4);
}

AuxHead::AuxHead(nn::ModelLayout& layout, const std::string& name, int in_channels,
                 int bottleneck_width, int downsample, int out_width, int num_classes) {
  const int mid = bottleneck_width;
  auto conv = [&](const std::string& sub, int in, int out, int kernel, Conv2dParams params) {
    body_.emplace<nn::Conv2d>(layout, nn::join(name, sub),
                              nn::Conv2dSpec{.in_channels = in,
                                             .out_channels = out,
                                             .kernel = kernel,
                                             .params = params,
                                             .bias = nn::Bias::Without,
                                             .init = nn::InitKind::KaimingNormalFanOut});
  };
  conv("conv1", in_channels, mid, 1, {});
  body_.emplace<nn::BatchNormReLU2d>(layout, nn::join(name, "bn1"), mid);
  if (downsample > 1) {
    conv("conv2", mid, mid, downsample, {.stride = downsample});
  } else {
    conv("conv2", mid, mid, 3, {.stride = 1, .padding = 1});
  }
  body_.emplace<nn::BatchNormReLU2d>(layout, nn::join(name, "bn2"), mid);
  conv("conv3", mid, out_width, 1, {});
  body_.emplace<nn::BatchNormReLU2d>(layout, nn::join(name, "bn3"), out_width);
  body_.emplace<nn::GlobalAvgPool>();
  classifier_ = std::make_unique<nn::Linear>(
      layout, nn::join(name, "fc"),
      nn::LinearSpec{.in_features = out_width, .out_features = num_classes});
}

void AuxHead::forward(const nn::ForwardContext& context, const Variable& x, Variable& features,
                      Variable& logits) const {
  features = body_.forward(context, x);
  logits = classifier_->forward(context, features);
}

Student::Student(const ModelSpec& spec, AuxHeads aux_heads) : network_(make_network(spec)) {
  layout_ = network_->layout();
  backbone_parameters_ = layout_.parameters.numel();
  backbone_buffers_ = layout_.buffers.numel();
  if (aux_heads == AuxHeads::Byot) {
    const std::vector<int> channels = network_->stage_channels();
    const std::vector<int> strides = network_->stage_strides();
    MD_CHECK(channels.size() >= 2 && channels.size() == strides.size(), spec.arch,
             ": a student with auxiliary heads needs at least two stages");
    const int last_width = channels.back();
    for (std::size_t s = 0; s + 1 < channels.size(); ++s) {
      const int downsample = strides.back() / strides[s];
      MD_CHECK(downsample >= 1 && strides.back() % strides[s] == 0, spec.arch, ": stage ", s,
               " stride ", strides[s], " does not divide the last stage's ", strides.back());
      aux_heads_.push_back(
          std::make_unique<AuxHead>(layout_, "aux." + std::to_string(s), channels[s],
                                    spec.aux_width.bottleneck(channels[s], last_width), downsample,
                                    last_width, spec.num_classes));
    }
  }
}

StudentOutput Student::forward(const nn::ForwardContext& context, const Variable& x,
                               StudentHeads heads) const {
  const bool auxiliary_only = heads == StudentHeads::Auxiliary;
  MD_CHECK(!auxiliary_only || !aux_heads_.empty(), network_->arch(),
           ": a forward of the auxiliary heads of a student that has none");
  nn::ForwardContext backbone = context;
  backbone.layout = &network_->layout();
  backbone.parameters = context.parameters.slice_flat(0, {backbone_parameters_});
  if (context.gradients.defined()) {
    backbone.gradients = context.gradients.slice_flat(0, {backbone_parameters_});
  }
  backbone.buffers = context.buffers.slice_flat(0, {backbone_buffers_});
  // Auxiliary head s reads stage s, so the heads need the first num_aux_heads() stages.
  const ForwardScope scope =
      auxiliary_only ? ForwardScope{.stages = num_aux_heads()} : ForwardScope{};
  NetworkOutput net = network_->forward(backbone, x, scope);

  StudentOutput out;
  out.stage_features = net.stage_features;
  for (std::size_t s = 0; s < aux_heads_.size(); ++s) {
    Variable features, logits;
    aux_heads_[s]->forward(context, net.stage_features[s], features, logits);
    out.head_features.push_back(features);
    out.logits.push_back(logits);
  }
  if (auxiliary_only) return out;
  out.head_features.push_back(autograd::global_avg_pool(net.stage_features.back()));
  out.logits.push_back(net.logits);
  return out;
}

}  // namespace md::models
