// The student loss of every method (DESIGN.md §1), as one function of the heads' logits:
//   baseline:       CE(z_S, y)
//   byot, meta:     Σ_{s<S} [(1−α)·CE(z_s, y) + α·T²·KL(softmax(t_s/T) ‖ softmax(z_s/T))]
//                   + CE(z_S, y) + β·Σ_{s<S} MSE(h_s, detach(h_S))
// where t_s is detach(z_S) for BYOT and the label generator's u_s for MetaDistiller.
#pragma once

#include <vector>

#include "autograd/variable.h"
#include "models/student.h"

namespace md::train {

enum class MethodKind { Baseline, Byot, MetaDistiller };

struct LossSpec {
  MethodKind method = MethodKind::Baseline;
  double temperature = 3.0;
  double alpha = 0.3;
  double hint = 0.0;
  double label_smoothing = 0.0;
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
  std::vector<Weighted> hint;  // β·MSE terms

  static double value(const std::vector<Weighted>& terms);  // Σ weight·term (host sync)
};

// teachers: one (N, K) target logit tensor per shallow head (empty for the baseline).
LossTerms student_loss(const LossSpec& spec, const models::StudentOutput& output,
                       const Tensor& labels, const std::vector<autograd::Variable>& teachers);

}  // namespace md::train
