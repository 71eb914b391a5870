#include "train/schedule.h"

#include <cmath>

namespace md::train {

double learning_rate(const ScheduleSpec& spec, int epoch, long long batch,
                     long long batches_per_epoch) {
  const double per_epoch = static_cast<double>(batches_per_epoch > 0 ? batches_per_epoch : 1);
  const double progress = epoch + static_cast<double>(batch) / per_epoch;  // epochs done
  if (spec.warmup_epochs > 0 && progress < spec.warmup_epochs) {
    const double step = static_cast<double>(epoch) * per_epoch + static_cast<double>(batch) + 1;
    return spec.base_lr * step / (spec.warmup_epochs * per_epoch);
  }
  if (spec.kind == ScheduleKind::Multistep) {
    double rate = spec.base_lr;
    for (int milestone : spec.milestones) {
      if (epoch >= milestone) rate *= spec.gamma;
    }
    return rate;
  }
  const double span = std::max(1.0, static_cast<double>(spec.epochs - spec.warmup_epochs));
  const double t = std::min(1.0, (progress - spec.warmup_epochs) / span);
  return 0.5 * spec.base_lr * (1.0 + std::cos(M_PI * t));
}

}  // namespace md::train
