// Learning-rate schedules as pure functions of training progress, so a resumed run recomputes
// the same rate from (epoch, batch) alone and nothing about the schedule needs checkpointing.
#pragma once

#include <vector>

namespace md::train {

enum class ScheduleKind { Multistep, Cosine };

struct ScheduleSpec {
  ScheduleKind kind = ScheduleKind::Multistep;
  double base_lr = 0.1;
  int epochs = 200;
  std::vector<int> milestones = {100, 150};  // epochs at which lr *= gamma (multistep)
  double gamma = 0.1;
  int warmup_epochs = 0;  // linear warmup from base_lr / (warmup steps) to base_lr
};

// The rate for batch `batch` (0-based) of epoch `epoch` (0-based) with `batches_per_epoch`.
// Warmup is linear per step; multistep changes at epoch boundaries; cosine anneals per step
// from base_lr to 0 over the epochs after warmup.
double learning_rate(const ScheduleSpec& spec, int epoch, long long batch,
                     long long batches_per_epoch);

}  // namespace md::train
