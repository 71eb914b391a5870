// Early stopping of a sweep by asynchronous successive halving (ASHA, Li et al. 2018), the
// sweep file's `early_stop:` and `budget:` sections, and the pure decision rule: which unit (a
// configuration over its seeds, or one trial) goes on from which rung, which one starts next and
// which ones are stopped, as a function of the results alone. Nothing here reads a file, knows
// about MPI or runs a trial: sweep/asha_records.h records the decisions on disk, the scheduler
// acts on them.
//
// Why the rule is a function of the results, not of timing: in textbook ASHA a rung promotes the
// top 1/reduction of whatever has arrived when a worker asks, so which units go on depends on
// which trials happened to finish first. Here rung k takes its arrivals in a fixed order (rung 0:
// unit index order; rung k+1: the order in which rung k promoted them) and decides on the
// longest prefix of that order whose results are all known. A free worker still never waits
// while work exists (it promotes what the prefix allows, else starts the next unit), and the
// decisions are the same whatever the number of ranks, the finishing order, a kill -9 and rerun,
// or array tasks instead of ranks: they can be checked against an uninterrupted run.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace md::sweep {

// by: config (all seeds of a configuration decided together on their score) or trial.
enum class EarlyStopUnit { Config, Trial };
// score: the mean over the unit's trials, or the lower bound of its 95% t interval.
enum class EarlyStopScore { Mean, LowerBound };

struct EarlyStopSpec {
  std::string metric = "acc_final";  // acc_final, acc_ensemble or acc_head<s>
  std::vector<int> rungs;            // epochs, strictly increasing, each <= optim.epochs
  int reduction = 3;                 // >= 2: the top floor(n / reduction) of a rung go on
  EarlyStopUnit by = EarlyStopUnit::Config;
  EarlyStopScore score = EarlyStopScore::Mean;
};

// Stop starting new work once this much has been spent (unset: no limit).
struct BudgetSpec {
  std::optional<double> gpu_hours;
  std::optional<double> epochs;  // trial-epochs, for CPU runs
  bool any() const { return gpu_hours.has_value() || epochs.has_value(); }
};

// The /epoch column of a report metric name ("acc_final" -> "test_acc_final"); nullopt for a
// name that is not acc_final, acc_ensemble or acc_head<digits>.
std::optional<std::string> epoch_column_of_metric(const std::string& metric);

// A unit's score from its trials' metric values at one rung (every value finite); NaN values
// (a diverged trial) make the score -infinity, below every finite score.
double unit_score(const std::vector<double>& values, EarlyStopScore score);

// The levels of a sweep whose trials train `epochs` epochs: the rungs, then `epochs` when the
// last rung is below it. Level k < levels-1 is a decision point; the last level is the end.
std::vector<int> asha_levels(const std::vector<int>& rungs, int epochs);

// What is known of one unit. started: its first training (to level 0) was claimed;
// promoted_from[k]: a promotion from level k was recorded; stopped_at: a stop was recorded;
// score[k]: its score at level k once every trial of it is there (nullopt before).
struct UnitState {
  bool started = false;
  std::vector<bool> promoted_from;           // one per level
  std::optional<int> stopped_at;             // level
  std::vector<std::optional<double>> score;  // one per level
  // The level it trains to: -1 not started, else 1 + the highest level promoted from.
  int target_level() const;
  // Its target reached (started and score[target] known).
  bool idle() const;
};

// Rung k's arrivals, in decision order, and the promotions the rule makes from them, in order.
struct LevelPlan {
  std::vector<int> arrivals;    // units entering level k, in the fixed order
  int decided_prefix = 0;       // how many of them have a known score at k (the prefix)
  std::vector<int> promotions;  // units promoted from level k (k < last), in order
  bool closed = false;          // every arrival is known and none can still arrive
};

struct AshaPlan {
  std::vector<LevelPlan> levels;
};

// The decision rule over `units` (unit index order = the order they start in). Pure.
AshaPlan plan_asha(const std::vector<UnitState>& units, int reduction);

enum class AshaActionKind {
  Promote,  // record the promotion of `unit` from `level`, then train it to level + 1
  Start,    // claim `unit`, then train it to level 0
  Stop,     // record that `unit` stops at `level` (its level is closed, it was not promoted)
  Wait,     // work is running elsewhere and nothing can be decided yet
  Done,     // nothing left
};

struct AshaAction {
  AshaActionKind kind = AshaActionKind::Done;
  int unit = -1;
  int level = -1;
};

// The next thing a free worker does: a pending Stop first (cheap, and it frees the report),
// then the promotion from the highest level with one due, then the next unstarted unit, else
// Wait while a unit is busy, else Done. `allow_new_work` false (a spent budget): no Promote or
// Start; busy units still finish. Pure.
AshaAction next_asha_action(const std::vector<UnitState>& units, const AshaPlan& plan,
                            bool allow_new_work = true);

}  // namespace md::sweep
