// The interrupt and divergence rule of a trial (see trial_stop.h).
#include "train/trial_stop.h"

#include <cmath>

#include "core/interrupt.h"

namespace md::train {

bool StopRule::interrupt_requested() {
  return collective_.any(md::interrupt_requested());
}

void StopRule::observe_loss(double loss) {
  if (!std::isfinite(loss)) diverged_ = true;
}

bool StopRule::diverged_on_any_rank() {
  diverged_ = collective_.any(diverged_);
  return diverged_;
}

Interrupted interruption(const std::string& trial_id, int epoch, std::int64_t batch_in_epoch,
                         const std::string& checkpoint_path) {
  return Interrupted("trial " + trial_id + " interrupted by signal " +
                     std::to_string(interrupt_signal()) + " at epoch " + std::to_string(epoch) +
                     " batch " + std::to_string(batch_in_epoch) + "; checkpoint written to " +
                     checkpoint_path);
}

std::string divergence_error(std::int64_t step) {
  return "loss is not finite at step " + std::to_string(step);
}

}  // namespace md::train
