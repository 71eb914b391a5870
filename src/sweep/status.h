// Where each trial of a sweep stands, read from its HDF5 log in the output directory
// (DIR/<trial-id>.h5, root attribute `status`). Used by `sweep --list` (and through it by the
// Slurm submit helper) and by the scheduler to skip complete trials. Reads only; never writes.
#pragma once

#include <string>

#include "io/log_schema.h"

namespace md::sweep {

// The state of trial `trial_id` in `out_dir` (the statuses and their names: io/log_schema.h):
// Pending when there is no log; a log that cannot be read (or has an unknown status) counts as
// Pending, with a warning naming the file.
io::TrialStatus read_trial_state(const std::string& out_dir, const std::string& trial_id);

std::string log_path(const std::string& out_dir, const std::string& trial_id);
std::string checkpoint_path(const std::string& out_dir, const std::string& trial_id);

}  // namespace md::sweep
