// The OpenMP wait policy of the process. libgomp reads OMP_WAIT_POLICY once, when it is loaded,
// and by default spins for a while before sleeping; with ranks (or other processes) sharing the
// cores, the spinning threads take the cores from the working ones (threads 2 ran at 16 img/s
// against 115 img/s with OMP_WAIT_POLICY=passive). So when the user has not chosen a policy,
// main() sets it to passive and re-executes the program once, before anything else (MPI_Init
// included), guarded by an environment marker so that it cannot loop. It must not override a
// policy the user set.
#pragma once

#include <string>

namespace md::cli {

// If OMP_WAIT_POLICY is unset (and this process is not already the re-executed one), sets it to
// "passive" and re-executes /proc/self/exe with the same arguments; returns only when there was
// nothing to do or the re-exec failed (then with a warning on stderr, the run goes on).
void apply_omp_wait_policy(char** argv);

// OMP_WAIT_POLICY as it was in the environment this process image started with (the one
// libgomp saw: /proc/self/environ, which setenv() does not change); "" when it was unset or
// /proc is unavailable.
std::string omp_wait_policy_at_start();

}  // namespace md::cli
