// The label generator G_φ of MetaDistiller (DESIGN.md §1): fuses the (detached) stage
// features top-down like a feature pyramid and gives target logits for every shallow head.
//   P_S = lateral_S(F_S);  P_s = lateral_s(F_s) + resize(P_{s+1} to F_s's size)
//   u_s = linear(global_pool(relu(conv3x3(P_s))))      for s = 0 .. S-2
// Its parameters `gen.*` have their own layout and flat buffers (own optimizer); it is used only
// in training, so inference costs the backbone alone. It has no batch norm: its output must
// depend on its inputs and φ only, which the finite-difference meta-gradient assumes.
#pragma once

#include <memory>
#include <vector>

#include "nn/module.h"

namespace md::models {

struct LabelGeneratorSpec {
  std::vector<int> stage_channels;  // C_s of each stage
  int width = 128;                  // method.meta.generator_width
  int num_classes = 100;
  ResizeMode resize = ResizeMode::Nearest;
};

class LabelGenerator {
 public:
  explicit LabelGenerator(const LabelGeneratorSpec& spec);
  const nn::ModelLayout& layout() const { return layout_; }
  // stage_features[s]: (N, C_s, H_s, W_s), spatial sizes non-increasing with s.
  // Returns u_s: (N, K) for s = 0 .. S-2.
  std::vector<autograd::Variable> forward(const nn::ForwardContext& context,
                                          const std::vector<autograd::Variable>& stage_features) const;

 private:
  LabelGeneratorSpec spec_;
  nn::ModelLayout layout_;
  std::vector<std::unique_ptr<nn::Conv2d>> laterals_;
  std::vector<std::unique_ptr<nn::Conv2d>> smooth_;
  std::vector<std::unique_ptr<nn::Linear>> classifiers_;
};

}  // namespace md::models
