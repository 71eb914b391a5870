// The report's early-stopping section: for a sweep run with `early_stop:` (ASHA), per group how
// many trials reached each rung, how many were stopped and at which epoch, and the compute spent
// against what the full sweep (every trial to optim.epochs) would have cost. The rungs come from
// the sweep's decision records (DIR/.asha/level<k>/*, their `epoch:` lines; docs/cluster.md),
// else from the epochs stopped trials reached. A directory without stopped trials or records
// has no such section, so a plain sweep's report is unchanged. Reads files only.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "trial_record.h"

namespace md::analysis {

struct EarlyStopGroup {
  std::vector<int> reaching;        // per rung: trials with at least that many epochs
  int stopped = 0;                  // trials with status stopped
  std::vector<int> stopped_epochs;  // the epochs those stopped trials reached, ascending
  int complete = 0;
  double hours = 0.0;       // wall time x ranks, every trial of the group
  double full_hours = 0.0;  // each trial's hours per epoch x its optim.epochs
};

struct EarlyStopSummary {
  std::vector<int> rungs;  // epochs; the full length (optim.epochs) last when all share it
  bool on_gpu = false;     // every trial with a device ran on a GPU: hours are GPU-hours
  std::vector<EarlyStopGroup> groups;  // one per report group, in the report's order
  EarlyStopGroup total;
};

// The trials of each group (the report's grouping) of the sweep in `dir`; nullopt for a sweep
// without early stopping.
std::optional<EarlyStopSummary> summarize_early_stop(
    const std::string& dir, const std::vector<std::vector<const TrialRecord*>>& groups);

// The Markdown section ("## Early stopping (ASHA)"), one row per group with its key cells.
std::string early_stop_markdown(const EarlyStopSummary& summary,
                                const std::vector<std::string>& key_header,
                                const std::vector<std::vector<std::string>>& key_cells);
// The JSON object (rungs, and per group and in total the counts and hours).
std::string early_stop_json(const EarlyStopSummary& summary);

}  // namespace md::analysis
