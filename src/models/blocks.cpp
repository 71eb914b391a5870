// BasicBlock / Bottleneck: construction registers the slots in torchvision's order (the order
// of the members below), forward follows torchvision's forward.
#include "models/blocks.h"

#include "autograd/functions.h"

namespace md::models {

using autograd::Variable;

nn::Conv2dSpec resnet_conv(int in_channels, int out_channels, int kernel, int stride) {
  return nn::Conv2dSpec{.in_channels = in_channels,
                        .out_channels = out_channels,
                        .kernel = kernel,
                        .params = {.stride = stride, .padding = (kernel - 1) / 2},
                        .bias = nn::Bias::Without,
                        .init = nn::InitKind::KaimingNormalFanOut};
}

Downsample::Downsample(nn::ModelLayout& layout, const std::string& name, int in_channels,
                       int out_channels, int stride)
    : conv_(layout, nn::join(name, "0"), resnet_conv(in_channels, out_channels, 1, stride)),
      bn_(layout, nn::join(name, "1"), out_channels) {}

Variable Downsample::forward(const nn::ForwardContext& context, const Variable& x) const {
  return bn_.forward(context, conv_.forward(context, x));
}

namespace {

std::optional<Downsample> make_downsample(nn::ModelLayout& layout, const std::string& name,
                                          const ResidualBlockSpec& spec, int out_channels) {
  if (spec.stride == 1 && spec.in_channels == out_channels) return std::nullopt;
  return std::optional<Downsample>(std::in_place, layout, nn::join(name, "downsample"),
                                   spec.in_channels, out_channels, spec.stride);
}

}  // namespace

BasicBlock::BasicBlock(nn::ModelLayout& layout, const std::string& name,
                       const ResidualBlockSpec& spec)
    : conv1_(layout, nn::join(name, "conv1"),
             resnet_conv(spec.in_channels, spec.planes, 3, spec.stride)),
      bn1_(layout, nn::join(name, "bn1"), spec.planes),
      conv2_(layout, nn::join(name, "conv2"), resnet_conv(spec.planes, spec.planes, 3, 1)),
      bn2_(layout, nn::join(name, "bn2"), spec.planes),
      downsample_(make_downsample(layout, name, spec, spec.planes * kExpansion)) {}

Variable BasicBlock::forward(const nn::ForwardContext& context, const Variable& x) const {
  const Variable out = bn1_.forward_add_relu(context, conv1_.forward(context, x));
  const Variable identity = downsample_ ? downsample_->forward(context, x) : x;
  return bn2_.forward_add_relu(context, conv2_.forward(context, out), identity);
}

Bottleneck::Bottleneck(nn::ModelLayout& layout, const std::string& name,
                       const ResidualBlockSpec& spec)
    : conv1_(layout, nn::join(name, "conv1"), resnet_conv(spec.in_channels, spec.planes, 1, 1)),
      bn1_(layout, nn::join(name, "bn1"), spec.planes),
      conv2_(layout, nn::join(name, "conv2"),
             resnet_conv(spec.planes, spec.planes, 3, spec.stride)),
      bn2_(layout, nn::join(name, "bn2"), spec.planes),
      conv3_(layout, nn::join(name, "conv3"),
             resnet_conv(spec.planes, spec.planes * kExpansion, 1, 1)),
      bn3_(layout, nn::join(name, "bn3"), spec.planes * kExpansion),
      downsample_(make_downsample(layout, name, spec, spec.planes * kExpansion)) {}

Variable Bottleneck::forward(const nn::ForwardContext& context, const Variable& x) const {
  Variable out = bn1_.forward_add_relu(context, conv1_.forward(context, x));
  out = bn2_.forward_add_relu(context, conv2_.forward(context, out));
  const Variable identity = downsample_ ? downsample_->forward(context, x) : x;
  return bn3_.forward_add_relu(context, conv3_.forward(context, out), identity);
}

}  // namespace md::models
