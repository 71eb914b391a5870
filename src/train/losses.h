// The student loss of every method (DESIGN.md §1), as one function of the heads' logits:
//   baseline:       CE(z_S, y)
//   byot, meta:     Σ_{s<S} [(1−α)·CE(z_s, y) + α·τ·KL(softmax(t_s/T) ‖ softmax(z_s/T))]
//                   + w_S·CE(z_S, y) + β·Σ_{s<S} D(h_s, detach(h_S))
// where t_s is detach(z_S) for BYOT and the label generator's u_s for MetaDistiller, and, by
// LossSpec (defaults first; the public BYOT code's choices in docs/byot_reference.md):
//   τ   = T² (kd_temperature_squared) or 1;
//   w_S = 1 (DeepestCe::One) or 1 − α (DeepestCe::OneMinusAlpha; baseline: always 1);
//   D   = the mean of (h_s − h_S)² over its N×W elements (HintReduction::Mean) or their sum
//         (HintReduction::Sum: BYOT's feature_loss_function, which grows with the batch).
#pragma once

#include <vector>

#include "autograd/variable.h"
#include "models/student.h"

namespace md::train {

enum class MethodKind { Baseline, Byot, MetaDistiller };
// The deepest head's CE weight in byot and metadistiller (method.deepest_ce).
enum class DeepestCe { One, OneMinusAlpha };
// How the feature hint reduces (h_s − h_S)² (method.hint_reduction).
enum class HintReduction { Mean, Sum };

struct LossSpec {
  MethodKind method = MethodKind::Baseline;
  double temperature = 3.0;
  double alpha = 0.3;
  double hint = 0.0;
  double label_smoothing = 0.0;
  bool kd_temperature_squared = true;
  DeepestCe deepest_ce = DeepestCe::One;
  HintReduction hint_reduction = HintReduction::Mean;

  // The weight of autograd::kl_div (which carries T²) in the total: α, or α/T² without T².
  double kd_weight() const;
  // The weight of the deepest head's CE: 1, or 1 − α (byot and metadistiller only).
  double deepest_ce_weight() const;
};

// The weighted terms are kept as variables and read only when a log row needs them, so a
// step does not wait on the device for values nobody looks at.
struct LossTerms {
  struct Weighted {
    autograd::Variable term;
    double weight = 1.0;
  };
  autograd::Variable total;
  std::vector<Weighted> ce;    // the CE terms as weighted in the total
  std::vector<Weighted> kd;    // the KD terms as weighted in the total
  std::vector<Weighted> hint;  // the hint terms: MSE, weighted β (mean) or β·N·W (sum)

  static double value(const std::vector<Weighted>& terms);  // Σ weight·term (host sync)
};

// teachers: one (N, K) target logit tensor per shallow head (empty for the baseline).
LossTerms student_loss(const LossSpec& spec, const models::StudentOutput& output,
                       const Tensor& labels, const std::vector<autograd::Variable>& teachers);

}  // namespace md::train
