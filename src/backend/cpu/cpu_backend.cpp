// The CPU backend's instance and its thread setting. The backend has one thread pool, OpenMP's:
// every parallel region asks thread_count() for its size, and the GEMMs are split into blocks
// over those threads (cpu_common.h), each block one single-threaded OpenBLAS call. OpenBLAS's
// own threads stay off: two pools on the same cores spin against each other, and a split that
// depends on the shape alone keeps results bit-identical for any thread count. The op
// implementations live in the op-family files of this folder.
//
// Creating the backend also tells glibc's malloc to keep freed memory: a training step
// allocates and frees activations of up to tens of MiB, which malloc would otherwise map and
// unmap every step (fresh zeroed pages faulted in on first touch, and TLB shootdowns across the
// backend's threads on every unmap): about 10 % of a resnet20 step. The heap then stays at its
// high-water mark, a few percent above the step's peak (resnet18_cifar at batch 128: peak RSS
// 1212 -> 1250 MiB).
#include "backend/cpu/cpu_backend.h"

#include <cblas.h>
#include <omp.h>

#include <atomic>
#include <cstdlib>
#if defined(__GLIBC__)
#include <malloc.h>
#endif

#include "backend/cpu/cpu_common.h"

namespace md {
namespace cpu {
namespace {
// 0: not configured yet (use OpenMP's default, which honours OMP_NUM_THREADS).
std::atomic<int> configured_threads{0};

// Large blocks come from the heap (no mmap: the largest mmap threshold malloc accepts, 32 MiB,
// is one resnet18 activation at batch 128) and freed memory is not trimmed back to the system.
void keep_freed_memory() {
#if defined(__GLIBC__)
  constexpr int trim_threshold = 1 << 30;
  mallopt(M_MMAP_MAX, 0);
  mallopt(M_TRIM_THRESHOLD, trim_threshold);
#endif
}

CpuBackend make_backend() {
  openblas_set_num_threads(1);  // BLAS runs inside the backend's own parallel blocks
  keep_freed_memory();
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
