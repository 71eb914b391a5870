// The live view (`metadistill report DIR --watch`): reads a sweep again and again while its
// trials write their logs. Reading never blocks or disturbs a writer (io::read_trial_log opens
// read-only with HDF5 file locking off, and keeps only the rows present in every column, so a
// row is never half-shown). A log that cannot be read at one refresh (caught between the
// writer's calls, or just being created) keeps its previous reading instead of disappearing.
#pragma once

#include <map>
#include <string>
#include <vector>

#include "report.h"

namespace md::analysis {

class LiveReader {
 public:
  // The summary of `dir` now. A comparison that cannot be made yet (no complete reference trial,
  // say) is left out with a line in `warnings` instead of failing; other errors propagate.
  SweepSummary read(const std::string& dir, const ReportOptions& options,
                    std::vector<std::string>* warnings);

 private:
  std::map<std::string, TrialRecord> previous_;  // path -> last successful reading
};

// Trials whose log says running (or has no /final and no final status).
int running_trials(const SweepSummary& summary);

// True when the summary holds at least max(expected, 1) trials and none is running.
bool sweep_finished(const SweepSummary& summary, int expected);

}  // namespace md::analysis
