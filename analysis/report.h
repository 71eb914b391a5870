// The sweep report (`metadistill report DIR`, DESIGN.md §6): every trial log under a directory,
// grouped by config keys, as mean ± std over the trials of each group (the seeds), in Markdown
// for people, CSV for spreadsheets and JSON for scripts. It only reads logs; a file that is not
// a readable trial log is skipped with a warning, never fatal, so a report works on a sweep in
// progress next to checkpoints, temporary files and foreign HDF5 files.
//
// Statistics: mean and sample standard deviation (divisor n − 1) over the group's complete
// trials; the std of a single trial is 0 (there is no spread to estimate). Failed and diverged
// trials are counted, never averaged. Running trials (status running, or no /final yet) and
// interrupted ones are counted and listed with their last /epoch values; a group with no
// complete trial yet takes its statistics from them (marked as such), so a sweep in progress
// shows numbers.
#pragma once

#include <limits>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "compare.h"
#include "early_stop_report.h"
#include "trial_record.h"

namespace md::analysis {

struct ReportOptions {
  // "KEY=VALUE" each (`--where`, repeatable): only the trials whose config has KEY equal to
  // VALUE (as text, or numerically: 0.1 = 0.10) are reported, grouped and compared; several
  // must all hold. Empty: every trial.
  std::vector<std::string> where;
  // Config keys (dotted paths of the trial YAML) to group by. Empty: every key whose value
  // varies across the trials, except runtime.seed and the keys that do not change a trial's
  // result (io::keys_outside_trial_id(): runtime.device, runtime.threads, ...).
  std::vector<std::string> group_by;
  // The accuracy that leads the table: acc_final | acc_ensemble | acc_head<s>.
  std::string metric = "acc_final";
  enum class Format { Markdown, Csv, Json };
  Format format = Format::Markdown;
  // "KEY=REFERENCE" (`--compare`): every other value of KEY against REFERENCE, paired on the
  // other varying keys (compare.h). Empty: no comparison. With a comparison the Markdown gains a
  // comparison section, the JSON a "comparison" member, and the CSV is the comparison table.
  std::string compare;
  CompareSettings compare_settings;
};

// "md" or "markdown", "csv", "json"; md::InputError otherwise.
ReportOptions::Format parse_report_format(const std::string& name);

struct Statistic {
  double mean = std::numeric_limits<double>::quiet_NaN();     // NaN when count is 0
  double std_dev = std::numeric_limits<double>::quiet_NaN();  // sample std (n − 1); 0 when count 1
  int count = 0;
};

// Mean and sample standard deviation of the non-NaN values.
Statistic mean_and_std(const std::vector<double>& values);

// Where a group's statistics come from.
enum class ValuesFrom {
  Complete,    // its complete trials
  InProgress,  // no complete trial: its running and interrupted trials, at their last epoch
  None,        // no complete, running or interrupted trial (all failed or diverged)
};

struct GroupSummary {
  std::vector<std::string> key_values;       // one per SweepSummary::group_by key; "" when absent
  std::vector<TrialRecord> trials;           // every trial of the group, in file order
  std::map<std::string, int> status_counts;  // status -> trials
  ValuesFrom values_from = ValuesFrom::None;
  int value_trials = 0;                   // trials the statistics are taken over
  std::map<std::string, Statistic> last;  // metric -> statistic of the last-epoch accuracy
  std::map<std::string, Statistic> best;  // metric -> statistic of the best-epoch accuracy
  // Auxiliary head s (s < SweepSummary::heads - 1), over the trials for which head s is not
  // their final head: a baseline trial has no auxiliary head, and its head 0 is its final head.
  std::vector<Statistic> auxiliary_last;
  std::vector<Statistic> auxiliary_best;
  Statistic epochs;
  Statistic wall_s;
  double gpu_hours = 0.0;  // sum over every trial of the group that has /final
};

struct SkippedFile {
  std::string file;
  std::string reason;
};

struct SweepSummary {
  std::string directory;
  std::vector<std::string> where;     // ReportOptions::where: the trials it selected
  std::vector<std::string> group_by;  // resolved: the options' keys, or the varying keys
  std::string metric;                 // the leading metric
  std::vector<std::string> metrics;   // every metric, the leading one first
  int heads = 0;                      // largest head count of any trial
  int trial_count = 0;
  std::vector<GroupSummary> groups;  // sorted by key values (numbers numerically)
  std::vector<SkippedFile> skipped;
  std::optional<ComparisonReport> comparison;  // with ReportOptions::compare
  // A sweep run with early_stop (stopped trials or DIR/.asha records): rungs, stops, hours.
  std::optional<EarlyStopSummary> early_stop;
};

// The config keys whose values differ across `trials` (a key missing from some trials counts
// as differing), minus runtime.seed and the keys that do not change results; sorted.
std::vector<std::string> varying_config_keys(const std::vector<TrialRecord>& trials);

// Keeps the trials that match every --where "KEY=VALUE" of `where`. md::InputError for a
// malformed spec or a KEY that no trial's config has (the message lists the keys there are).
std::vector<TrialRecord> select_trials(std::vector<TrialRecord> trials,
                                       const std::vector<std::string>& where);

// Selects (ReportOptions::where), groups and aggregates trials. md::InputError for a malformed
// metric name, a head no trial has, or a group-by key that no trial's config has (the message
// lists the keys there are).
SweepSummary summarize_trials(std::vector<TrialRecord> trials, const ReportOptions& options);

// Reads every trial log under `dir` (find_trial_logs), skipping unreadable ones, and summarizes.
// Each skipped file, and an empty result, adds a line to `warnings` (when not null).
SweepSummary summarize_sweep(const std::string& dir, const ReportOptions& options,
                             std::vector<std::string>* warnings);

std::string format_report(const SweepSummary& summary, ReportOptions::Format format);

// summarize_sweep + format_report. A directory without trial logs gives a report that says so
// (Markdown), a header-only CSV, or JSON with no groups; a missing directory is md::InputError.
std::string make_report(const std::string& dir, const ReportOptions& options,
                        std::vector<std::string>* warnings);

}  // namespace md::analysis
