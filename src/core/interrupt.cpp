#include "core/interrupt.h"

#include <atomic>
#include <csignal>

namespace md {
namespace {
std::atomic<int> pending_signal{0};

extern "C" void on_interrupt_signal(int signal_number) {
  pending_signal.store(signal_number, std::memory_order_relaxed);
}
}  // namespace

void install_interrupt_handlers() {
  struct sigaction action {};
  action.sa_handler = on_interrupt_signal;
  sigemptyset(&action.sa_mask);
  action.sa_flags = SA_RESTART;
  sigaction(SIGTERM, &action, nullptr);
  sigaction(SIGUSR1, &action, nullptr);
}

bool interrupt_requested() {
  return pending_signal.load(std::memory_order_relaxed) != 0;
}
int interrupt_signal() {
  return pending_signal.load(std::memory_order_relaxed);
}
void request_interrupt(int signal_number) {
  pending_signal.store(signal_number, std::memory_order_relaxed);
}
void clear_interrupt() {
  pending_signal.store(0, std::memory_order_relaxed);
}

}  // namespace md
