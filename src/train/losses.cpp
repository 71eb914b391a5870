#include "train/losses.h"

#include "autograd/functions.h"
#include "core/error.h"

namespace md::train {

using autograd::Variable;

double LossTerms::value(const std::vector<Weighted>& terms) {
  double total = 0.0;
  for (const Weighted& weighted : terms) total += weighted.weight * weighted.term.value().item();
  return total;
}

LossTerms student_loss(const LossSpec& spec, const models::StudentOutput& output,
                       const Tensor& labels, const std::vector<Variable>& teachers) {
  const std::size_t heads = output.logits.size();
  LossTerms terms;
  std::vector<Variable> parts;
  std::vector<double> weights;
  Variable final_ce = autograd::cross_entropy(output.logits.back(), labels, spec.label_smoothing);
  parts.push_back(final_ce);
  weights.push_back(1.0);
  terms.ce.push_back({final_ce, 1.0});
  if (spec.method != MethodKind::Baseline) {
    MD_CHECK(teachers.size() + 1 == heads, "expected ", heads - 1, " teacher targets, got ",
             teachers.size());
    const Variable deepest_features = output.head_features.back().detach();
    for (std::size_t s = 0; s + 1 < heads; ++s) {
      Variable ce = autograd::cross_entropy(output.logits[s], labels, spec.label_smoothing);
      Variable kd = autograd::kl_div(output.logits[s], teachers[s], spec.temperature);
      parts.push_back(ce);
      weights.push_back(1.0 - spec.alpha);
      parts.push_back(kd);
      weights.push_back(spec.alpha);
      terms.ce.push_back({ce, 1.0 - spec.alpha});
      terms.kd.push_back({kd, spec.alpha});
      if (spec.hint > 0.0) {
        Variable hint = autograd::mse(output.head_features[s], deepest_features);
        parts.push_back(hint);
        weights.push_back(spec.hint);
        terms.hint.push_back({hint, spec.hint});
      }
    }
  }
  terms.total = autograd::weighted_sum(parts, weights);
  return terms;
}

}  // namespace md::train
