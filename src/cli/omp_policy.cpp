// See omp_policy.h. Runs first in main(), before any library could have started an OpenMP
// thread pool or MPI; uses only the C library, and never exits the process itself.
#include "cli/omp_policy.h"

#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <iterator>

namespace md::cli {
namespace {

constexpr const char* kPolicyVariable = "OMP_WAIT_POLICY";
// Set in the re-executed process: a second pass must not exec again, whatever happened.
constexpr const char* kReexecMarker = "MD_OMP_POLICY_REEXEC";

}  // namespace

void apply_omp_wait_policy(char** argv) {
  if (std::getenv(kReexecMarker) != nullptr) {
    unsetenv(kReexecMarker);  // children (sweep workers, tests) decide for themselves again
    return;
  }
  if (std::getenv(kPolicyVariable) != nullptr) return;
  if (setenv(kPolicyVariable, "passive", 1) != 0 || setenv(kReexecMarker, "1", 1) != 0) return;
  std::fflush(nullptr);
  execv("/proc/self/exe", argv);
  std::fprintf(stderr,
               "metadistill: warning: could not re-execute with OMP_WAIT_POLICY=passive (%s); "
               "set OMP_WAIT_POLICY yourself when processes share cores\n",
               std::strerror(errno));
}

std::string omp_wait_policy_at_start() {
  std::ifstream environ_file("/proc/self/environ", std::ios::binary);
  if (!environ_file) return "";
  const std::string environment((std::istreambuf_iterator<char>(environ_file)),
                                std::istreambuf_iterator<char>());
  const std::string prefix = std::string(kPolicyVariable) + "=";
  std::size_t begin = 0;
  while (begin < environment.size()) {
    std::size_t end = environment.find('\0', begin);
    if (end == std::string::npos) end = environment.size();
    if (environment.compare(begin, prefix.size(), prefix) == 0) {
      return environment.substr(begin + prefix.size(), end - begin - prefix.size());
    }
    begin = end + 1;
  }
  return "";
}

}  // namespace md::cli
