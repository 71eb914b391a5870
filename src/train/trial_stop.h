// The rule by which a trial ends before its last epoch, decided alike on every rank of a
// data-parallel trial. An interrupt (SIGTERM or SIGUSR1 on any rank, core/interrupt.h) ends it
// between two batches: the trainer writes its checkpoint and throws the md::Interrupted of
// interruption(). A non-finite loss (a log interval's mean, or the epoch's mean, on any rank)
// ends it as io::TrialStatus::Diverged with divergence_error() as its error. The queries that
// consult the other ranks are collective calls: every rank makes them at the same point.
#pragma once

#include <cstdint>
#include <string>

#include "core/error.h"
#include "train/collective.h"

namespace md::train {

class StopRule {
 public:
  explicit StopRule(Collective& collective) : collective_(collective) {}

  // Whether any rank received SIGTERM or SIGUSR1 (collective).
  bool interrupt_requested();
  // A loss this rank saw: a non-finite one marks this rank diverged.
  void observe_loss(double loss);
  // Whether any rank is marked diverged (collective); then every rank is.
  bool diverged_on_any_rank();
  // This rank's mark, as of its last observe_loss or diverged_on_any_rank.
  bool diverged() const { return diverged_; }

 private:
  Collective& collective_;
  bool diverged_ = false;
};

// The md::Interrupted of a trial stopped by a signal before `batch_in_epoch` of `epoch`, its
// checkpoint written to `checkpoint_path`.
Interrupted interruption(const std::string& trial_id, int epoch, std::int64_t batch_in_epoch,
                         const std::string& checkpoint_path);

// The error of a diverged trial, recorded in its log.
std::string divergence_error(std::int64_t step);

}  // namespace md::train
