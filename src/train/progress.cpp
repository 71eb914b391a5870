#include "train/progress.h"

#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <utility>

namespace md::train {
namespace {

std::string format_duration(double seconds) {
  long total = static_cast<long>(seconds);
  char text[32];
  std::snprintf(text, sizeof text, "%02ld:%02ld:%02ld", total / 3600, (total / 60) % 60,
                total % 60);
  return text;
}

}  // namespace

ProgressPrinter::ProgressPrinter(bool enabled, Progress mode, std::string label, int epochs,
                                 Clock::time_point start)
    : enabled_(enabled), mode_(mode), label_(std::move(label)), epochs_(epochs), start_(start) {}

void ProgressPrinter::report(const ProgressState& state, bool final_line) {
  if (!enabled_ || mode_ == Progress::Off) return;
  const bool terminal =
      mode_ == Progress::Terminal || (mode_ == Progress::Auto && isatty(fileno(stderr)));
  const double done = state.epoch * static_cast<double>(state.batches_per_epoch) +
                      static_cast<double>(state.batch_in_epoch);
  const double total = epochs_ * static_cast<double>(state.batches_per_epoch);
  const double elapsed = std::chrono::duration<double>(Clock::now() - start_).count();
  if (done_at_start_ < 0) done_at_start_ = done;
  const double rate = (done - done_at_start_) / std::max(elapsed, 1e-9);
  const double eta = rate > 0 ? (total - done) / rate : 0.0;
  char line[256];
  std::snprintf(
      line, sizeof line, "%s epoch %d/%d batch %lld/%lld loss %.4f %.0f img/s test %.4f ETA %s",
      label_.c_str(), state.epoch + 1, epochs_, static_cast<long long>(state.batch_in_epoch),
      static_cast<long long>(state.batches_per_epoch), state.loss, state.images_per_second,
      state.test_accuracy, format_duration(eta).c_str());
  if (terminal) {
    std::fprintf(stderr, "\r%s\033[K%s", line, final_line ? "\n" : "");
  } else {
    std::fprintf(stderr, "%s\n", line);
  }
  std::fflush(stderr);
}

}  // namespace md::train
