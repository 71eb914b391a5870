#include "train/target_stats.h"

#include <algorithm>
#include <cmath>

#include "core/error.h"

namespace md::train {
namespace {

std::int64_t first_argmax(const float* row, std::int64_t classes) {
  return std::max_element(row, row + classes) - row;
}

std::string head_name(const char* statistic, std::size_t head) {
  return std::string("gen_") + statistic + "_head" + std::to_string(head);
}

constexpr const char* kEntropy = "entropy";
constexpr const char* kLabelAgreement = "label_agreement";
constexpr const char* kFinalAgreement = "final_agreement";
constexpr const char* kSamples = "gen_samples";

}  // namespace

TargetStatistics target_statistics(const std::vector<Tensor>& targets, const Tensor& deepest_logits,
                                   const Tensor& labels, double temperature) {
  MD_CHECK(temperature > 0.0, "target_statistics: temperature ", temperature, " is not positive");
  const std::int64_t n = labels.numel();
  const std::int64_t classes = deepest_logits.dim(1);
  const std::vector<std::int32_t> label = labels.to_vector<std::int32_t>();
  const std::vector<float> deepest = deepest_logits.to_vector<float>();
  TargetStatistics statistics;
  statistics.samples = n;
  std::vector<double> probabilities(static_cast<std::size_t>(classes));
  for (const Tensor& target : targets) {
    MD_CHECK(target.dim(0) == n && target.dim(1) == classes, "target_statistics: target ",
             target.describe(), " does not match ", n, " samples of ", classes, " classes");
    const std::vector<float> logits = target.to_vector<float>();
    double entropy = 0.0, label_hits = 0.0, final_hits = 0.0;
    for (std::int64_t i = 0; i < n; ++i) {
      const float* row = logits.data() + i * classes;
      const double top = *std::max_element(row, row + classes);
      double norm = 0.0;
      for (std::int64_t k = 0; k < classes; ++k) {
        probabilities[static_cast<std::size_t>(k)] = std::exp((row[k] - top) / temperature);
        norm += probabilities[static_cast<std::size_t>(k)];
      }
      for (double p : probabilities) {
        if (p > 0.0) entropy -= (p / norm) * std::log(p / norm);
      }
      const std::int64_t predicted = first_argmax(row, classes);
      label_hits += predicted == label[static_cast<std::size_t>(i)];
      final_hits += predicted == first_argmax(deepest.data() + i * classes, classes);
    }
    const double count = std::max<double>(1.0, static_cast<double>(n));
    statistics.entropy.push_back(entropy / count);
    statistics.label_agreement.push_back(label_hits / count);
    statistics.final_agreement.push_back(final_hits / count);
  }
  return statistics;
}

std::map<std::string, double> target_statistics_row(const TargetStatistics& statistics) {
  std::map<std::string, double> row;
  for (std::size_t s = 0; s < statistics.entropy.size(); ++s) {
    row[head_name(kEntropy, s)] = statistics.entropy[s];
    row[head_name(kLabelAgreement, s)] = statistics.label_agreement[s];
    row[head_name(kFinalAgreement, s)] = statistics.final_agreement[s];
  }
  return row;
}

void TargetStatisticsMean::add(const TargetStatistics& batch) {
  const double weight = static_cast<double>(batch.samples);
  const std::size_t heads = batch.entropy.size();
  entropy_.resize(std::max(entropy_.size(), heads), 0.0);
  label_agreement_.resize(entropy_.size(), 0.0);
  final_agreement_.resize(entropy_.size(), 0.0);
  for (std::size_t s = 0; s < heads; ++s) {
    entropy_[s] += weight * batch.entropy[s];
    label_agreement_[s] += weight * batch.label_agreement[s];
    final_agreement_[s] += weight * batch.final_agreement[s];
  }
  samples_ += weight;
}

std::map<std::string, double> TargetStatisticsMean::sums() const {
  std::map<std::string, double> sums{{kSamples, samples_}};
  for (std::size_t s = 0; s < entropy_.size(); ++s) {
    sums[head_name(kEntropy, s)] = entropy_[s];
    sums[head_name(kLabelAgreement, s)] = label_agreement_[s];
    sums[head_name(kFinalAgreement, s)] = final_agreement_[s];
  }
  return sums;
}

std::map<std::string, double> TargetStatisticsMean::means() const {
  std::map<std::string, double> means = sums();
  means.erase(kSamples);
  for (auto& [name, value] : means) value /= samples_;
  return means;
}

void TargetStatisticsMean::restore(const std::map<std::string, double>& sums) {
  clear();
  const auto sample_sum = sums.find(kSamples);
  if (sample_sum == sums.end()) return;
  samples_ = sample_sum->second;
  auto value = [&](const char* statistic, std::size_t s, double& out) {
    const auto found = sums.find(head_name(statistic, s));
    if (found == sums.end()) return false;
    out = found->second;
    return true;
  };
  for (std::size_t s = 0;; ++s) {
    double entropy = 0.0, label = 0.0, final = 0.0;
    if (!value(kEntropy, s, entropy) || !value(kLabelAgreement, s, label) ||
        !value(kFinalAgreement, s, final)) {
      break;
    }
    entropy_.push_back(entropy);
    label_agreement_.push_back(label);
    final_agreement_.push_back(final);
  }
}

}  // namespace md::train
