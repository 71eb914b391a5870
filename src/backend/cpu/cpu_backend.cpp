// The CPU backend's instance and its thread setting. The backend has one thread pool, OpenMP's:
// every parallel region asks thread_count() for its size, and the GEMMs are split into blocks
// over those threads (cpu_common.h), each block one single-threaded OpenBLAS call. OpenBLAS's
// own threads stay off: two pools on the same cores spin against each other, and a split that
// depends on the shape alone keeps results bit-identical for any thread count. The op
// implementations live in the op-family files of this folder.
#include "backend/cpu/cpu_backend.h"

#include <cblas.h>
#include <omp.h>

#include <atomic>

#include "backend/cpu/cpu_common.h"

namespace md {
namespace cpu {
namespace {
// 0: not configured yet (use OpenMP's default, which honours OMP_NUM_THREADS).
std::atomic<int> configured_threads{0};

CpuBackend make_backend() {
  openblas_set_num_threads(1);  // BLAS runs inside the backend's own parallel blocks
  return CpuBackend();
}
}  // namespace

int thread_count() {
  const int configured = configured_threads.load(std::memory_order_relaxed);
  return configured > 0 ? configured : omp_get_max_threads();
}

CpuBackend& instance() {
  static CpuBackend backend = make_backend();
  return backend;
}

}  // namespace cpu

namespace backend {

void set_cpu_threads(int threads) {
  MD_CHECK(threads >= 0, "set_cpu_threads: thread count ", threads, " is negative");
  const int effective = threads == 0 ? omp_get_num_procs() : threads;
  cpu::configured_threads.store(effective, std::memory_order_relaxed);
  omp_set_num_threads(effective);
  openblas_set_num_threads(1);  // BLAS calls run inside the backend's own parallel blocks
}

int cpu_threads() {
  return cpu::thread_count();
}

}  // namespace backend
}  // namespace md
