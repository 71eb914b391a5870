// Cooperative interruption: SIGTERM and SIGUSR1 (Slurm's time limit and preemption warnings)
// only set a flag; the training loop polls it between steps, writes a checkpoint and stops with
// md::Interrupted (exit status 3). Nothing is done inside the signal handler itself.
#pragma once

namespace md {

// Installs the SIGTERM/SIGUSR1 handlers (idempotent).
void install_interrupt_handlers();
bool interrupt_requested();
int interrupt_signal();                     // the signal that set the flag, 0 if none
void request_interrupt(int signal_number);  // for tests and for peers' requests
void clear_interrupt();

}  // namespace md
