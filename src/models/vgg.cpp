// VGG with batch norm (vgg11/13/16/19_bn): torchvision's `features` (3x3 conv with bias, BN,
// ReLU per entry of the configuration, 2x2 max-pool per "M", numbered as torchvision's
// nn.Sequential: features.<i>.*) and a CIFAR head: global average pooling (a no-op on the 1x1
// map of a 32x32 input; any input size works) and one Linear(512, num_classes) named
// "classifier" (torchvision's 4096-wide classifier is meant for 224x224 inputs). One stage per
// max-pool block. Initialization as torchvision's VGG: convolutions kaiming normal (fan_out)
// with zero bias, BN 1/0, the linear layer N(0, 0.01²) with zero bias.
#include <map>
#include <optional>

#include "autograd/functions.h"
#include "models/families.h"
#include "nn/module.h"

namespace md::models {
namespace {

using autograd::Variable;

constexpr int kMaxPool = 0;  // the "M" entries of torchvision's configurations

const std::map<std::string, std::vector<int>>& vgg_configs() {
  static const std::map<std::string, std::vector<int>> configs = {
      {"vgg11_bn",
       {64, kMaxPool, 128, kMaxPool, 256, 256, kMaxPool, 512, 512, kMaxPool, 512, 512, kMaxPool}},
      {"vgg13_bn",
       {64, 64, kMaxPool, 128, 128, kMaxPool, 256, 256, kMaxPool, 512, 512, kMaxPool, 512, 512,
        kMaxPool}},
      {"vgg16_bn",
       {64, 64, kMaxPool, 128, 128, kMaxPool, 256, 256, 256, kMaxPool, 512, 512, 512, kMaxPool, 512,
        512, 512, kMaxPool}},
      {"vgg19_bn", {64,  64,  kMaxPool, 128, 128,      kMaxPool, 256, 256, 256, 256,     kMaxPool,
                    512, 512, 512,      512, kMaxPool, 512,      512, 512, 512, kMaxPool}},
  };
  return configs;
}

class Vgg final : public Network {
 public:
  Vgg(const ModelSpec& spec, const std::vector<int>& config) : Network(spec.arch) {
    int index = 0;  // torchvision's position in `features`
    int in_channels = spec.in_channels;
    nn::Sequential stage;
    for (int entry : config) {
      if (entry == kMaxPool) {
        stage.emplace<nn::Pool2d>(PoolKind::Max, Pool2dParams{.kernel = 2, .stride = 2});
        index += 1;
        stages_.push_back(std::move(stage));
        stage = nn::Sequential();
        stage_channels_.push_back(in_channels);
        stage_strides_.push_back(2 << static_cast<int>(stage_strides_.size()));
        continue;
      }
      stage.emplace<nn::Conv2d>(layout_, "features." + std::to_string(index),
                                nn::Conv2dSpec{.in_channels = in_channels,
                                               .out_channels = entry,
                                               .kernel = 3,
                                               .params = {.padding = 1},
                                               .bias = nn::Bias::With,
                                               .init = nn::InitKind::KaimingNormalFanOut});
      // features.<index + 2> is the ReLU, fused into the batch norm (no parameters).
      stage.emplace<nn::BatchNormReLU2d>(layout_, "features." + std::to_string(index + 1), entry);
      index += 3;
      in_channels = entry;
    }
    classifier_.emplace(layout_, "classifier",
                        nn::LinearSpec{.in_features = in_channels,
                                       .out_features = spec.num_classes,
                                       .init = nn::InitKind::Normal001});
  }

  std::vector<int> stage_channels() const override { return stage_channels_; }
  std::vector<int> stage_strides() const override { return stage_strides_; }

 protected:
  NetworkOutput forward_stages(const nn::ForwardContext& context, const Variable& x,
                               int stage_count) const override {
    NetworkOutput output;
    Variable h = x;
    for (int s = 0; s < stage_count; ++s) {
      h = stages_[static_cast<std::size_t>(s)].forward(context, h);
      output.stage_features.push_back(h);
    }
    if (stage_count == num_stages()) {
      output.logits = classifier_->forward(context, autograd::global_avg_pool(h));
    }
    return output;
  }

 private:
  std::vector<nn::Sequential> stages_;
  std::optional<nn::Linear> classifier_;
  std::vector<int> stage_channels_;
  std::vector<int> stage_strides_;
};

}  // namespace

std::unique_ptr<Network> make_vgg(const ModelSpec& spec) {
  const auto& configs = vgg_configs();
  auto it = configs.find(spec.arch);
  if (it == configs.end()) return nullptr;
  return std::make_unique<Vgg>(spec, it->second);
}

std::vector<std::string> vgg_architectures() {
  return {"vgg11_bn", "vgg13_bn", "vgg16_bn", "vgg19_bn"};
}

}  // namespace md::models
