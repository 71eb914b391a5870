// Runs a sweep's trials over the MPI ranks (DESIGN.md §7). Ranks are split into groups of
// runtime.ranks_per_trial; the leader of each free group takes the next pending trial from a
// dynamic queue (an MPI-3 atomic counter on rank 0) and broadcasts it to its group, which runs
// it with train::run_trial on a train::Collective over the group (MPI_Allreduce on the CPU,
// NCCL on GPUs). The node-local rank picks the GPU. A trial that fails or diverges is marked in
// its log and the group takes the next one; an interrupt (SIGTERM/SIGUSR1) makes the running
// trial checkpoint and the group take no more trials. With `early_stop:` (ASHA) a free group's
// leader takes its work from sweep/asha_queue.h instead: a unit's trials, to a rung, decided and
// recorded in the output directory first. No MPI type appears here: the CLI sees only
// MpiSession and run_sweep.
#pragma once

#include <optional>
#include <string>

#include "sweep/asha_queue.h"
#include "sweep/spec.h"
#include "train/trainer.h"

namespace md::sweep {

// MPI for the lifetime of the object: MPI_Init_thread(MPI_THREAD_FUNNELED) (the data loader's
// threads never call MPI), errors returned instead of fatal, MPI_Finalize in the destructor.
// Without mpirun/srun it is a singleton world of one rank.
class MpiSession {
 public:
  MpiSession();
  MpiSession(const MpiSession&) = delete;
  MpiSession& operator=(const MpiSession&) = delete;
  ~MpiSession();
  int rank() const { return rank_; }
  int size() const { return size_; }
  // Ends every rank of the job (a rank failing outside a trial would leave the others waiting
  // in a collective): MPI_Abort with `exit_status`.
  [[noreturn]] void abort(int exit_status) const;

 private:
  int rank_ = 0;
  int size_ = 1;
  bool initialized_here_ = false;
};

enum class ResumePolicy {
  Continue,  // skip complete trials; a trial with a checkpoint resumes from it
  Restart,   // delete each trial's log and checkpoint before running it, complete ones included
};

struct SweepOptions {
  std::string out_dir;
  std::optional<int> trial_index;  // run this trial alone (a Slurm array task)
  ResumePolicy resume = ResumePolicy::Continue;
  std::optional<train::Progress> progress;  // unset: Lines with more than one rank, else Auto
  // early_stop sweeps as Slurm array tasks: this process is one ASHA worker named so (stable
  // across requeues); it resumes its own unfinished work and takes over that of workers silent
  // for stale_seconds (sweep/asha_queue.h).
  std::optional<std::string> worker;
  double stale_seconds = 600.0;
};

// Counts over the whole sweep (the same on every rank after run_sweep).
struct SweepSummary {
  long complete = 0;
  long failed = 0;
  long diverged = 0;
  long interrupted = 0;
  long skipped_complete = 0;  // complete before this run, not rerun
  long not_started = 0;       // left in the queue after an interrupt
  long stopped = 0;           // early_stop: trials stopped for good at a rung
  AshaTotals asha;            // early_stop: rung counts, trial-epochs, GPU-hours
  // 3 when interrupted (the same command resumes), else 1 when any trial failed or diverged,
  // else 0.
  int exit_status() const;
};

// Runs the sweep on the ranks of MPI_COMM_WORLD (an MpiSession must be alive); every rank calls
// it. Rank 0 prints the summary. InputError when ranks and ranks_per_trial do not fit, or
// trial_index is out of range.
SweepSummary run_sweep(const SweepSpec& spec, const SweepOptions& options);

}  // namespace md::sweep
