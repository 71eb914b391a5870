// The sweep spec (DESIGN.md §6 "Sweep spec (YAML)") and its expansion into trials. A sweep is a
// base trial config (a file relative to the sweep file, or an inline mapping), a grid (key path
// -> list of values, expanded as a cartesian product in the order the keys are written, the
// first key varying slowest) and an optional random search (n samples drawn from a seeded
// generator, the same n samples for every grid point: grid x random). Every trial's config is
// built with io::ConfigTree::set and checked by io::resolve, so a bad key or value in the sweep
// is an md::InputError naming the sweep file and the key. Trials with the same id (the same
// resolved config) collapse to the first one; indices are 0..count-1 in expansion order, the
// same on every run and on every rank. Nothing here knows about MPI or runs a trial.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "io/config.h"
#include "sweep/early_stop.h"

namespace md::sweep {

struct SweepTrial {
  int index = 0;                       // position in the expanded sweep (Slurm array index)
  std::string id;                      // io::trial_id(config)
  std::vector<std::string> overrides;  // "key.path=value", value as a YAML flow scalar
  io::TrialConfig config;              // resolved and validated
};

struct SweepSpec {
  std::string name;    // `name:`, or the sweep file's stem when absent
  std::string source;  // the sweep file (or source name of the text)
  std::vector<SweepTrial> trials;
  int ranks_per_trial = 1;                  // runtime.ranks_per_trial, the same in every trial
  std::optional<EarlyStopSpec> early_stop;  // `early_stop:` (ASHA); unset: every trial runs through
  BudgetSpec budget;                        // `budget:`
};

// Reads and expands a sweep file. InputError for a missing file, a YAML error, an unknown
// top-level key, a malformed grid, random, early_stop or budget section (an unknown metric,
// rungs beyond a trial's optim.epochs, a reduction below 2, a budget of 0), or any trial config
// that does not resolve.
SweepSpec load_sweep(const std::string& path);
// The same for YAML text; a `base:` file name is relative to base_directory.
SweepSpec parse_sweep(const std::string& yaml_text, const std::string& source_name,
                      const std::string& base_directory);

// The text of a YAML value on one line (flow style): scalars as written, quoted (single quotes)
// when they were quoted or would not read back as the same scalar; [a, b] and {k: v} otherwise.
std::string flow_text(const io::ConfigTree& value);

}  // namespace md::sweep
