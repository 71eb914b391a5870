// The figures a trial logs (io/trial_log.h): the /train rows (running loss means, the last
// logged step's loss terms, the last meta step's figures and the generator targets'
// statistics), the test evaluation of every /epoch row, and the final values of a completed
// trial from its epoch history.
#pragma once

#include <cmath>
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "backend/backend.h"
#include "core/device.h"
#include "core/tensor.h"
#include "data/loader.h"
#include "train/collective.h"
#include "train/learner.h"
#include "train/target_stats.h"
#include "train/trial_checkpoint.h"

namespace md::train {

// Where a /train row stands: the trial's step, its fractional epoch, the learning rate and the
// throughput since the last row.
struct TrainRowPosition {
  std::int64_t step = 0;
  double epoch = 0.0;
  double learning_rate = 0.0;
  double images_per_second = 0.0;
};

// What the training steps leave for the log: the running loss sums since the last /train row
// and over the epoch (device scalars, read at log time only), and the figures of the last
// logged and the last meta step.
class TrainingFigures {
 public:
  TrainingFigures(Backend& backend, Device device);  // zero sums on `device`

  // One step's report. On a `log_step` its loss terms are kept, and with generator targets
  // their statistics (against `labels`, at `temperature`) join the row and the epoch's means.
  void add_step(const StepReport& report, bool log_step, const Tensor& labels, double temperature);

  // The mean loss since the last row (NaN with no step), restarting the interval.
  double take_interval_loss();
  // The /train row at `position` with interval loss `loss`; the meta and target figures with
  // a generator.
  std::map<std::string, double> train_row(const TrainRowPosition& position, double loss,
                                          bool generator) const;

  // The epoch's mean loss (NaN with no step).
  double epoch_loss() const;
  void restart_epoch_loss();
  // Moves the means of the epoch's target statistics into `row` (when there are any) and
  // restarts them.
  void take_epoch_target_means(std::map<std::string, double>& row);

  // The running sums of a checkpoint, and back (when the checkpoint has them).
  RunningLossSums loss_sums() const;
  std::map<std::string, double> target_sums() const { return epoch_targets_.sums(); }
  void restore(const TrialPosition& position);

 private:
  Backend& backend_;
  Tensor loss_sum_;
  std::int64_t loss_count_ = 0;
  Tensor epoch_loss_sum_;
  std::int64_t epoch_loss_count_ = 0;
  double ce_last_ = 0.0, kd_last_ = 0.0, hint_last_ = 0.0;
  double meta_loss_last_ = NAN, v_norm_last_ = NAN, epsilon_last_ = NAN,
         generator_grad_norm_last_ = NAN;
  // MetaDistiller: the generator targets' statistics of the last log row's batch, and their
  // mean over this epoch's log rows.
  std::map<std::string, double> target_row_;
  TargetStatisticsMean epoch_targets_;
};

// How a trial's test pass runs: at most max_batches batches (0: all), on `device`.
struct TestPass {
  std::int64_t max_batches = 0;
  std::int64_t num_classes = 0;
  Device device;
};

// Top-1 and (with more than 5 classes) top-5 accuracy of every head and of the ensemble, by the
// tie rule of train/evaluation.h, and the final head's test loss, summed over the ranks.
std::map<std::string, double> evaluate_test_set(const Learner& learner, data::BatchLoader& test,
                                                Collective& collective, const TestPass& pass);

// The last and best value of every test accuracy in `epoch_history` (last_acc_final,
// best_top5_ensemble, ...).
std::map<std::string, double> final_accuracies(
    const std::map<std::string, std::vector<double>>& epoch_history);

}  // namespace md::train
