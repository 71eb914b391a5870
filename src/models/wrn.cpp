// Wide ResNets wrn_D_K (Zagoruyko & Komodakis 2016): pre-activation, CIFAR, (D - 4) / 6 blocks
// per stage, widths 16K/32K/64K. torchvision has no such model: the names and the block are
// those of the widely used PyTorch port (xternalz/WideResNet-pytorch, also RepDistiller), so
// its checkpoints load: conv1, block<i>.layer.<j>.{bn1, conv1, bn2, conv2, convShortcut}, bn1,
// fc. No dropout. The third stage ends with the final BN + ReLU (the head's input).
// Initialization as that port: convolutions kaiming normal (fan_out), BN 1/0; fc PyTorch's
// default.
#include <optional>

#include "autograd/functions.h"
#include "core/error.h"
#include "models/blocks.h"
#include "models/families.h"

namespace md::models {
namespace {

using autograd::Variable;

// bn1, relu, conv1 (3x3, stride), bn2, relu, conv2 (3x3); the shortcut is x when the widths
// agree, else a 1x1 strided convolution of the pre-activated x (convShortcut).
class WideBasicBlock final : public nn::Module {
 public:
  WideBasicBlock(nn::ModelLayout& layout, const std::string& name, int in_channels,
                 int out_channels, int stride)
      : bn1_(layout, nn::join(name, "bn1"), in_channels),
        conv1_(layout, nn::join(name, "conv1"), resnet_conv(in_channels, out_channels, 3, stride)),
        bn2_(layout, nn::join(name, "bn2"), out_channels),
        conv2_(layout, nn::join(name, "conv2"), resnet_conv(out_channels, out_channels, 3, 1)) {
    MD_CHECK(in_channels != out_channels || stride == 1, name,
             ": a block without shortcut convolution cannot have stride ", stride);
    if (in_channels != out_channels) {
      shortcut_.emplace(layout, nn::join(name, "convShortcut"),
                        resnet_conv(in_channels, out_channels, 1, stride));
    }
  }

  // x: (N, in, H, W) -> (N, out, H / stride, W / stride)
  Variable forward(const nn::ForwardContext& context, const Variable& x) const override {
    const Variable activated = bn1_.forward_add_relu(context, x);
    Variable out = bn2_.forward_add_relu(context, conv1_.forward(context, activated));
    out = conv2_.forward(context, out);
    const Variable shortcut = shortcut_ ? shortcut_->forward(context, activated) : x;
    return autograd::add(shortcut, out);
  }

 private:
  nn::BatchNorm2d bn1_;
  nn::Conv2d conv1_;
  nn::BatchNorm2d bn2_;
  nn::Conv2d conv2_;
  std::optional<nn::Conv2d> shortcut_;
};

class WideResNet final : public Network {
 public:
  WideResNet(const ModelSpec& spec, int depth, int width)
      : Network(spec.arch), conv1_(layout_, "conv1", resnet_conv(spec.in_channels, 16, 3, 1)) {
    const int blocks = (depth - 4) / 6;
    int in_channels = 16;
    for (int s = 0; s < 3; ++s) {
      const int out_channels = (16 << s) * width;
      const std::string stage_name = "block" + std::to_string(s + 1) + ".layer";
      nn::Sequential stage;
      for (int b = 0; b < blocks; ++b) {
        stage.emplace<WideBasicBlock>(layout_, nn::join(stage_name, std::to_string(b)), in_channels,
                                      out_channels, (s > 0 && b == 0) ? 2 : 1);
        in_channels = out_channels;
      }
      stages_.push_back(std::move(stage));
      stage_channels_.push_back(out_channels);
      stage_strides_.push_back(1 << s);
    }
    bn_final_.emplace(layout_, "bn1", in_channels);
    fc_.emplace(layout_, "fc",
                nn::LinearSpec{.in_features = in_channels, .out_features = spec.num_classes});
  }

  std::vector<int> stage_channels() const override { return stage_channels_; }
  std::vector<int> stage_strides() const override { return stage_strides_; }

 protected:
  NetworkOutput forward_stages(const nn::ForwardContext& context, const Variable& x,
                               int stage_count) const override {
    Variable h = conv1_.forward(context, x);
    NetworkOutput output;
    for (std::size_t s = 0; s < static_cast<std::size_t>(stage_count); ++s) {
      h = stages_[s].forward(context, h);
      if (s + 1 == stages_.size()) h = bn_final_->forward_add_relu(context, h);
      output.stage_features.push_back(h);
    }
    if (stage_count == num_stages()) {
      output.logits = fc_->forward(context, autograd::global_avg_pool(h));
    }
    return output;
  }

 private:
  nn::Conv2d conv1_;
  std::vector<nn::Sequential> stages_;
  std::optional<nn::BatchNorm2d> bn_final_;
  std::optional<nn::Linear> fc_;
  std::vector<int> stage_channels_;
  std::vector<int> stage_strides_;
};

// "wrn_<D>_<K>" -> (D, K); nullopt when the name is not of that form at all.
std::optional<std::pair<int, int>> parse_wrn(const std::string& arch) {
  const std::string prefix = "wrn_";
  if (arch.rfind(prefix, 0) != 0) return std::nullopt;
  const std::string rest = arch.substr(prefix.size());
  const auto separator = rest.find('_');
  auto parse_int = [&](const std::string& text) {
    MD_INPUT_CHECK(!text.empty() && text.size() <= 6 &&
                       text.find_first_not_of("0123456789") == std::string::npos,
                   "architecture '", arch, "' is not of the form wrn_<depth>_<width>");
    return std::stoi(text);
  };
  MD_INPUT_CHECK(separator != std::string::npos, "architecture '", arch,
                 "' is not of the form wrn_<depth>_<width>");
  return std::make_pair(parse_int(rest.substr(0, separator)),
                        parse_int(rest.substr(separator + 1)));
}

}  // namespace

std::unique_ptr<Network> make_wide_resnet(const ModelSpec& spec) {
  const auto parsed = parse_wrn(spec.arch);
  if (!parsed) return nullptr;
  const auto [depth, width] = *parsed;
  MD_INPUT_CHECK(depth >= 10 && (depth - 4) % 6 == 0, "architecture '", spec.arch, "': depth ",
                 depth, " must be at least 10 with (depth - 4) % 6 == 0 (e.g. 16, 28, 40)");
  MD_INPUT_CHECK(width >= 1, "architecture '", spec.arch, "': width must be at least 1");
  return std::make_unique<WideResNet>(spec, depth, width);
}

std::vector<std::string> wide_resnet_architectures() {
  return {"wrn_16_1",  "wrn_16_2", "wrn_16_4", "wrn_16_8",
          "wrn_28_10", "wrn_40_1", "wrn_40_2", "wrn_40_4"};
}

}  // namespace md::models
