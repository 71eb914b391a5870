// A trial's progress lines on stderr (rank 0 only): epoch, batch, loss, throughput, test
// accuracy and the ETA from the rate since this run of the trial started.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>

#include "train/trainer.h"

namespace md::train {

// Where a trial stands and its latest figures, as a progress line shows them.
struct ProgressState {
  int epoch = 0;  // 0-based
  std::int64_t batch_in_epoch = 0;
  std::int64_t batches_per_epoch = 0;
  double loss = 0.0;
  double images_per_second = 0.0;
  double test_accuracy = 0.0;
};

class ProgressPrinter {
 public:
  using Clock = std::chrono::steady_clock;
  // `enabled` false prints nothing (ranks other than 0); `start` is when this run began.
  ProgressPrinter(bool enabled, Progress mode, std::string label, int epochs,
                  Clock::time_point start);

  // One line; on a terminal it rewrites the current line, ended by `final_line`.
  void report(const ProgressState& state, bool final_line);

 private:
  bool enabled_;
  Progress mode_;
  std::string label_;
  int epochs_;
  Clock::time_point start_;
  double done_at_start_ = -1.0;  // batches done at the first line (the ETA's rate)
};

}  // namespace md::train
