// One trial of a sweep as the report sees it: where its log is, its status, its configuration
// flattened to dotted keys, and the accuracies it reached. Built from a trial log
// (io/trial_log.h) and nothing else; it never writes a file. A log without /final (a running,
// interrupted or killed trial) is summarized from its /epoch rows, so a sweep in progress can
// be reported.
#pragma once

#include <map>
#include <string>
#include <vector>

#include "io/log_schema.h"  // the status names: io::status_name(io::TrialStatus)

namespace md::analysis {

struct TrialRecord {
  std::string file;      // path of the log
  std::string trial_id;  // root attribute trial_id (the file's stem when absent)
  // The status the report counts: the log's `status`, except that a log claiming `complete`
  // without /final, or with no status at all and no /final, counts as `running`.
  std::string status;
  bool has_final = false;  // the log has /final: values come from it, else from /epoch rows
  std::map<std::string, std::string> config;  // dotted key -> YAML scalar text ("[100, 150]")
  // Accuracy fractions by metric name (acc_head<s>, acc_final, acc_ensemble): from /final's
  // last_* and best_* attributes, or for a log without /final the last /epoch row and the best
  // /epoch row so far. A metric the log lacks is absent.
  std::map<std::string, double> last;
  std::map<std::string, double> best;
  double epochs = 0.0;      // /final epochs, or the number of /epoch rows
  double wall_s = 0.0;      // /final total_wall_s, or the sum of /epoch wall_s
  double gpu_hours = 0.0;   // /final gpu_hours; 0 without /final
  int heads = 0;            // number of acc_head<s> metrics
  std::string error;        // root attribute error (failed, diverged, interrupted); "" when absent
  std::string device_name;  // root attribute device_name ("cpu", "cuda:0"); "" when absent
  double ranks = 1.0;       // root attribute ranks
  // Test accuracy of the final head per /epoch row (NaN where a row lacks it): the learning
  // curve of the HTML report. Complete rows only (io::read_trial_log).
  std::vector<double> final_curve;
};

// The trial logs under `dir`, searched recursively, in sorted path order: regular files named
// *.h5 except checkpoints (*.ckpt.h5); temporary files (*.tmp) do not end in .h5 and are never
// listed. `dir` may also name one log file. md::InputError when `dir` does not exist.
std::vector<std::string> find_trial_logs(const std::string& dir);

// Reads one trial log. md::InputError naming the file when it is not a readable trial log
// (corrupt, truncated, foreign HDF5, newer schema) or its config attribute is not YAML.
TrialRecord load_trial_record(const std::string& path);

// A YAML mapping flattened to dotted keys: {optim: {lr: 0.1, schedule: {milestones: [1, 2]}}}
// gives optim.lr = "0.1" and optim.schedule.milestones = "[1, 2]". Scalars keep their text as
// written; null values are "null". md::InputError naming `source` on a YAML error.
std::map<std::string, std::string> flatten_config(const std::string& yaml_text,
                                                  const std::string& source);

}  // namespace md::analysis
