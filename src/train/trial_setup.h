// From a trial's config to what its run is made of: the loss, schedule, model and learner specs
// as plain parameter structs, the trial-wide compute options, and the loaders of its training,
// meta and test batches. Every config error is an md::InputError naming the config source and
// key; the trainer (train/trainer.cpp) builds a trial from these in this order.
#pragma once

#include <cstdint>
#include <memory>

#include "core/device.h"
#include "data/loader.h"
#include "io/config.h"
#include "models/student.h"
#include "train/device_batches.h"
#include "train/learner.h"
#include "train/losses.h"
#include "train/schedule.h"
#include "train/trial_data.h"

namespace md::train {

// The student loss of a trial's config on a trial of `ranks` ranks. A summed hint is summed over
// each rank's share of the batch and the gradients are averaged over the ranks, so its weight is
// multiplied by the rank count: the hint is then the sum over the whole trial batch, as in BYOT.
LossSpec loss_spec(const io::MethodConfig& method, double label_smoothing, int ranks);

// The learning-rate schedule of a trial's optimizer config; fixed for the trial.
ScheduleSpec schedule_spec(const io::OptimConfig& optim);

// runtime.threads, runtime.precision and runtime.deterministic, for every op of this trial.
void apply_compute_options(const io::RuntimeConfig& runtime);

// The student of the config on its data: num_classes and in_channels from the data unless the
// config names them, which must then fit the data.
models::ModelSpec model_spec(const io::TrialConfig& config, const TrialData& data);

// The learner of the config (warns when runtime.cuda_graph cannot replay a MetaDistiller step).
LearnerSpec learner_spec(const io::TrialConfig& config, const models::ModelSpec& model,
                         const LossSpec& loss, Device device);

// Where a trial's loaders run: this rank of the trial's ranks, on the training device.
struct LoaderPlacement {
  int rank = 0;
  int world = 1;
  Device device;
};

// The batches of a trial. The training batches come from exactly one of train and
// train_on_device (runtime.data_on_device); meta is null unless the generator trains.
struct TrialLoaders {
  std::unique_ptr<data::BatchLoader> train, meta, test;
  std::unique_ptr<DeviceBatches> train_on_device;
  std::int64_t batches_per_epoch = 0;  // at most runtime.max_train_batches when that is set
};

TrialLoaders make_trial_loaders(const io::TrialConfig& config, const TrialData& data,
                                const LoaderPlacement& placement, bool meta_batches);

}  // namespace md::train
