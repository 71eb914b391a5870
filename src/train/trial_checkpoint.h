// What a trial's checkpoint (<out_dir>/<trial-id>.ckpt.h5) holds and how a trial is restored
// from it: the learner's state (student weights and buffers, optimizer momentum, the generator
// and its optimizer for MetaDistiller) as tensors (train/weights.h), and as root attributes the
// trial's identity and where it stands between two batches (epoch, batch, step, meta loader
// position, wall time, running loss sums), so that a resumed run goes on as an uninterrupted
// one.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>

#include "data/loader.h"
#include "models/student.h"
#include "train/learner.h"

namespace md::train {

// Who the checkpoint belongs to (read back only to check trial_id).
struct CheckpointIdentity {
  std::string trial_id;
  std::string config_yaml;  // io::to_yaml of the trial's config
  models::ModelSpec model;  // arch, num_classes, in_channels
};

// The running loss sums of the current log interval and of the current epoch.
struct RunningLossSums {
  double interval_sum = 0.0;
  std::int64_t interval_count = 0;
  double epoch_sum = 0.0;
  std::int64_t epoch_count = 0;
};

// Where a trial stands between two batches, beyond the learner's own state.
struct TrialPosition {
  int epoch = 0;                    // the epoch being (or next to be) trained
  std::int64_t batch_in_epoch = 0;  // the next batch of that epoch
  std::int64_t meta_epoch = 0;      // the meta loader's epoch and next batch
  std::int64_t meta_position = 0;
  double wall_seconds = 0.0;  // of this and earlier runs (0 when a checkpoint lacks it)
  // Absent from checkpoints written before they were recorded.
  std::optional<RunningLossSums> losses;
  // MetaDistiller: the sums of the generator targets' statistics over this epoch's log rows
  // (TargetStatisticsMean::sums), by statistic name.
  std::map<std::string, double> target_sums;
};

// Writes the checkpoint of `learner` at `position` to `path`, replacing it.
void save_trial_checkpoint(const std::string& path, const CheckpointIdentity& identity,
                           Learner& learner, const TrialPosition& position);

// Restores `learner` from the checkpoint at `path` and returns where the trial stood; nullopt
// when there is no file. With a generator, `meta_loader` (its meta batches) is set to the stored
// position. md::InputError naming the file when it belongs to another trial or lacks a tensor or
// an attribute.
std::optional<TrialPosition> load_trial_checkpoint(const std::string& path,
                                                   const std::string& trial_id, Learner& learner,
                                                   data::BatchLoader* meta_loader);

}  // namespace md::train
