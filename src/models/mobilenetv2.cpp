// MobileNetV2 (Sandler et al. 2018) as torchvision's mobilenet_v2 (width 1.0): names
// features.<i>.*, inverted residual blocks features.<i>.conv.*, classifier.1; depthwise
// convolutions through groups. Two variants:
//   mobilenetv2        torchvision's exactly (stem stride 2, total stride 32);
//   mobilenetv2_cifar  the stem convolution at stride 1 (total stride 16: 2x2 maps at 32x32).
// Differences from torchvision: no Dropout(0.2) before classifier.1 (the engine has no dropout;
// PyTorch fixtures compare with p = 0), and ReLU6 is relu(x) - relu(x - 6) over the engine's
// differentiable functions (the same values; x − fl(x − 6) is exact for x ≤ 12).
// Stages: features[0..3] (24 ch), [4..6] (32), [7..13] (96), [14..18] (1280).
// Initialization as torchvision: convolutions kaiming normal (fan_out), BN 1/0, the linear
// layer N(0, 0.01²) with zero bias.
#include <optional>

#include "autograd/functions.h"
#include "backend/backend.h"
#include "models/families.h"
#include "nn/module.h"

namespace md::models {
namespace {

using autograd::Variable;

class ReLU6 final : public nn::Module {
 public:
  Variable forward(const nn::ForwardContext&, const Variable& x) const override {
    Tensor shift = Tensor::empty(x.shape(), x.value().dtype(), x.value().device());
    backend::of(shift).fill(shift, -6.0);
    const Variable shifted = autograd::add(x, Variable(shift));
    return autograd::weighted_sum({autograd::relu(x), autograd::relu(shifted)}, {1.0, -1.0});
  }
};

nn::Conv2dSpec mobilenet_conv(int in_channels, int out_channels, int kernel, int stride,
                              int groups) {
  return nn::Conv2dSpec{.in_channels = in_channels,
                        .out_channels = out_channels,
                        .kernel = kernel,
                        .params = {.stride = stride, .padding = (kernel - 1) / 2, .groups = groups},
                        .bias = nn::Bias::Without,
                        .init = nn::InitKind::KaimingNormalFanOut};
}

// torchvision's Conv2dNormActivation: <name>.0 conv, <name>.1 BN, ReLU6.
void add_conv_bn_relu6(nn::Sequential& sequence, nn::ModelLayout& layout, const std::string& name,
                       const nn::Conv2dSpec& conv) {
  sequence.emplace<nn::Conv2d>(layout, nn::join(name, "0"), conv);
  sequence.emplace<nn::BatchNorm2d>(layout, nn::join(name, "1"), conv.out_channels);
  sequence.emplace<ReLU6>();
}

// Expansion 1x1 (when expand_ratio > 1), depthwise 3x3 with the stride, linear 1x1 projection;
// a residual add when the stride is 1 and the widths agree.
class InvertedResidual final : public nn::Module {
 public:
  InvertedResidual(nn::ModelLayout& layout, const std::string& name, int in_channels,
                   int out_channels, int stride, int expand_ratio)
      : use_residual_(stride == 1 && in_channels == out_channels) {
    const int hidden = in_channels * expand_ratio;
    const std::string conv = nn::join(name, "conv");
    int index = 0;
    if (expand_ratio != 1) {
      add_conv_bn_relu6(body_, layout, nn::join(conv, std::to_string(index++)),
                        mobilenet_conv(in_channels, hidden, 1, 1, 1));
    }
    add_conv_bn_relu6(body_, layout, nn::join(conv, std::to_string(index++)),
                      mobilenet_conv(hidden, hidden, 3, stride, hidden));
    body_.emplace<nn::Conv2d>(layout, nn::join(conv, std::to_string(index++)),
                              mobilenet_conv(hidden, out_channels, 1, 1, 1));
    body_.emplace<nn::BatchNorm2d>(layout, nn::join(conv, std::to_string(index)), out_channels);
  }

  // x: (N, in, H, W) -> (N, out, H / stride, W / stride)
  Variable forward(const nn::ForwardContext& context, const Variable& x) const override {
    Variable out = body_.forward(context, x);
    return use_residual_ ? autograd::add(x, out) : out;
  }

 private:
  bool use_residual_;
  nn::Sequential body_;
};

struct InvertedResidualSetting {
  int expand_ratio;
  int channels;
  int repeats;
  int stride;
};

class MobileNetV2 final : public Network {
 public:
  MobileNetV2(const ModelSpec& spec, int stem_stride) : Network(spec.arch) {
    constexpr int kStemChannels = 32;
    constexpr int kLastChannels = 1280;
    const InvertedResidualSetting settings[] = {{1, 16, 1, 1}, {6, 24, 2, 2}, {6, 32, 3, 2},
                                                {6, 64, 4, 2}, {6, 96, 3, 1}, {6, 160, 3, 2},
                                                {6, 320, 1, 1}};
    // The last features index of each stage (inclusive); the final stage ends at features.18.
    const int stage_ends[] = {3, 6, 13, 18};

    nn::Sequential stage;
    int index = 0;
    int stride = stem_stride;
    auto close_stage_if_done = [&](int channels) {
      if (index - 1 == stage_ends[stages_.size()]) {
        stages_.push_back(std::move(stage));
        stage = nn::Sequential();
        stage_channels_.push_back(channels);
        stage_strides_.push_back(stride);
      }
    };
    add_conv_bn_relu6(stage, layout_, "features." + std::to_string(index++),
                      mobilenet_conv(spec.in_channels, kStemChannels, 3, stem_stride, 1));
    int in_channels = kStemChannels;
    for (const InvertedResidualSetting& setting : settings) {
      for (int i = 0; i < setting.repeats; ++i) {
        const int block_stride = i == 0 ? setting.stride : 1;
        stage.emplace<InvertedResidual>(layout_, "features." + std::to_string(index++), in_channels,
                                        setting.channels, block_stride, setting.expand_ratio);
        stride *= block_stride;
        in_channels = setting.channels;
        close_stage_if_done(in_channels);
      }
    }
    add_conv_bn_relu6(stage, layout_, "features." + std::to_string(index++),
                      mobilenet_conv(in_channels, kLastChannels, 1, 1, 1));
    close_stage_if_done(kLastChannels);
    classifier_.emplace(layout_, "classifier.1",
                        nn::LinearSpec{.in_features = kLastChannels,
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

std::unique_ptr<Network> make_mobilenetv2(const ModelSpec& spec) {
  if (spec.arch == "mobilenetv2") return std::make_unique<MobileNetV2>(spec, 2);
  if (spec.arch == "mobilenetv2_cifar") return std::make_unique<MobileNetV2>(spec, 1);
  return nullptr;
}

std::vector<std::string> mobilenetv2_architectures() {
  return {"mobilenetv2", "mobilenetv2_cifar"};
}

}  // namespace md::models
