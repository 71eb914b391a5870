// Residual blocks of torchvision's ResNet (torchvision.models.resnet.BasicBlock / Bottleneck,
// the v1.5 Bottleneck with the stride on its 3x3 convolution), with torchvision's names:
// conv1/bn1/conv2/bn2[/conv3/bn3] and the projection shortcut downsample.0 (1x1 conv, stride)
// + downsample.1 (BN), registered in that order. Used by resnet.cpp for every ResNet of the
// zoo. Blocks hold slot indices only (nn::Module), never tensors.
#pragma once

#include <optional>
#include <string>

#include "nn/module.h"

namespace md::models {

struct ResidualBlockSpec {
  int in_channels = 0;
  int planes = 0;  // width of the 3x3 convolution(s); the output has planes * expansion channels
  int stride = 1;
};

// A bias-free convolution initialized as torchvision's ResNet does (kaiming normal, fan_out).
nn::Conv2dSpec resnet_conv(int in_channels, int out_channels, int kernel, int stride);

// The projection shortcut, present when the stride or the channel count changes.
class Downsample {
 public:
  Downsample(nn::ModelLayout& layout, const std::string& name, int in_channels, int out_channels,
             int stride);
  autograd::Variable forward(const nn::ForwardContext& context, const autograd::Variable& x) const;

 private:
  nn::Conv2d conv_;
  nn::BatchNorm2d bn_;
};

// relu(bn2(conv2(relu(bn1(conv1(x))))) + shortcut(x)); conv1 3x3 with the stride.
class BasicBlock final : public nn::Module {
 public:
  static constexpr int kExpansion = 1;
  BasicBlock(nn::ModelLayout& layout, const std::string& name, const ResidualBlockSpec& spec);
  // x: (N, in_channels, H, W) -> (N, planes, H / stride, W / stride)
  autograd::Variable forward(const nn::ForwardContext& context,
                             const autograd::Variable& x) const override;

 private:
  nn::Conv2d conv1_;
  nn::BatchNorm2d bn1_;
  nn::Conv2d conv2_;
  nn::BatchNorm2d bn2_;
  std::optional<Downsample> downsample_;
};

// 1x1 reduce, 3x3 with the stride, 1x1 expand to planes * 4; BN after each; ReLU after the add.
class Bottleneck final : public nn::Module {
 public:
  static constexpr int kExpansion = 4;
  Bottleneck(nn::ModelLayout& layout, const std::string& name, const ResidualBlockSpec& spec);
  // x: (N, in_channels, H, W) -> (N, 4 * planes, H / stride, W / stride)
  autograd::Variable forward(const nn::ForwardContext& context,
                             const autograd::Variable& x) const override;

 private:
  nn::Conv2d conv1_;
  nn::BatchNorm2d bn1_;
  nn::Conv2d conv2_;
  nn::BatchNorm2d bn2_;
  nn::Conv2d conv3_;
  nn::BatchNorm2d bn3_;
  std::optional<Downsample> downsample_;
};

}  // namespace md::models
