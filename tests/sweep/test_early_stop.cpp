// Tests of the sweep file's early_stop and budget sections (errors naming the key) and of the
// ASHA decision rule (src/sweep/early_stop.h) on made-up results: the top 1/reduction go on,
// decisions do not depend on the order results arrive in, a free worker never waits while work
// exists, closed rungs stop the rest, a spent budget starts nothing new.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <string>
#include <vector>

#include "core/error.h"
#include "sweep/early_stop.h"
#include "sweep/projection.h"
#include "sweep/spec.h"

namespace md::sweep {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

const std::string kSweep =
    "base:\n"
    "  dataset: {name: idx, root: /usr/share/datasets/fashion-mnist}\n"
    "  model: {arch: resnet20}\n"
    "  optim: {epochs: 9}\n"
    "grid:\n"
    "  optim.lr: [0.1, 0.2]\n"
    "  runtime.seed: [0, 1]\n";

std::string error_of(const std::string& text) {
  try {
    parse_sweep(text, "test.yaml", ".");
  } catch (const InputError& error) {
    return error.what();
  }
  return "no error";
}

TEST(EarlyStopSpec, ReadsKeysAndDefaults) {
  const SweepSpec spec =
      parse_sweep(kSweep + "early_stop: {method: asha, rungs: [1, 3]}\n", "test.yaml", ".");
  ASSERT_TRUE(spec.early_stop.has_value());
  EXPECT_EQ(spec.early_stop->metric, "acc_final");
  EXPECT_THAT(spec.early_stop->rungs, ElementsAre(1, 3));
  EXPECT_EQ(spec.early_stop->reduction, 3);
  EXPECT_EQ(spec.early_stop->by, EarlyStopUnit::Config);  // the grid sweeps runtime.seed
  EXPECT_FALSE(spec.budget.any());
  const SweepSpec per_trial = parse_sweep(
      "base:\n  dataset: {name: idx, root: /x}\n  optim: {epochs: 4}\ngrid:\n  optim.lr: [0.1]\n"
      "early_stop: {method: asha, metric: acc_head0, rungs: [2], reduction: 2, score: "
      "lower_bound}\nbudget: {epochs: 10}\n",
      "test.yaml", ".");
  EXPECT_EQ(per_trial.early_stop->by, EarlyStopUnit::Trial);
  EXPECT_EQ(per_trial.early_stop->score, EarlyStopScore::LowerBound);
  EXPECT_EQ(per_trial.budget.epochs, 10.0);
}

TEST(EarlyStopSpec, NewKeysLeaveTrialIdsAlone) {
  const SweepSpec plain = parse_sweep(kSweep, "test.yaml", ".");
  const SweepSpec asha =
      parse_sweep(kSweep + "early_stop: {method: asha, rungs: [3]}\n", "test.yaml", ".");
  ASSERT_EQ(plain.trials.size(), asha.trials.size());
  for (std::size_t i = 0; i < plain.trials.size(); ++i) {
    EXPECT_EQ(plain.trials[i].id, asha.trials[i].id);
  }
  EXPECT_FALSE(plain.early_stop.has_value());
}

TEST(EarlyStopSpec, BadInputNamesTheKey) {
  EXPECT_THAT(error_of(kSweep + "early_stop: {method: asha, metric: acc_best, rungs: [3]}\n"),
              HasSubstr("early_stop.metric"));
  EXPECT_THAT(error_of(kSweep + "early_stop: {method: asha, rungs: [3, 10]}\n"),
              HasSubstr("early_stop.rungs: rung 10 is beyond optim.epochs 9"));
  EXPECT_THAT(error_of(kSweep + "early_stop: {method: asha, rungs: [3], reduction: 1}\n"),
              HasSubstr("early_stop.reduction"));
  EXPECT_THAT(error_of(kSweep + "early_stop: {method: asha, rungs: [3, 3]}\n"),
              HasSubstr("early_stop.rungs"));
  EXPECT_THAT(error_of(kSweep + "early_stop: {method: hyperband, rungs: [3]}\n"),
              HasSubstr("early_stop.method"));
  EXPECT_THAT(error_of(kSweep + "early_stop: {method: asha, rungs: [3], eta: 3}\n"),
              HasSubstr("unknown key 'eta'"));
  EXPECT_THAT(error_of(kSweep + "early_stop: {method: asha, rungs: [3]}\nbudget: {gpu_hours: 0}\n"),
              HasSubstr("budget.gpu_hours"));
  EXPECT_THAT(error_of(kSweep + "early_stop: {method: asha, rungs: [3]}\nbudget: {epochs: -1}\n"),
              HasSubstr("budget.epochs"));
}

TEST(EarlyStopRule, ScoresAndLevels) {
  EXPECT_DOUBLE_EQ(unit_score({0.5, 0.7}, EarlyStopScore::Mean), 0.6);
  EXPECT_LT(unit_score({0.5, 0.7}, EarlyStopScore::LowerBound), 0.6);
  EXPECT_EQ(unit_score({0.5, NAN}, EarlyStopScore::Mean), -std::numeric_limits<double>::infinity());
  EXPECT_THAT(asha_levels({1, 3}, 9), ElementsAre(1, 3, 9));
  EXPECT_THAT(asha_levels({1, 9}, 9), ElementsAre(1, 9));
  EXPECT_EQ(epoch_column_of_metric("acc_head2"), "test_acc_head2");
  EXPECT_FALSE(epoch_column_of_metric("acc_head").has_value());
}

// A worker loop on made-up scores: each unit's score at every level is `quality[unit] + level`.
// Results arrive in `finish_order` among the running work; returns the recorded decisions.
struct Simulation {
  std::vector<UnitState> units;
  std::vector<std::string> decisions;
  long epochs_trained = 0;
};

Simulation simulate(const std::vector<double>& quality, const std::vector<int>& levels,
                    int reduction, int workers, bool reverse_finish) {
  Simulation sim;
  sim.units.resize(quality.size());
  for (UnitState& unit : sim.units) {
    unit.promoted_from.assign(levels.size(), false);
    unit.score.assign(levels.size(), std::nullopt);
  }
  struct Running {
    int unit, level;
  };
  std::vector<Running> running;
  while (true) {
    bool acted = false;
    while (static_cast<int>(running.size()) < workers) {
      const AshaPlan plan = plan_asha(sim.units, reduction);
      const AshaAction action = next_asha_action(sim.units, plan);
      if (action.kind == AshaActionKind::Stop) {
        sim.units[static_cast<std::size_t>(action.unit)].stopped_at = action.level;
        sim.decisions.push_back("stop " + std::to_string(action.unit) + "@" +
                                std::to_string(action.level));
        continue;
      }
      if (action.kind == AshaActionKind::Start) {
        sim.units[static_cast<std::size_t>(action.unit)].started = true;
        running.push_back({action.unit, 0});
        sim.epochs_trained += levels[0];
      } else if (action.kind == AshaActionKind::Promote) {
        const auto level = static_cast<std::size_t>(action.level);
        sim.units[static_cast<std::size_t>(action.unit)].promoted_from[level] = true;
        sim.decisions.push_back("promote " + std::to_string(action.unit) + "@" +
                                std::to_string(action.level));
        running.push_back({action.unit, action.level + 1});
        sim.epochs_trained += levels[level + 1] - levels[level];
      } else {
        break;
      }
      acted = true;
    }
    if (running.empty()) {
      if (!acted) break;
      continue;
    }
    // Finish the first or the last running piece of work.
    const auto finished = reverse_finish ? running.end() - 1 : running.begin();
    sim.units[static_cast<std::size_t>(finished->unit)]
        .score[static_cast<std::size_t>(finished->level)] =
        quality[static_cast<std::size_t>(finished->unit)] + finished->level;
    running.erase(finished);
  }
  return sim;
}

TEST(EarlyStopRule, PromotesTheTopAndStopsTheRest) {
  const std::vector<double> quality = {0.1, 0.9, 0.5, 0.3, 0.8, 0.2, 0.7, 0.4, 0.6};
  const Simulation sim = simulate(quality, {1, 3, 9}, 3, 1, false);
  // Rung 0 (9 arrivals) promotes 3, rung 1 promotes 1: the best unit, 1, trains to the end.
  int promoted_to_end = -1;
  int stops = 0;
  for (std::size_t unit = 0; unit < sim.units.size(); ++unit) {
    if (sim.units[unit].target_level() == 2) promoted_to_end = static_cast<int>(unit);
    if (sim.units[unit].stopped_at) ++stops;
  }
  EXPECT_EQ(promoted_to_end, 1);
  EXPECT_EQ(stops, 8);
  EXPECT_EQ(sim.epochs_trained, 9 * 1 + 3 * 2 + 1 * 6);
}

TEST(EarlyStopRule, DecisionsDoNotDependOnTimingOrWorkers) {
  const std::vector<double> quality = {0.3, 0.9, 0.5, 0.1,  0.8,  0.2,
                                       0.7, 0.4, 0.6, 0.05, 0.95, 0.45};
  const Simulation one = simulate(quality, {1, 2, 4}, 3, 1, false);
  for (int workers : {2, 3, 5}) {
    for (bool reverse : {false, true}) {
      const Simulation other = simulate(quality, {1, 2, 4}, 3, workers, reverse);
      for (std::size_t unit = 0; unit < quality.size(); ++unit) {
        EXPECT_EQ(one.units[unit].promoted_from, other.units[unit].promoted_from)
            << "unit " << unit << " workers " << workers;
        EXPECT_EQ(one.units[unit].stopped_at, other.units[unit].stopped_at);
      }
      EXPECT_EQ(one.epochs_trained, other.epochs_trained);
    }
  }
}

TEST(EarlyStopRule, FreeWorkerStartsNewUnitInsteadOfWaiting) {
  std::vector<UnitState> units(4);
  for (UnitState& unit : units) {
    unit.promoted_from.assign(2, false);
    unit.score.assign(2, std::nullopt);
  }
  units[0].started = true;  // running, no result yet
  const AshaAction action = next_asha_action(units, plan_asha(units, 2));
  EXPECT_EQ(action.kind, AshaActionKind::Start);
  EXPECT_EQ(action.unit, 1);
  for (UnitState& unit : units) unit.started = true;
  EXPECT_EQ(next_asha_action(units, plan_asha(units, 2)).kind, AshaActionKind::Wait);
  units[0].score[0] = 0.5;
  units[1].score[0] = 0.7;  // prefix of 2 with reduction 2: unit 1 goes on
  const AshaAction promote = next_asha_action(units, plan_asha(units, 2));
  EXPECT_EQ(promote.kind, AshaActionKind::Promote);
  EXPECT_EQ(promote.unit, 1);
  EXPECT_EQ(next_asha_action(units, plan_asha(units, 2), false).kind, AshaActionKind::Wait);
}

TEST(EarlyStopRule, SpentBudgetStopsWhatWaitsAtARung) {
  std::vector<UnitState> units(3);
  for (UnitState& unit : units) {
    unit.promoted_from.assign(2, false);
    unit.score.assign(2, std::nullopt);
  }
  units[0].started = true;
  units[0].score[0] = 0.5;
  const AshaAction action = next_asha_action(units, plan_asha(units, 2), false);
  EXPECT_EQ(action.kind, AshaActionKind::Stop);
  EXPECT_EQ(action.unit, 0);
  units[0].stopped_at = 0;
  EXPECT_EQ(next_asha_action(units, plan_asha(units, 2), false).kind, AshaActionKind::Done);
}

TEST(EarlyStopProjection, WorstCaseAndSynchronousTrialEpochs) {
  // 12 configurations x 2 seeds, rungs at epochs 1 and 2 of 6, reduction 3.
  const SweepSpec spec = parse_sweep(
      "base:\n  dataset: {name: idx, root: /usr/share/datasets/fashion-mnist}\n"
      "  optim: {epochs: 6}\ngrid:\n  optim.lr: [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12]\n"
      "  runtime.seed: [0, 1]\nearly_stop: {method: asha, rungs: [1, 2], reduction: 3}\n",
      "test.yaml", ".");
  EXPECT_EQ(full_trial_epochs(spec), 144);
  // Synchronous: 12 units x 1 epoch, 4 x 1, 1 x 4, two seeds each.
  EXPECT_EQ(asha_trial_epochs(spec, false), 2 * (12 + 4 + 4));
  // Ascending quality: rung 0 promotes 10 of 12 (every prefix's new best), rung 1 then 8.
  EXPECT_EQ(asha_trial_epochs(spec, true), 2 * (12 + 10 + 8 * 4));
}

}  // namespace
}  // namespace md::sweep
