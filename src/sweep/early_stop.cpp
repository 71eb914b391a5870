// The ASHA decision rule (see early_stop.h). Everything here is a pure function of its
// arguments, so tests/sweep/test_early_stop.cpp can check it on made-up results.
#include "sweep/early_stop.h"

#include <algorithm>
#include <cmath>
#include <limits>

namespace md::sweep {

std::optional<std::string> epoch_column_of_metric(const std::string& metric) {
  if (metric == "acc_final" || metric == "acc_ensemble") return "test_" + metric;
  const std::string prefix = "acc_head";
  if (metric.size() > prefix.size() && metric.compare(0, prefix.size(), prefix) == 0 &&
      std::all_of(metric.begin() + static_cast<std::ptrdiff_t>(prefix.size()), metric.end(),
                  [](char c) { return c >= '0' && c <= '9'; })) {
    return "test_" + metric;
  }
  return std::nullopt;
}

double unit_score(const std::vector<double>& values, EarlyStopScore score) {
  const double lowest = -std::numeric_limits<double>::infinity();
  if (values.empty()) return lowest;
  double sum = 0.0;
  for (double value : values) {
    if (!std::isfinite(value)) return lowest;
    sum += value;
  }
  const double count = static_cast<double>(values.size());
  const double mean = sum / count;
  if (score == EarlyStopScore::Mean || values.size() < 2) return mean;
  double squares = 0.0;
  for (double value : values) squares += (value - mean) * (value - mean);
  const double standard_error = std::sqrt(squares / (count - 1.0) / count);
  // Two-sided 95% quantiles of Student's t for 1..30 degrees of freedom, then the normal one.
  static const double kT975[] = {12.706, 4.303, 2.182, 2.776, 2.571, 2.447, 2.365, 2.306,
                                 2.262,  2.228, 2.201, 2.179, 2.160, 2.145, 2.131, 2.120,
                                 2.110,  2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064,
                                 2.060,  2.056, 2.052, 2.048, 2.045, 2.042};
  const std::size_t freedom = values.size() - 1;
  const double quantile = freedom <= 30 ? kT975[freedom - 1] : 1.960;
  return mean - quantile * standard_error;
}

std::vector<int> asha_levels(const std::vector<int>& rungs, int epochs) {
  std::vector<int> levels = rungs;
  if (levels.empty() || levels.back() < epochs) levels.push_back(epochs);
  return levels;
}

int UnitState::target_level() const {
  if (!started) return -1;
  int target = 0;
  for (std::size_t level = 0; level < promoted_from.size(); ++level) {
    if (promoted_from[level]) target = static_cast<int>(level) + 1;
  }
  return target;
}

bool UnitState::idle() const {
  const int target = target_level();
  return target >= 0 && static_cast<std::size_t>(target) < score.size() &&
         score[static_cast<std::size_t>(target)].has_value();
}

AshaPlan plan_asha(const std::vector<UnitState>& units, int reduction) {
  AshaPlan plan;
  if (units.empty()) return plan;
  const std::size_t level_count = units.front().score.size();
  plan.levels.resize(level_count);
  for (std::size_t unit = 0; unit < units.size(); ++unit) {
    plan.levels[0].arrivals.push_back(static_cast<int>(unit));
  }
  for (std::size_t level = 0; level < level_count; ++level) {
    LevelPlan& here = plan.levels[level];
    const auto score_of = [&](int unit) {
      return *units[static_cast<std::size_t>(unit)].score[level];
    };
    while (static_cast<std::size_t>(here.decided_prefix) < here.arrivals.size() &&
           units[static_cast<std::size_t>(
                     here.arrivals[static_cast<std::size_t>(here.decided_prefix)])]
               .score[level]
               .has_value()) {
      ++here.decided_prefix;
    }
    here.closed = static_cast<std::size_t>(here.decided_prefix) == here.arrivals.size() &&
                  (level == 0 || plan.levels[level - 1].closed);
    if (level + 1 == level_count) break;
    // Grow the prefix one arrival at a time; whoever enters the top floor(n / reduction) of
    // the first n is promoted (once), best first among those entering together.
    std::vector<int> ranked;
    for (int position = 0; position < here.decided_prefix; ++position) {
      const int unit = here.arrivals[static_cast<std::size_t>(position)];
      ranked.insert(std::upper_bound(ranked.begin(), ranked.end(), unit,
                                     [&](int a, int b) { return score_of(a) > score_of(b); }),
                    unit);
      const std::size_t top =
          static_cast<std::size_t>(position + 1) / static_cast<std::size_t>(std::max(2, reduction));
      for (std::size_t rank = 0; rank < top; ++rank) {
        const int candidate = ranked[rank];
        if (std::find(here.promotions.begin(), here.promotions.end(), candidate) ==
            here.promotions.end()) {
          here.promotions.push_back(candidate);
        }
      }
    }
    // A promotion recorded on disk stands even where the rule (a changed sweep file) differs.
    for (std::size_t unit = 0; unit < units.size(); ++unit) {
      if (units[unit].promoted_from[level] &&
          std::find(here.promotions.begin(), here.promotions.end(), static_cast<int>(unit)) ==
              here.promotions.end()) {
        here.promotions.push_back(static_cast<int>(unit));
      }
    }
    plan.levels[level + 1].arrivals = here.promotions;
  }
  return plan;
}

AshaAction next_asha_action(const std::vector<UnitState>& units, const AshaPlan& plan,
                            bool allow_new_work) {
  const int last = static_cast<int>(plan.levels.size()) - 1;
  for (int level = 0; level < last; ++level) {
    const LevelPlan& here = plan.levels[static_cast<std::size_t>(level)];
    if (!here.closed) continue;
    for (int unit : here.arrivals) {
      const UnitState& state = units[static_cast<std::size_t>(unit)];
      if (state.stopped_at || state.target_level() != level) continue;
      if (std::find(here.promotions.begin(), here.promotions.end(), unit) !=
          here.promotions.end()) {
        continue;
      }
      return {AshaActionKind::Stop, unit, level};
    }
  }
  if (allow_new_work) {
    for (int level = last - 1; level >= 0; --level) {
      for (int unit : plan.levels[static_cast<std::size_t>(level)].promotions) {
        const UnitState& state = units[static_cast<std::size_t>(unit)];
        if (!state.promoted_from[static_cast<std::size_t>(level)] && !state.stopped_at) {
          return {AshaActionKind::Promote, unit, level};
        }
      }
    }
    for (std::size_t unit = 0; unit < units.size(); ++unit) {
      if (!units[unit].started) return {AshaActionKind::Start, static_cast<int>(unit), 0};
    }
  }
  for (const UnitState& state : units) {
    if (state.started && !state.stopped_at && !state.idle()) return {AshaActionKind::Wait};
  }
  if (!allow_new_work) {
    // Out of budget: what waits at a rung stops there.
    for (std::size_t unit = 0; unit < units.size(); ++unit) {
      const UnitState& state = units[unit];
      const int target = state.target_level();
      if (state.started && !state.stopped_at && target < last) {
        return {AshaActionKind::Stop, static_cast<int>(unit), target};
      }
    }
  }
  return {AshaActionKind::Done};
}

}  // namespace md::sweep
