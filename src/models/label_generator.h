// The label generator G_φ of MetaDistiller (DESIGN.md §1): fuses the (detached) stage
// features top-down like a feature pyramid and gives target logits for every shallow head.
//   P_S = lateral_S(F_S);  P_s = lateral_s(F_s) + resize(P_{s+1} to F_s's size)
//   u_s = linear(global_pool(relu(conv3x3(P_s))))      for s = 0 .. S-2
// Where the fusion and the 3x3 smoothing run is a choice (GeneratorResolution):
// - Stage: each P_s at its own stage's resolution, as written above. The 3x3 conv at stage 0's
//   full resolution then costs more than the whole student (resnet20 at 32x32: 151 M MACs per
//   image for stage 0's smoothing alone, 41 M for the student).
// - Deepest (default): every F_s is first average-pooled to the deepest stage's grid (kernel =
//   stride = H_s / H_S); laterals, the top-down sum and the smoothing run there:
//     Q_S = lateral_S(F_S);  Q_s = lateral_s(avgpool(F_s)) + resize(Q_{s+1} to that size)
//     u_s = linear(global_pool(relu(conv3x3(Q_s))))
//   When every stage size is a whole multiple of the deepest one (the usual case) Q_s is exactly
//   avgpool(P_s): the 1x1 lateral commutes with average pooling, and pooling a nearest-upsampled
//   map by the upsampling factor returns it. So this is the Stage pyramid with its levels
//   pooled to the coarsest grid before smoothing (their outputs are globally pooled anyway).
// Both modes have the same parameters `gen.*`, so a checkpoint of one loads into the other.
// G has its own layout and flat buffers (own optimizer); it is used only in training, so
// inference costs the backbone alone. It has no batch norm: its output must depend on its
// inputs and φ only, which the finite-difference meta-gradient assumes.
#pragma once

#include <memory>
#include <vector>

#include "nn/module.h"

namespace md::models {

enum class GeneratorResolution { Stage, Deepest };

struct LabelGeneratorSpec {
  std::vector<int> stage_channels;  // C_s of each stage
  int width = 128;                  // method.meta.generator_width
  int num_classes = 100;
  ResizeMode resize = ResizeMode::Nearest;
  GeneratorResolution resolution = GeneratorResolution::Deepest;
};

class LabelGenerator {
 public:
  explicit LabelGenerator(const LabelGeneratorSpec& spec);
  const nn::ModelLayout& layout() const { return layout_; }
  const LabelGeneratorSpec& spec() const { return spec_; }
  // stage_features[s]: (N, C_s, H_s, W_s), spatial sizes non-increasing with s.
  // Returns u_s: (N, K) for s = 0 .. S-2.
  std::vector<autograd::Variable> forward(
      const nn::ForwardContext& context,
      const std::vector<autograd::Variable>& stage_features) const;

 private:
  // The fused levels (P_s or Q_s) for s = 0 .. S-1, each (N, width, h_s, w_s).
  std::vector<autograd::Variable> pyramid(
      const nn::ForwardContext& context,
      const std::vector<autograd::Variable>& stage_features) const;

  LabelGeneratorSpec spec_;
  nn::ModelLayout layout_;
  std::vector<std::unique_ptr<nn::Conv2d>> laterals_;
  std::vector<std::unique_ptr<nn::Conv2d>> smooth_;
  std::vector<std::unique_ptr<nn::Linear>> classifiers_;
};

}  // namespace md::models
