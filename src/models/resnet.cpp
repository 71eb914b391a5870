// ResNets (DESIGN.md §4): torchvision's resnet18/34/50/101/152 (ImageNet stem: 7x7/2 conv,
// BN, ReLU, 3x3/2 max-pool), their *_cifar variants (conv1 3x3 stride 1 without bias, no
// max-pool), and He et al.'s CIFAR ResNet-20/32/56/110 (16/32/64 channels, 3 stages of
// BasicBlocks; option-B shortcuts: 1x1 conv + BN where the shape changes). All share
// torchvision's names: conv1, bn1, layer<i>.<j>.*, fc. Stages are the layers.
#include <map>

#include "autograd/functions.h"
#include "core/error.h"
#include "models/blocks.h"
#include "models/families.h"

namespace md::models {
namespace {

using autograd::Variable;

enum class Stem { ImageNet, Cifar };
enum class BlockKind { Basic, Bottleneck };

struct ResNetConfig {
  BlockKind block = BlockKind::Basic;
  std::vector<int> blocks_per_stage;
  std::vector<int> stage_planes;
  Stem stem = Stem::ImageNet;
  int stem_channels = 64;
};

const std::map<std::string, ResNetConfig>& resnet_configs() {
  static const std::map<std::string, ResNetConfig> configs = [] {
    std::map<std::string, ResNetConfig> result;
    const std::vector<int> imagenet_planes = {64, 128, 256, 512};
    const std::vector<std::pair<std::string, ResNetConfig>> imagenet = {
        {"resnet18", {BlockKind::Basic, {2, 2, 2, 2}, imagenet_planes, Stem::ImageNet, 64}},
        {"resnet34", {BlockKind::Basic, {3, 4, 6, 3}, imagenet_planes, Stem::ImageNet, 64}},
        {"resnet50", {BlockKind::Bottleneck, {3, 4, 6, 3}, imagenet_planes, Stem::ImageNet, 64}},
        {"resnet101", {BlockKind::Bottleneck, {3, 4, 23, 3}, imagenet_planes, Stem::ImageNet, 64}},
        {"resnet152", {BlockKind::Bottleneck, {3, 8, 36, 3}, imagenet_planes, Stem::ImageNet, 64}},
    };
    for (const auto& [name, config] : imagenet) {
      result[name] = config;
      ResNetConfig cifar = config;
      cifar.stem = Stem::Cifar;
      result[name + "_cifar"] = cifar;
    }
    for (int depth : {20, 32, 56, 110}) {
      const int blocks = (depth - 2) / 6;
      result["resnet" + std::to_string(depth)] =
          ResNetConfig{BlockKind::Basic, {blocks, blocks, blocks}, {16, 32, 64}, Stem::Cifar, 16};
    }
    return result;
  }();
  return configs;
}

class ResNet final : public Network {
 public:
  ResNet(const ModelSpec& spec, const ResNetConfig& config)
      : Network(spec.arch),
        stem_downsampling_(config.stem == Stem::ImageNet ? 4 : 1),
        conv1_(layout_, "conv1",
               config.stem == Stem::ImageNet
                   ? resnet_conv(spec.in_channels, config.stem_channels, 7, 2)
                   : resnet_conv(spec.in_channels, config.stem_channels, 3, 1)),
        bn1_(layout_, "bn1", config.stem_channels) {
    const int expansion =
        config.block == BlockKind::Basic ? BasicBlock::kExpansion : Bottleneck::kExpansion;
    int in_channels = config.stem_channels;
    for (std::size_t s = 0; s < config.stage_planes.size(); ++s) {
      const std::string stage_name = "layer" + std::to_string(s + 1);
      nn::Sequential stage;
      for (int b = 0; b < config.blocks_per_stage[s]; ++b) {
        const ResidualBlockSpec block{.in_channels = in_channels,
                                      .planes = config.stage_planes[s],
                                      .stride = (s > 0 && b == 0) ? 2 : 1};
        const std::string name = nn::join(stage_name, std::to_string(b));
        if (config.block == BlockKind::Basic) {
          stage.emplace<BasicBlock>(layout_, name, block);
        } else {
          stage.emplace<Bottleneck>(layout_, name, block);
        }
        in_channels = config.stage_planes[s] * expansion;
      }
      stages_.push_back(std::move(stage));
      stage_channels_.push_back(in_channels);
      stage_strides_.push_back(stem_downsampling_ << s);
    }
    fc_.emplace(layout_, "fc",
                nn::LinearSpec{.in_features = in_channels, .out_features = spec.num_classes});
  }

  std::vector<int> stage_channels() const override { return stage_channels_; }
  std::vector<int> stage_strides() const override { return stage_strides_; }

 protected:
  NetworkOutput forward_stages(const nn::ForwardContext& context, const Variable& x,
                               int stage_count) const override {
    Variable h = bn1_.forward_add_relu(context, conv1_.forward(context, x));
    if (stem_downsampling_ > 1) {
      h = autograd::max_pool2d(h, Pool2dParams{.kernel = 3, .stride = 2, .padding = 1});
    }
    NetworkOutput output;
    for (int s = 0; s < stage_count; ++s) {
      h = stages_[static_cast<std::size_t>(s)].forward(context, h);
      output.stage_features.push_back(h);
    }
    if (stage_count == num_stages()) {
      output.logits = fc_->forward(context, autograd::global_avg_pool(h));
    }
    return output;
  }

 private:
  int stem_downsampling_;
  nn::Conv2d conv1_;
  nn::BatchNorm2d bn1_;
  std::vector<nn::Sequential> stages_;
  std::optional<nn::Linear> fc_;
  std::vector<int> stage_channels_;
  std::vector<int> stage_strides_;
};

}  // namespace

std::unique_ptr<Network> make_resnet(const ModelSpec& spec) {
  const auto& configs = resnet_configs();
  auto it = configs.find(spec.arch);
  if (it == configs.end()) return nullptr;
  return std::make_unique<ResNet>(spec, it->second);
}

std::vector<std::string> resnet_architectures() {
  std::vector<std::string> names;
  for (const std::string base : {"resnet18", "resnet34", "resnet50", "resnet101", "resnet152"}) {
    names.push_back(base);
  }
  for (const std::string base : {"resnet18", "resnet34", "resnet50", "resnet101", "resnet152"}) {
    names.push_back(base + "_cifar");
  }
  for (const std::string name : {"resnet20", "resnet32", "resnet56", "resnet110"}) {
    names.push_back(name);
  }
  return names;
}

}  // namespace md::models
