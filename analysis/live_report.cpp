// LiveReader: the report's summary over logs being written, with the last good reading of each
// log kept for the refresh at which it cannot be read.
#include "live_report.h"

#include <algorithm>

#include "core/error.h"

namespace md::analysis {

SweepSummary LiveReader::read(const std::string& dir, const ReportOptions& options,
                              std::vector<std::string>* warnings) {
  std::vector<TrialRecord> trials;
  std::vector<SkippedFile> skipped;
  std::map<std::string, TrialRecord> current;
  for (const std::string& path : find_trial_logs(dir)) {
    try {
      TrialRecord record = load_trial_record(path);
      current[path] = record;
      trials.push_back(std::move(record));
    } catch (const Error& error) {
      auto found = previous_.find(path);
      if (found != previous_.end()) {
        current[path] = found->second;
        trials.push_back(found->second);
      } else {
        skipped.push_back({path, error.what()});
      }
    }
  }
  previous_ = std::move(current);
  SweepSummary summary;
  try {
    summary = summarize_trials(trials, options);
  } catch (const InputError& error) {
    if (options.compare.empty()) throw;
    ReportOptions without = options;
    without.compare.clear();
    summary = summarize_trials(std::move(trials), without);
    if (warnings != nullptr) {
      warnings->push_back(std::string("no comparison yet: ") + error.what());
    }
  }
  summary.directory = dir;
  summary.skipped = std::move(skipped);
  return summary;
}

int running_trials(const SweepSummary& summary) {
  int running = 0;
  for (const GroupSummary& group : summary.groups) {
    for (const TrialRecord& trial : group.trials) {
      if (trial.status == io::status_name(io::TrialStatus::Running)) ++running;
    }
  }
  return running;
}

bool sweep_finished(const SweepSummary& summary, int expected) {
  return summary.trial_count >= std::max(expected, 1) && running_trials(summary) == 0;
}

}  // namespace md::analysis
