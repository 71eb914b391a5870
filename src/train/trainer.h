// run_trial: one trial from a resolved config to a finished HDF5 log and checkpoint. It owns
// the training loop of every method (baseline, BYOT, MetaDistiller), evaluation, logging,
// checkpoint/resume and the interrupt protocol. It knows nothing of MPI or Slurm: the ranks of
// a data-parallel trial reach it as a train::Collective, and the caller picks the device. Its
// parts: train/trial_setup.h (config → specs and loaders), train/trial_checkpoint.h (what a
// checkpoint holds), train/trial_metrics.h (log rows and test evaluation), train/trial_stop.h
// (interrupt and divergence) and train/progress.h (progress lines).
#pragma once

#include <map>
#include <string>

#include "core/device.h"
#include "io/config.h"
#include "io/log_schema.h"
#include "train/collective.h"

namespace md::train {

enum class Progress { Auto, Terminal, Lines, Off };

struct TrialContext {
  std::string out_dir;               // log and checkpoint go to <out_dir>/<trial-id>.{h5,ckpt.h5}
  std::string sweep_name;            // recorded in the log
  Device device;                     // resolved (no "auto")
  Collective* collective = nullptr;  // nullptr: a single rank
  Progress progress = Progress::Auto;
  std::string label;  // prefix of progress lines, e.g. "[3/12 ab12cd]"
  // > 0: stop after this epoch (an ASHA rung) with a checkpoint and status Stopped; the same
  // call with a later stop_epoch (or 0: optim.epochs) continues bit-identically, the schedule
  // being the full one throughout.
  int stop_epoch = 0;
};

struct TrialResult {
  io::TrialStatus status = io::TrialStatus::Failed;  // Complete or Diverged (io/log_schema.h)
  std::string trial_id;
  std::string log_path;
  std::string error;
  std::map<std::string, double> final_values;
};

// Runs (or resumes) the trial. Throws md::InputError for bad data or checkpoints and
// md::Interrupted after writing a checkpoint when SIGTERM/SIGUSR1 arrived; a diverged (NaN)
// trial returns io::TrialStatus::Diverged with its log marked, one that reached
// context.stop_epoch io::TrialStatus::Stopped.
TrialResult run_trial(const io::TrialConfig& config, const TrialContext& context);

// Resolves runtime.device ("auto" → the first GPU if any, else the CPU).
Device resolve_device(const std::string& device_text, int local_rank = 0);

}  // namespace md::train
