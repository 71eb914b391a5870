// ASHA's work queue over the logs and the decision records (see asha_queue.h).
#include "sweep/asha_queue.h"

#include <unistd.h>

#include <chrono>
#include <cmath>
#include <ctime>
#include <filesystem>
#include <map>
#include <sstream>
#include <thread>

#include "core/error.h"
#include "core/logging.h"
#include "io/config_keys.h"
#include "io/trial_log.h"
#include "sweep/status.h"

namespace md::sweep {
namespace {

// What one trial's log says: its status, the metric per epoch row, wall seconds, GPU or not.
struct TrialProgress {
  std::string status;  // "" without a log
  std::vector<double> metric;
  long rows = 0;
  double wall_seconds = 0.0;
  bool on_gpu = false;
  long ranks = 1;
};

TrialProgress read_progress(const std::string& out_dir, const std::string& trial_id,
                            const std::string& column) {
  TrialProgress progress;
  const std::string path = log_path(out_dir, trial_id);
  std::error_code missing;
  if (!std::filesystem::exists(path, missing)) return progress;
  try {
    io::TrialLogContents contents = io::read_trial_log(path);
    const auto text = [&](const char* name) {
      const auto found = contents.attributes.find(name);
      const std::string* value =
          found == contents.attributes.end() ? nullptr : std::get_if<std::string>(&found->second);
      return value != nullptr ? *value : std::string();
    };
    progress.status = text("status");
    progress.on_gpu = text("device_name").rfind("cuda", 0) == 0;
    if (const auto found = contents.attributes.find("ranks"); found != contents.attributes.end()) {
      if (const auto* ranks = std::get_if<std::int64_t>(&found->second)) progress.ranks = *ranks;
    }
    const auto& epoch = contents.tables["epoch"];
    if (const auto found = epoch.find(column); found != epoch.end())
      progress.metric = found->second;
    if (const auto found = epoch.find("epoch"); found != epoch.end()) {
      progress.rows = static_cast<long>(found->second.size());
    }
    if (const auto found = epoch.find("wall_s"); found != epoch.end()) {
      for (double seconds : found->second) progress.wall_seconds += seconds;
    }
  } catch (const Error& unreadable) {
    log_warning("ASHA: treating trial ", trial_id, " as not started: ", unreadable.what());
    return TrialProgress{};
  }
  return progress;
}

bool ended_early(const std::string& status) {
  return status == "diverged" || status == "failed";
}

std::string now_text() {
  const std::time_t now = std::time(nullptr);
  char text[32];
  std::strftime(text, sizeof text, "%Y-%m-%dT%H:%M:%SZ", std::gmtime(&now));
  return text;
}

}  // namespace

AshaQueue::AshaQueue(const SweepSpec& spec, std::string out_dir, std::string owner)
    : spec_(spec),
      early_stop_(*spec.early_stop),
      out_dir_(std::move(out_dir)),
      owner_(std::move(owner)),
      records_(out_dir_),
      column_(*epoch_column_of_metric(spec.early_stop->metric)) {
  levels_ = early_stop_.rungs;
  // The end is a level of its own unless the last rung is every trial's last epoch.
  const bool last_rung_is_end = spec.trials.front().config.optim.epochs == levels_.back();
  if (last_rung_is_end) {
    levels_.back() = 0;
  } else {
    levels_.push_back(0);
  }
  // A unit is a configuration (every override but the seed's) or a trial.
  const std::string seed_prefix = std::string(io::replicate_key().path) + "=";
  std::map<std::string, int> unit_of_key;
  for (const SweepTrial& trial : spec.trials) {
    std::string key = trial.id;
    if (early_stop_.by == EarlyStopUnit::Config) {
      key.clear();
      for (const std::string& assignment : trial.overrides) {
        if (assignment.rfind(seed_prefix, 0) != 0) key += assignment + "\n";
      }
    }
    const auto [found, inserted] = unit_of_key.emplace(key, static_cast<int>(units_.size()));
    if (inserted) {
      units_.emplace_back();
      keys_.push_back(trial.id);
    }
    units_[static_cast<std::size_t>(found->second)].push_back(trial.index);
  }
}

std::vector<UnitState> AshaQueue::read_state() const {
  std::vector<UnitState> states(units_.size());
  for (std::size_t unit = 0; unit < units_.size(); ++unit) {
    UnitState& state = states[unit];
    state.started = records_.started(keys_[unit]);
    state.promoted_from.assign(levels_.size(), false);
    state.score.assign(levels_.size(), std::nullopt);
    if (!state.started) continue;
    for (std::size_t level = 0; level < levels_.size(); ++level) {
      const std::optional<AshaDecision> decision =
          records_.decision(static_cast<int>(level), keys_[unit]);
      if (decision == AshaDecision::Promote) state.promoted_from[level] = true;
      if (decision == AshaDecision::Stop && !state.stopped_at) {
        state.stopped_at = static_cast<int>(level);
      }
    }
    std::vector<TrialProgress> trials;
    for (int index : units_[unit]) {
      trials.push_back(
          read_progress(out_dir_, spec_.trials[static_cast<std::size_t>(index)].id, column_));
    }
    for (std::size_t level = 0; level < levels_.size(); ++level) {
      std::vector<double> values;
      bool reached = true;
      for (std::size_t i = 0; i < trials.size() && reached; ++i) {
        const int epochs =
            spec_.trials[static_cast<std::size_t>(units_[unit][i])].config.optim.epochs;
        const long epoch = levels_[level] > 0 ? levels_[level] : epochs;
        const TrialProgress& progress = trials[i];
        const bool at_end = levels_[level] == 0;
        if (progress.rows >= epoch && static_cast<long>(progress.metric.size()) >= epoch &&
            (!at_end || progress.status == "complete")) {
          values.push_back(progress.metric[static_cast<std::size_t>(epoch - 1)]);
        } else if (ended_early(progress.status)) {
          values.push_back(NAN);  // a diverged or failed trial ranks below every other
        } else {
          reached = false;
        }
      }
      if (reached) state.score[level] = unit_score(values, early_stop_.score);
    }
  }
  return states;
}

AshaTotals AshaQueue::totals() const {
  AshaTotals totals;
  totals.units = static_cast<long>(units_.size());
  totals.units_reaching.assign(levels_.size(), 0);
  const std::vector<UnitState> states = read_state();
  for (std::size_t unit = 0; unit < units_.size(); ++unit) {
    for (std::size_t level = 0; level < levels_.size(); ++level) {
      if (states[unit].score[level]) ++totals.units_reaching[level];
    }
    for (int index : units_[unit]) {
      const SweepTrial& trial = spec_.trials[static_cast<std::size_t>(index)];
      const TrialProgress progress = read_progress(out_dir_, trial.id, column_);
      totals.trial_epochs += progress.rows;
      totals.full_trial_epochs += trial.config.optim.epochs;
      if (progress.on_gpu) {
        totals.gpu_hours += progress.wall_seconds * static_cast<double>(progress.ranks) / 3600.0;
      }
      if (states[unit].stopped_at) ++totals.stopped_trials;
      if (progress.status == "complete") ++totals.complete_trials;
    }
  }
  return totals;
}

int AshaQueue::units_left() const {
  int left = 0;
  const std::vector<UnitState> states = read_state();
  for (const UnitState& state : states) {
    const bool at_end = state.score.back().has_value();
    if (!state.stopped_at && !at_end) ++left;
  }
  return left;
}

bool AshaQueue::budget_spent() const {
  if (!spec_.budget.any()) return false;
  const AshaTotals spent = totals();
  if (spec_.budget.gpu_hours && spent.gpu_hours >= *spec_.budget.gpu_hours) return true;
  if (spec_.budget.epochs && static_cast<double>(spent.trial_epochs) >= *spec_.budget.epochs) {
    return true;
  }
  return false;
}

std::vector<int> AshaQueue::unfinished_units() const {
  std::vector<int> unfinished;
  const std::vector<UnitState> states = read_state();
  for (std::size_t unit = 0; unit < states.size(); ++unit) {
    const UnitState& state = states[unit];
    if (state.started && !state.stopped_at && !state.idle()) {
      unfinished.push_back(static_cast<int>(unit));
    }
  }
  return unfinished;
}

AshaWork AshaQueue::work_for(int unit) const {
  const std::vector<UnitState> states = read_state();
  AshaWork work;
  work.unit = unit;
  work.level = std::max(0, states[static_cast<std::size_t>(unit)].target_level());
  work.stop_epoch = levels_[static_cast<std::size_t>(work.level)];
  // A trial already there (the unit's other seeds went on after a kill) is not trained again.
  for (int index : units_[static_cast<std::size_t>(unit)]) {
    const SweepTrial& trial = spec_.trials[static_cast<std::size_t>(index)];
    const TrialProgress progress = read_progress(out_dir_, trial.id, column_);
    const bool there = work.stop_epoch == 0
                           ? progress.status == "complete"
                           : progress.status == "stopped" && progress.rows >= work.stop_epoch;
    if (!there) work.trials.push_back(index);
  }
  return work;
}

std::string AshaQueue::record_body(int unit, int level) const {
  std::ostringstream body;
  body << "unit: " << keys_[static_cast<std::size_t>(unit)] << "\nlevel: " << level
       << "\nepoch: " << levels_[static_cast<std::size_t>(level)]
       << "\nmetric: " << early_stop_.metric << "\ntrials:";
  for (int index : units_[static_cast<std::size_t>(unit)]) {
    body << " " << spec_.trials[static_cast<std::size_t>(index)].id;
  }
  body << "\nowner: " << owner_ << "\ntime: " << now_text() << "\n";
  return body.str();
}

std::optional<AshaWork> AshaQueue::reclaim(const std::vector<UnitState>& states) const {
  for (std::size_t unit = 0; unit < states.size(); ++unit) {
    const UnitState& state = states[unit];
    if (!state.started || state.stopped_at || state.idle()) continue;
    const int level = state.target_level();
    const std::string owner = records_.current_owner(keys_[unit], level);
    if (owner == owner_) return work_for(static_cast<int>(unit));
    const std::optional<double> silence = records_.silence_seconds(owner, keys_[unit], level);
    if (silence && *silence > *stale_seconds_ &&
        records_.take_over(keys_[unit], level, owner, owner_)) {
      log_warning("ASHA: taking over unit ", unit, " (", keys_[unit], ") from ", owner,
                  ", silent for ", *silence, " s");
      return work_for(static_cast<int>(unit));
    }
  }
  return std::nullopt;
}

std::optional<AshaWork> AshaQueue::next(const std::function<bool()>& stop_requested,
                                        double poll_seconds) {
  while (!stop_requested()) {
    const std::vector<UnitState> states = read_state();
    if (stale_seconds_) {
      if (std::optional<AshaWork> work = reclaim(states)) return work;
    }
    const AshaPlan plan = plan_asha(states, early_stop_.reduction);
    const bool spent = budget_spent();
    const AshaAction action = next_asha_action(states, plan, !spent);
    switch (action.kind) {
      case AshaActionKind::Stop: {
        std::ostringstream body;
        const auto& score = states[static_cast<std::size_t>(action.unit)]
                                .score[static_cast<std::size_t>(action.level)];
        body << "score: " << (score ? *score : NAN) << "\nreason: "
             << (spent && !plan.levels[static_cast<std::size_t>(action.level)].closed
                     ? "budget spent"
                     : "not in the top 1/reduction of its rung")
             << "\n";
        bool created = false;
        records_.decide(action.level, keys_[static_cast<std::size_t>(action.unit)],
                        AshaDecision::Stop, body.str() + record_body(action.unit, action.level),
                        &created);
        if (created) {
          log_info("ASHA: unit ", action.unit, " (", keys_[static_cast<std::size_t>(action.unit)],
                   ") stops at epoch ", levels_[static_cast<std::size_t>(action.level)]);
        }
        break;
      }
      case AshaActionKind::Promote: {
        bool created = false;
        std::ostringstream body;
        body << "score: "
             << *states[static_cast<std::size_t>(action.unit)]
                     .score[static_cast<std::size_t>(action.level)]
             << "\n";
        records_.decide(action.level, keys_[static_cast<std::size_t>(action.unit)],
                        AshaDecision::Promote, body.str() + record_body(action.unit, action.level),
                        &created);
        if (created) {
          log_info("ASHA: unit ", action.unit, " (", keys_[static_cast<std::size_t>(action.unit)],
                   ") promoted from epoch ", levels_[static_cast<std::size_t>(action.level)]);
          return work_for(action.unit);
        }
        break;
      }
      case AshaActionKind::Start:
        if (records_.claim_start(keys_[static_cast<std::size_t>(action.unit)],
                                 record_body(action.unit, 0))) {
          return work_for(action.unit);
        }
        break;
      case AshaActionKind::Wait:
        std::this_thread::sleep_for(std::chrono::duration<double>(poll_seconds));
        break;
      case AshaActionKind::Done:
        return std::nullopt;
    }
  }
  return std::nullopt;
}

}  // namespace md::sweep
