// What the label generator's soft targets say about a batch, for the trial log (issue: "evidence
// that the generator learns"): per shallow head s, the mean entropy of softmax(u_s/T) in nats,
// the share of samples whose target's argmax is the label, and the share whose target's argmax is
// the deepest head's. Computed on the host from one batch's values at log rows only, so a step
// never waits on the device for them. A tie counts as agreement only when the named class is
// strictly the highest score (the first argmax is taken, as in evaluation).
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "core/tensor.h"

namespace md::train {

struct TargetStatistics {
  std::vector<double> entropy;          // per shallow head, nats (log K: uniform targets)
  std::vector<double> label_agreement;  // per shallow head, in [0, 1]
  std::vector<double> final_agreement;  // per shallow head, in [0, 1]
  std::int64_t samples = 0;             // rows these are means over
};

// targets: per shallow head (N, K) generator logits u_s; deepest_logits: (N, K) the final head's
// logits; labels: (N) int32. Any device (copied to the host).
TargetStatistics target_statistics(const std::vector<Tensor>& targets, const Tensor& deepest_logits,
                                   const Tensor& labels, double temperature);

// Sample-weighted running means of TargetStatistics over an epoch (checkpointed as plain sums).
class TargetStatisticsMean {
 public:
  void add(const TargetStatistics& batch);
  bool empty() const { return samples_ == 0; }
  // {"gen_entropy_head<s>", "gen_label_agreement_head<s>", "gen_final_agreement_head<s>"}
  std::map<std::string, double> means() const;
  // The sums, by name, for a checkpoint, and back; an absent sum is zero (older checkpoints).
  std::map<std::string, double> sums() const;
  void restore(const std::map<std::string, double>& sums);
  void clear() { *this = TargetStatisticsMean(); }

 private:
  std::vector<double> entropy_, label_agreement_, final_agreement_;
  double samples_ = 0.0;
};

// The per-row names of one statistic of head s, as the trial log spells them.
std::map<std::string, double> target_statistics_row(const TargetStatistics& statistics);

}  // namespace md::train
