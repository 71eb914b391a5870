// Top-1 and top-5 counting (see evaluation.h). The ensemble sums the heads' logits in double:
// its ranking is that of their mean.
#include "train/evaluation.h"

#include <algorithm>
#include <cmath>

#include "core/error.h"

namespace md::train {

std::int64_t label_rank(const double* scores, std::int64_t classes, std::int64_t label) {
  const double target = scores[label];
  std::int64_t rank = 0;
  for (std::int64_t k = 0; k < classes; ++k) {
    if (k == label) continue;
    const double score = scores[k];
    // Equal scores (or two NaNs): the lower index first; else NaN first, then the higher score.
    const bool equal = score == target || (std::isnan(score) && std::isnan(target));
    if (equal ? k < label : (std::isnan(score) || (!std::isnan(target) && score > target))) {
      ++rank;
    }
  }
  return rank;
}

void count_hits(AccuracyCounts& counts, const std::vector<Tensor>& head_logits,
                const Tensor& labels) {
  const auto heads = static_cast<std::size_t>(counts.heads());
  MD_CHECK(head_logits.size() == heads, "count_hits: ", head_logits.size(), " heads, counts for ",
           heads);
  MD_CHECK(labels.ndim() == 1, "count_hits: labels must be 1-D, got ", labels.describe());
  const std::int64_t rows = labels.dim(0);
  if (rows == 0) return;
  const std::int64_t classes = head_logits.back().dim(1);
  std::vector<std::vector<float>> logits;
  for (const Tensor& head : head_logits) {
    MD_CHECK(head.ndim() == 2 && head.dim(0) == rows && head.dim(1) == classes,
             "count_hits: logits ", head.describe(), " for ", rows, " labels of ", classes,
             " classes");
    logits.push_back(head.to_vector<float>());
  }
  const std::vector<std::int32_t> label_values = labels.to_vector<std::int32_t>();
  std::vector<double> scores(static_cast<std::size_t>(classes));
  std::vector<double> ensemble(static_cast<std::size_t>(classes));
  auto add = [&](const std::vector<double>& row, std::int64_t label, std::size_t output) {
    const std::int64_t rank = label_rank(row.data(), classes, label);
    counts.top1[output] += rank < 1 ? 1.0 : 0.0;
    counts.top5[output] += rank < 5 ? 1.0 : 0.0;
  };
  for (std::int64_t i = 0; i < rows; ++i) {
    const std::int64_t label = label_values[static_cast<std::size_t>(i)];
    MD_CHECK(label >= 0 && label < classes, "count_hits: label ", label, " outside [0, ", classes,
             ")");
    std::fill(ensemble.begin(), ensemble.end(), 0.0);
    for (std::size_t h = 0; h < heads; ++h) {
      const float* row = logits[h].data() + i * classes;
      for (std::int64_t k = 0; k < classes; ++k) {
        scores[static_cast<std::size_t>(k)] = row[k];
        ensemble[static_cast<std::size_t>(k)] += row[k];
      }
      add(scores, label, h);
    }
    add(ensemble, label, heads);
  }
  counts.count += static_cast<double>(rows);
}

std::map<std::string, double> accuracy_metrics(const AccuracyCounts& counts, std::int64_t classes) {
  const bool with_top5 = classes > 5;
  const int heads = counts.heads();
  std::map<std::string, double> metrics;
  for (int o = 0; o <= heads; ++o) {
    const auto index = static_cast<std::size_t>(o);
    const std::string name = o == heads ? "ensemble" : "head" + std::to_string(o);
    const double top1 = counts.top1[index] / counts.count;
    const double top5 = counts.top5[index] / counts.count;
    metrics["test_acc_" + name] = top1;
    if (with_top5) metrics["test_top5_" + name] = top5;
    if (o + 1 == heads) {
      metrics["test_acc_final"] = top1;
      if (with_top5) metrics["test_top5_final"] = top5;
    }
  }
  return metrics;
}

}  // namespace md::train
