// What a sweep will cost, for `metadistill sweep SWEEP.yaml --dry-run` on an early_stop sweep:
// the trial count, the trial-epochs and hours of the full sweep, of ASHA's worst case (every
// unit better than all before it, so that each rung promotes the most it can) and of
// synchronous successive halving (each rung keeps exactly its top 1/reduction), and what a
// budget buys. The time of one trial-epoch comes from the logs already in the output directory
// when there are any, else from a short measurement of the first trial (a few training steps
// and its evaluation, in a temporary directory that is removed afterwards); every configuration
// is assumed to cost the same per epoch. Runs no MPI.
#pragma once

#include <iosfwd>
#include <string>

#include "sweep/spec.h"

namespace md::sweep {

struct CostProjection {
  std::string source;              // where seconds_per_epoch comes from, in words
  double seconds_per_epoch = 0.0;  // one trial-epoch (training and evaluation) on its ranks
  bool on_gpu = false;             // hours are GPU-hours (else rank-hours on the CPU)
  int ranks_per_trial = 1;
  long trials = 0;
  long full_trial_epochs = 0;
  long asha_worst_trial_epochs = 0;
  long asha_synchronous_trial_epochs = 0;
};

// Trial-epochs ASHA trains at most (`worst`: units arriving in ascending order of quality) or
// when each rung keeps exactly floor(n / reduction) (`worst` false).
long asha_trial_epochs(const SweepSpec& spec, bool worst);

long full_trial_epochs(const SweepSpec& spec);
// Whether some trial of the sweep has /epoch rows in `out_dir`.
bool has_logged_epochs(const SweepSpec& spec, const std::string& out_dir);

// md::InputError (exit 2) when the measurement cannot run (a missing data file).
CostProjection project_cost(const SweepSpec& spec, const std::string& out_dir,
                            int measure_batches = 10);

void print_projection(std::ostream& out, const SweepSpec& spec, const CostProjection& projection);

}  // namespace md::sweep
