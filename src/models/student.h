// The student of self-distillation: a backbone Network plus one auxiliary (shallow) classifier
// per stage but the last (DESIGN.md §1), in ONE flat parameter layout: the backbone's slots
// first (so its torchvision-named part is a prefix of every buffer), then `aux.<s>.*`. The
// deepest head is the network's own. Baseline students have no auxiliary heads.
// A forward of the auxiliary heads only (StudentHeads::Auxiliary) stops the backbone after the
// last auxiliary head's stage: the meta-gradient's θ± forwards need nothing deeper.
#pragma once

#include <memory>
#include <vector>

#include "models/model.h"
#include "nn/module.h"

namespace md::models {

enum class AuxHeads { None, Byot };

// Which heads a forward computes: all of them, or only the auxiliary (shallow) ones, with the
// backbone cut after the last stage that feeds one (the final stage and head are not run).
enum class StudentHeads { All, Auxiliary };

// Per stage and head computed (StudentHeads::Auxiliary: the final stage and head are absent).
struct StudentOutput {
  std::vector<autograd::Variable> stage_features;  // per stage, (N, C_s, H_s, W_s)
  std::vector<autograd::Variable> head_features;   // per head, pooled (N, W) before the linear
  std::vector<autograd::Variable> logits;          // per head, (N, K); the last is the final head
};

// The BYOT branch for stage s: 1x1 conv C→M, BN, ReLU; kxk conv stride k (k brings the map
// to the last stage's size; 3x3 stride 1 when k == 1), BN, ReLU; 1x1 conv M→W (W the last
// stage's width), BN, ReLU; global average pool; linear W→K. The bottleneck width M is
// ModelSpec::aux_width's (default max(8, C/4)).
class AuxHead {
 public:
  AuxHead(nn::ModelLayout& layout, const std::string& name, int in_channels, int bottleneck_width,
          int downsample, int out_width, int num_classes);
  // features: (N, W) pooled, logits: (N, K)
  void forward(const nn::ForwardContext& context, const autograd::Variable& x,
               autograd::Variable& features, autograd::Variable& logits) const;

 private:
  nn::Sequential body_;
  std::unique_ptr<nn::Linear> classifier_;
};

class Student {
 public:
  Student(const ModelSpec& spec, AuxHeads aux_heads);

  const nn::ModelLayout& layout() const { return layout_; }
  const Network& network() const { return *network_; }
  int num_heads() const { return static_cast<int>(aux_heads_.size()) + 1; }
  // Number of leading parameter / buffer elements that belong to the backbone.
  std::int64_t backbone_parameter_count() const { return backbone_parameters_; }
  std::int64_t backbone_buffer_count() const { return backbone_buffers_; }
  int num_aux_heads() const { return static_cast<int>(aux_heads_.size()); }
  // x: (N, C, H, W). StudentHeads::Auxiliary on a student without auxiliary heads throws
  // md::Error.
  StudentOutput forward(const nn::ForwardContext& context, const autograd::Variable& x,
                        StudentHeads heads = StudentHeads::All) const;

 private:
  std::unique_ptr<Network> network_;
  nn::ModelLayout layout_;
  std::int64_t backbone_parameters_ = 0;
  std::int64_t backbone_buffers_ = 0;
  std::vector<std::unique_ptr<AuxHead>> aux_heads_;
};

}  // namespace md::models
