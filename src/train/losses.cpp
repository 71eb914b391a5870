#include "train/losses.h"

#include "autograd/functions.h"
#include "core/error.h"

namespace md::train {

using autograd::Variable;

double LossSpec::kd_weight() const {
  return kd_temperature_squared ? alpha : alpha / (temperature * temperature);
}

double LossSpec::deepest_ce_weight() const {
  if (method == MethodKind::Baseline || deepest_ce == DeepestCe::One) return 1.0;
  return 1.0 - alpha;
}

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
  const double final_weight = spec.deepest_ce_weight();
  parts.push_back(final_ce);
  weights.push_back(final_weight);
  terms.ce.push_back({final_ce, final_weight});
  if (spec.method != MethodKind::Baseline) {
    MD_CHECK(teachers.size() + 1 == heads, "expected ", heads - 1, " teacher targets, got ",
             teachers.size());
    const Variable deepest_features = output.head_features.back().detach();
    const double kd_weight = spec.kd_weight();
    for (std::size_t s = 0; s + 1 < heads; ++s) {
      Variable ce = autograd::cross_entropy(output.logits[s], labels, spec.label_smoothing);
      Variable kd = autograd::kl_div(output.logits[s], teachers[s], spec.temperature);
      parts.push_back(ce);
      weights.push_back(1.0 - spec.alpha);
      parts.push_back(kd);
      weights.push_back(kd_weight);
      terms.ce.push_back({ce, 1.0 - spec.alpha});
      terms.kd.push_back({kd, kd_weight});
      if (spec.hint > 0.0) {
        // autograd::mse is the mean over all elements; the sum is that mean times their count.
        Variable hint = autograd::mse(output.head_features[s], deepest_features);
        const double hint_weight =
            spec.hint_reduction == HintReduction::Sum
                ? spec.hint * static_cast<double>(output.head_features[s].value().numel())
                : spec.hint;
        parts.push_back(hint);
        weights.push_back(hint_weight);
        terms.hint.push_back({hint, hint_weight});
      }
    }
  }
  terms.total = autograd::weighted_sum(parts, weights);
  return terms;
}

}  // namespace md::train
