// Test accuracy, computed one way for `metadistill train` (every epoch's /epoch row) and
// `metadistill predict --config`: top-1 and top-5 of every head and of the ensemble (the mean of
// the heads' logits), counted batch by batch and turned into the log's metric names.
//
// The tie rule is PyTorch's: a row's prediction is its first maximum (torch.argmax), and the
// label is in the top k when fewer than k classes rank before it, where class j ranks before the
// label when its score is higher, or equal and j is the lower index (a stable descending sort,
// torch.topk's order on distinct scores). NaN counts as larger than every number, as in
// torch.argmax. Counts are plain sums, so the ranks of a data-parallel trial add theirs.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "core/tensor.h"

namespace md::train {

// The label's rank in a row of `classes` scores: 0 when it is the row's first maximum.
// scores: (classes)
std::int64_t label_rank(const double* scores, std::int64_t classes, std::int64_t label);

// Hits per output: the heads in order (the deepest last), then the ensemble.
struct AccuracyCounts {
  std::vector<double> top1;
  std::vector<double> top5;
  double count = 0.0;  // images counted

  explicit AccuracyCounts(int heads = 1)
      : top1(static_cast<std::size_t>(heads) + 1, 0.0),
        top5(static_cast<std::size_t>(heads) + 1, 0.0) {}
  int heads() const { return static_cast<int>(top1.size()) - 1; }
};

// Adds one batch (tensors on any device; they are read on the host). head_logits: one (N, K)
// float32 tensor per head, the deepest last; labels: (N) int32. md::Error on mismatched shapes
// or a label outside [0, K).
void count_hits(AccuracyCounts& counts, const std::vector<Tensor>& head_logits,
                const Tensor& labels);

// test_acc_head<s>, test_acc_final (the deepest head), test_acc_ensemble, and with more than 5
// classes test_top5_head<s>, test_top5_final, test_top5_ensemble: fractions of counts.count.
std::map<std::string, double> accuracy_metrics(const AccuracyCounts& counts, std::int64_t classes);

}  // namespace md::train
