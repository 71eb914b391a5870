// The model zoo's common interface (DESIGN.md §4): a Network owns its ModelLayout (torchvision
// names, order and shapes, so weights move between PyTorch and us) and its module tree, and
// runs on whatever flat buffers a ForwardContext names. Besides the logits it returns the
// output of every stage, for auxiliary heads and the label generator. The stage split per
// family:
//   ResNet (ImageNet and CIFAR stems): layer1..layer4, 4 stages; resnet20-style: layer1..3.
//   WRN: block1, block2, block3 + the final BN and ReLU (the head's input), 3 stages.
//   VGG: one stage per max-pool block, ending with its pool, 5 stages.
//   MobileNetV2: features[0..3], [4..6], [7..13], [14..18] (24, 32, 96, 1280 channels).
// Invariant: global_avg_pool(stage_features.back()) is the input of the head's linear layer.
// A forward may stop after a leading run of stages (ForwardScope): the meta-gradient's perturbed
// forwards need only the stages that feed auxiliary heads. Stopping early computes exactly the
// same features as the full forward, only fewer of them.
// No training logic, losses, auxiliary heads or I/O here (ModelSpec carries the auxiliary heads'
// bottleneck width only so that one spec builds a Student; Network ignores it).
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "autograd/variable.h"
#include "nn/layout.h"

namespace md::models {

// The bottleneck width of the auxiliary (BYOT) branch of stage s (method.aux.width), read by
// Student only:
//   InputQuarter:     max(8, C_s / 4), C_s the stage's own width (our default);
//   LastStageQuarter: C_last / 4, the last stage's width (the public BYOT code's branchBottleNeck:
//                     128 for every resnet18 head);
//   Fixed:            `channels` for every head.
enum class AuxWidthRule { InputQuarter, LastStageQuarter, Fixed };
struct AuxWidth {
  AuxWidthRule rule = AuxWidthRule::InputQuarter;
  int channels = 0;  // Fixed only
  // The bottleneck width for a stage of `stage_channels` in a network whose last stage has
  // `last_stage_channels`.
  int bottleneck(int stage_channels, int last_stage_channels) const;
  bool operator==(const AuxWidth&) const = default;
};

struct ModelSpec {
  std::string arch;
  int num_classes = 100;
  int in_channels = 3;
  AuxWidth aux_width{};
};

// How far a forward runs: the first `stages` stages (kAllStages: all of them, and the head). A
// forward that stops before the last stage has no logits.
struct ForwardScope {
  static constexpr int kAllStages = -1;
  int stages = kAllStages;
};

struct NetworkOutput {
  std::vector<autograd::Variable>
      stage_features;         // per stage run, (N, C_s, H / stride_s, W / stride_s)
  autograd::Variable logits;  // (N, num_classes); undefined when the scope stops early
};

class Network {
 public:
  virtual ~Network();
  Network(const Network&) = delete;
  Network& operator=(const Network&) = delete;

  const nn::ModelLayout& layout() const { return layout_; }
  const std::string& arch() const { return arch_; }

  // x: (N, in_channels, H, W). A scope with stages outside 1..num_stages() (other than
  // kAllStages) throws md::Error.
  NetworkOutput forward(const nn::ForwardContext& context, const autograd::Variable& x,
                        const ForwardScope& scope = {}) const;
  int num_stages() const { return static_cast<int>(stage_channels().size()); }
  // Channels of each stage output.
  virtual std::vector<int> stage_channels() const = 0;
  // Total downsampling factor of each stage output relative to the input (for an input whose
  // size the factor divides).
  virtual std::vector<int> stage_strides() const = 0;

 protected:
  explicit Network(std::string arch) : arch_(std::move(arch)) {}
  // The first `stage_count` stages (1..num_stages()), and the logits when that is all of them.
  virtual NetworkOutput forward_stages(const nn::ForwardContext& context,
                                       const autograd::Variable& x, int stage_count) const = 0;
  // Subclasses register their modules here, in torchvision's order, while constructing.
  nn::ModelLayout layout_;

 private:
  std::string arch_;
};

// Builds the network named by spec.arch. An unknown or malformed name, or a class or channel
// count below 1, throws md::InputError ("unknown architecture 'x'; known: ..."; train::Learner
// prefixes the config key model.arch, the counts being checked against the data before).
std::unique_ptr<Network> make_network(const ModelSpec& spec);

// The architecture names make_network accepts (wrn_D_K: examples; any depth with
// (D - 4) % 6 == 0 and any width K >= 1 is accepted).
std::vector<std::string> known_architectures();

}  // namespace md::models
