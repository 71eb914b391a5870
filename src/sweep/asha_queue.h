// The work an ASHA sweep does next, for any worker (an MPI rank group, a Slurm array task): it
// reads where every trial stands from the logs (the metric at each rung epoch), the recorded
// decisions from DIR/.asha (sweep/asha_records.h), applies the rule of sweep/early_stop.h and
// records the decision before handing out the work it implies. Units are configurations (all
// trials of a sweep that differ only in runtime.seed, `by: config`) or single trials, in the
// order of their first trial's index. Trains nothing; no MPI.
#pragma once

#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "sweep/asha_records.h"
#include "sweep/early_stop.h"
#include "sweep/spec.h"

namespace md::sweep {

// Train the trials of `unit` to `level`: to epoch `stop_epoch`, or to the end when it is 0.
struct AshaWork {
  int unit = -1;
  int level = -1;
  int stop_epoch = 0;
  std::vector<int> trials;  // sweep trial indices, in index order
};

// What the logs and records say, summed over the sweep.
struct AshaTotals {
  long units = 0;
  long trial_epochs = 0;             // epochs trained, all trials
  long full_trial_epochs = 0;        // what every trial trained to the end would be
  double gpu_hours = 0.0;            // wall time x ranks of trials on a GPU
  long stopped_trials = 0;           // trials of units with a stop record
  long complete_trials = 0;          // trials whose log says complete
  std::vector<long> units_reaching;  // per level: units with a score there
};

class AshaQueue {
 public:
  // `owner` names this worker in the records ("host pid", a Slurm task).
  AshaQueue(const SweepSpec& spec, std::string out_dir, std::string owner);

  int unit_count() const { return static_cast<int>(units_.size()); }
  const std::vector<int>& unit_trials(int unit) const {
    return units_[static_cast<std::size_t>(unit)];
  }
  const std::string& unit_key(int unit) const { return keys_[static_cast<std::size_t>(unit)]; }
  const std::vector<int>& levels() const { return levels_; }

  // Units whose recorded work (a start or a promotion) has not reached its level and that are
  // not stopped: left by a killed run. The caller that knows no other worker runs them (a fresh
  // MPI sweep, a requeued array task for its own records) hands them out again first.
  std::vector<int> unfinished_units() const;
  // The work of a unit's latest record (its current target level).
  AshaWork work_for(int unit) const;

  // Worker mode (Slurm array tasks, `sweep --worker NAME`): next() first resumes the unfinished
  // work this worker owns (a requeued task), then takes over, once, unfinished work whose owner
  // has been silent for `stale_seconds` (a task that died and was not requeued).
  void set_worker_mode(double stale_seconds) { stale_seconds_ = stale_seconds; }
  const std::string& owner() const { return owner_; }
  void heartbeat() const { records_.heartbeat(owner_); }

  // The next piece of work, its decision recorded first; stops are recorded on the way. Waits
  // (polling every `poll_seconds`) only while other workers run and nothing can be decided;
  // nullopt when nothing is left, the budget is spent and nothing runs, or `stop_requested()`.
  std::optional<AshaWork> next(const std::function<bool()>& stop_requested,
                               double poll_seconds = 0.5);

  // The unit states from the logs and records (the input of plan_asha).
  std::vector<UnitState> read_state() const;
  AshaTotals totals() const;
  // Units neither stopped nor trained to the end.
  int units_left() const;
  bool budget_spent() const;

 private:
  std::string record_body(int unit, int level) const;
  // Worker mode: unfinished work of this worker, or of a silent one taken over.
  std::optional<AshaWork> reclaim(const std::vector<UnitState>& states) const;

  const SweepSpec& spec_;
  EarlyStopSpec early_stop_;
  std::string out_dir_;
  std::string owner_;
  AshaRecords records_;
  std::vector<int> levels_;              // rung epochs, then 0 for "the end" when it is a level
  std::vector<std::vector<int>> units_;  // trial indices per unit
  std::vector<std::string> keys_;        // the first trial's id per unit
  std::string column_;                   // the /epoch column of the metric
  std::optional<double> stale_seconds_;  // worker mode
};

}  // namespace md::sweep
