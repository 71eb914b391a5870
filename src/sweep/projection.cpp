// Cost projections of a sweep (see projection.h).
#include "sweep/projection.h"

#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <ostream>

#include "core/error.h"
#include "core/logging.h"
#include "io/trial_log.h"
#include "sweep/asha_queue.h"
#include "sweep/status.h"
#include "train/trainer.h"
#include "train/trial_data.h"

namespace md::sweep {
namespace {

namespace fs = std::filesystem;

// The epoch at which a unit's trial reaches `level` (0 in the levels: the trial's end).
int level_epoch(const std::vector<int>& levels, std::size_t level, const SweepTrial& trial) {
  return levels[level] > 0 ? levels[level] : trial.config.optim.epochs;
}

// Trial-epochs of the units that enter each level (`arrivals[k]`), each trained from the
// previous level's epoch to this one's.
long trial_epochs_of(const SweepSpec& spec, const AshaQueue& queue,
                     const std::vector<std::vector<int>>& arrivals) {
  long total = 0;
  for (std::size_t level = 0; level < arrivals.size(); ++level) {
    for (int unit : arrivals[level]) {
      for (int index : queue.unit_trials(unit)) {
        const SweepTrial& trial = spec.trials[static_cast<std::size_t>(index)];
        const int from = level == 0 ? 0 : level_epoch(queue.levels(), level - 1, trial);
        total += level_epoch(queue.levels(), level, trial) - from;
      }
    }
  }
  return total;
}

struct LogTimes {
  double seconds = 0.0;
  long epochs = 0;
  bool on_gpu = false;
};

// Wall seconds and /epoch rows of the sweep's trials already in `out_dir`.
LogTimes times_from_logs(const SweepSpec& spec, const std::string& out_dir) {
  LogTimes times;
  for (const SweepTrial& trial : spec.trials) {
    const std::string path = log_path(out_dir, trial.id);
    std::error_code missing;
    if (!fs::exists(path, missing)) continue;
    try {
      io::TrialLogContents contents = io::read_trial_log(path);
      const auto& epoch = contents.tables["epoch"];
      const auto wall = epoch.find("wall_s");
      if (wall == epoch.end()) continue;
      for (double seconds : wall->second) {
        if (!std::isfinite(seconds)) continue;
        times.seconds += seconds;
        ++times.epochs;
      }
      const auto device = contents.attributes.find("device_name");
      if (device != contents.attributes.end()) {
        const auto* name = std::get_if<std::string>(&device->second);
        times.on_gpu = times.on_gpu || (name != nullptr && name->rfind("cuda", 0) == 0);
      }
    } catch (const Error& unreadable) {
      log_warning("projection: skipping ", path, ": ", unreadable.what());
    }
  }
  return times;
}

// One epoch of the first trial, from `measure_batches` training steps and its evaluation.
double measure_epoch_seconds(const SweepSpec& spec, int measure_batches, bool* on_gpu) {
  const SweepTrial& first = spec.trials.front();
  io::TrialConfig config = first.config;
  const std::int64_t full_batches_cap = config.runtime.max_train_batches;
  config.optim.epochs = 1;
  config.runtime.log_every = 1;
  config.runtime.checkpoint_every_epochs = 0;
  config.runtime.max_train_batches = full_batches_cap > 0
                                         ? std::min<std::int64_t>(full_batches_cap, measure_batches)
                                         : measure_batches;
  const fs::path directory =
      fs::temp_directory_path() / ("md-measure-" + std::to_string(::getpid()));
  fs::remove_all(directory);
  train::TrialContext context;
  context.out_dir = directory.string();
  context.sweep_name = spec.name + " (measurement)";
  context.device = train::resolve_device(config.runtime.device);
  context.progress = train::Progress::Off;
  *on_gpu = context.device.is_cuda();
  log_info("projection: measuring ", config.runtime.max_train_batches,
           " training steps and the evaluation of trial 0 on ", context.device.str());
  double images_per_second = 0.0, epoch_seconds = 0.0;
  try {
    const train::TrialResult result = train::run_trial(config, context);
    io::TrialLogContents contents = io::read_trial_log(result.log_path);
    std::vector<double> rates = contents.tables["train"]["images_per_s"];
    if (rates.size() > 1) rates.erase(rates.begin());  // the first step warms up
    std::sort(rates.begin(), rates.end());
    if (!rates.empty()) images_per_second = rates[rates.size() / 2];
    const auto& wall = contents.tables["epoch"]["wall_s"];
    if (!wall.empty()) epoch_seconds = wall.front();
  } catch (...) {
    fs::remove_all(directory);
    throw;
  }
  fs::remove_all(directory);
  MD_CHECK(images_per_second > 0.0, "the measurement logged no training speed");
  // The full epoch: every training batch at the measured speed, plus the measured evaluation.
  const auto data = train::load_trial_data(first.config);
  std::int64_t batches = data->train->count() / first.config.optim.batch_size;
  if (full_batches_cap > 0) batches = std::min(batches, full_batches_cap);
  const double batch_images = static_cast<double>(first.config.optim.batch_size);
  const double measured_training =
      static_cast<double>(config.runtime.max_train_batches) * batch_images / images_per_second;
  const double evaluation = std::max(0.0, epoch_seconds - measured_training);
  return static_cast<double>(batches) * batch_images / images_per_second + evaluation;
}

std::string hours_text(double seconds, int ranks) {
  const double hours = seconds * ranks / 3600.0;
  char text[64];
  std::snprintf(text, sizeof text, hours >= 0.1 ? "%.2f" : "%.4f", hours);
  return text;
}

}  // namespace

long asha_trial_epochs(const SweepSpec& spec, bool worst) {
  const AshaQueue queue(spec, ".", "projection");
  const std::size_t level_count = queue.levels().size();
  std::vector<std::vector<int>> arrivals(level_count);
  if (worst) {
    std::vector<UnitState> units(static_cast<std::size_t>(queue.unit_count()));
    for (std::size_t unit = 0; unit < units.size(); ++unit) {
      units[unit].started = true;
      units[unit].promoted_from.assign(level_count, false);
      units[unit].score.assign(level_count, static_cast<double>(unit));
    }
    const AshaPlan plan = plan_asha(units, spec.early_stop->reduction);
    for (std::size_t level = 0; level < level_count; ++level) {
      arrivals[level] = plan.levels[level].arrivals;
    }
  } else {
    for (int unit = 0; unit < queue.unit_count(); ++unit) arrivals[0].push_back(unit);
    for (std::size_t level = 1; level < level_count; ++level) {
      arrivals[level] = arrivals[level - 1];
      arrivals[level].resize(arrivals[level - 1].size() /
                             static_cast<std::size_t>(spec.early_stop->reduction));
    }
  }
  return trial_epochs_of(spec, queue, arrivals);
}

long full_trial_epochs(const SweepSpec& spec) {
  long total = 0;
  for (const SweepTrial& trial : spec.trials) total += trial.config.optim.epochs;
  return total;
}

bool has_logged_epochs(const SweepSpec& spec, const std::string& out_dir) {
  return times_from_logs(spec, out_dir).epochs > 0;
}

CostProjection project_cost(const SweepSpec& spec, const std::string& out_dir,
                            int measure_batches) {
  CostProjection projection;
  projection.trials = static_cast<long>(spec.trials.size());
  projection.ranks_per_trial = spec.ranks_per_trial;
  projection.full_trial_epochs = full_trial_epochs(spec);
  if (spec.early_stop) {
    projection.asha_worst_trial_epochs = asha_trial_epochs(spec, true);
    projection.asha_synchronous_trial_epochs = asha_trial_epochs(spec, false);
  }
  const LogTimes logged = times_from_logs(spec, out_dir);
  if (logged.epochs > 0) {
    projection.seconds_per_epoch = logged.seconds / static_cast<double>(logged.epochs);
    projection.on_gpu = logged.on_gpu;
    projection.source = "the " + std::to_string(logged.epochs) + " epoch(s) logged in " + out_dir;
  } else {
    projection.seconds_per_epoch = measure_epoch_seconds(spec, measure_batches, &projection.on_gpu);
    projection.source = "a measurement of trial 0 (" + std::to_string(measure_batches) +
                        " training steps and its evaluation)";
  }
  return projection;
}

void print_projection(std::ostream& out, const SweepSpec& spec, const CostProjection& projection) {
  const std::string unit = projection.on_gpu ? "GPU-hours" : "rank-hours (CPU)";
  const double epoch = projection.seconds_per_epoch;
  const int ranks = projection.ranks_per_trial;
  out << "\n# projected cost: " << projection.trials << " trials, " << epoch
      << " s per trial-epoch on " << ranks << " rank(s), from " << projection.source << "\n";
  const auto line = [&](const char* what, long trial_epochs) {
    out << "  " << what << trial_epochs << " trial-epochs, "
        << hours_text(static_cast<double>(trial_epochs) * epoch, ranks) << " " << unit << "\n";
  };
  line("full sweep:                 ", projection.full_trial_epochs);
  if (spec.early_stop) {
    line("ASHA, worst case:           ", projection.asha_worst_trial_epochs);
    line("ASHA, synchronous halving:  ", projection.asha_synchronous_trial_epochs);
  }
  if (spec.budget.gpu_hours) {
    out << "  budget: " << *spec.budget.gpu_hours << " GPU-hours, about "
        << static_cast<long>(*spec.budget.gpu_hours * 3600.0 / (epoch * ranks))
        << " trial-epochs at this speed\n";
  }
  if (spec.budget.epochs) out << "  budget: " << *spec.budget.epochs << " trial-epochs\n";
}

}  // namespace md::sweep
