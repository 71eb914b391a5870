// The /train, /epoch and final figures of a trial (see trial_metrics.h).
#include "train/trial_metrics.h"

#include <algorithm>

#include "autograd/functions.h"
#include "train/evaluation.h"

namespace md::train {

using autograd::Variable;

TrainingFigures::TrainingFigures(Backend& backend, Device device)
    : backend_(backend),
      loss_sum_(Tensor::zeros({}, DType::Float32, device)),
      epoch_loss_sum_(Tensor::zeros({}, DType::Float32, device)) {}

void TrainingFigures::add_step(const StepReport& report, bool log_step, const Tensor& labels,
                               double temperature) {
  backend_.axpby(1.0, report.loss, 1.0, loss_sum_);
  backend_.axpby(1.0, report.loss, 1.0, epoch_loss_sum_);
  ++loss_count_;
  ++epoch_loss_count_;
  if (log_step) {
    ce_last_ = LossTerms::value(report.terms.ce);
    kd_last_ = LossTerms::value(report.terms.kd);
    hint_last_ = LossTerms::value(report.terms.hint);
    if (!report.targets.empty()) {
      const TargetStatistics statistics =
          target_statistics(report.targets, report.deepest_logits, labels, temperature);
      target_row_ = target_statistics_row(statistics);
      epoch_targets_.add(statistics);
    }
  }
  if (report.meta_step) {
    meta_loss_last_ = report.meta_loss;
    v_norm_last_ = report.v_norm;
    epsilon_last_ = report.epsilon;
    generator_grad_norm_last_ = report.generator_grad_norm;
  }
}

double TrainingFigures::take_interval_loss() {
  const double loss = loss_count_ > 0 ? loss_sum_.item() / static_cast<double>(loss_count_) : NAN;
  backend_.fill(loss_sum_, 0.0);
  loss_count_ = 0;
  return loss;
}

std::map<std::string, double> TrainingFigures::train_row(const TrainRowPosition& position,
                                                         double loss, bool generator) const {
  std::map<std::string, double> row{
      {"step", static_cast<double>(position.step)},
      {"epoch", position.epoch},
      {"lr", position.learning_rate},
      {"loss", loss},
      {"loss_ce", ce_last_},
      {"loss_kd", kd_last_},
      {"loss_hint", hint_last_},
      {"images_per_s", position.images_per_second},
  };
  if (generator) {
    row["loss_meta"] = meta_loss_last_;
    row["meta_v_norm"] = v_norm_last_;
    row["meta_epsilon"] = epsilon_last_;
    row["generator_grad_norm"] = generator_grad_norm_last_;
    row.insert(target_row_.begin(), target_row_.end());
  }
  return row;
}

double TrainingFigures::epoch_loss() const {
  return epoch_loss_count_ > 0 ? epoch_loss_sum_.item() / static_cast<double>(epoch_loss_count_)
                               : NAN;
}

void TrainingFigures::restart_epoch_loss() {
  backend_.fill(epoch_loss_sum_, 0.0);
  epoch_loss_count_ = 0;
}

void TrainingFigures::take_epoch_target_means(std::map<std::string, double>& row) {
  if (!epoch_targets_.empty()) {
    const std::map<std::string, double> means = epoch_targets_.means();
    row.insert(means.begin(), means.end());
  }
  epoch_targets_.clear();
}

RunningLossSums TrainingFigures::loss_sums() const {
  return RunningLossSums{.interval_sum = loss_sum_.item(),
                         .interval_count = loss_count_,
                         .epoch_sum = epoch_loss_sum_.item(),
                         .epoch_count = epoch_loss_count_};
}

void TrainingFigures::restore(const TrialPosition& position) {
  if (position.losses) {
    backend_.fill(loss_sum_, position.losses->interval_sum);
    loss_count_ = position.losses->interval_count;
    backend_.fill(epoch_loss_sum_, position.losses->epoch_sum);
    epoch_loss_count_ = position.losses->epoch_count;
  }
  epoch_targets_.restore(position.target_sums);
}

std::map<std::string, double> evaluate_test_set(const Learner& learner, data::BatchLoader& test,
                                                Collective& collective, const TestPass& pass) {
  autograd::NoGrad no_grad;
  AccuracyCounts counts(learner.student().num_heads());
  double loss_sum = 0.0;
  test.start_epoch(0);
  data::Batch batch;
  std::int64_t batches = 0;
  while (test.next(batch)) {
    if (pass.max_batches > 0 && batches >= pass.max_batches) break;
    ++batches;
    const Tensor labels = batch.labels;
    const auto n = labels.numel();
    if (n == 0) continue;  // a rank's empty part of the last global batch
    models::StudentOutput output = learner.evaluate(batch.images.to(pass.device));
    Variable final_loss = autograd::cross_entropy(output.logits.back(), labels.to(pass.device));
    loss_sum += final_loss.value().item() * static_cast<double>(n);
    std::vector<Tensor> logits;
    for (const Variable& head : output.logits) logits.push_back(head.value());
    count_hits(counts, logits, labels);
  }
  counts.count = collective.sum(counts.count);
  loss_sum = collective.sum(loss_sum);
  for (double& hits : counts.top1) hits = collective.sum(hits);
  for (double& hits : counts.top5) hits = collective.sum(hits);
  std::map<std::string, double> metrics = accuracy_metrics(counts, pass.num_classes);
  metrics["test_loss"] = loss_sum / counts.count;
  return metrics;
}

std::map<std::string, double> final_accuracies(
    const std::map<std::string, std::vector<double>>& epoch_history) {
  std::map<std::string, double> final_values;
  for (const auto& [metric, values] : epoch_history) {
    if ((metric.rfind("test_acc_", 0) != 0 && metric.rfind("test_top5_", 0) != 0) || values.empty())
      continue;
    final_values["last_" + metric.substr(5)] = values.back();
    double best = values.front();
    for (double value : values) best = std::max(best, value);
    final_values["best_" + metric.substr(5)] = best;
  }
  return final_values;
}

}  // namespace md::train
