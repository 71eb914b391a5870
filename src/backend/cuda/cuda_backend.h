// Entry points of the CUDA backend, the only header of backend/cuda seen by the rest of the
// build (compiled only when MD_CUDA is ON; includes no CUDA header itself).
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>

#include "backend/backend.h"

namespace md::cuda {

// Registers the CUDA DeviceRuntime (caching allocator, copies) when the driver reports at
// least one GPU. Safe to call on a machine without a GPU or driver: it then does nothing.
void register_runtime_if_available();
// GPUs visible to this process; 0 when there is no driver or no device.
int device_count();
// The backend of GPU `device_index` (one stream, cuDNN and cuBLAS handles on that stream).
// Every call into it makes `device_index` the current device for its work, so a rank can own
// GPU local_rank % device_count() whatever device the calling thread had selected.
std::unique_ptr<Backend> make_backend(int device_index);

// ---- runtime switches, process-wide; they apply to every CUDA backend from its next op on.
// Fp32: convolutions and GEMMs in full fp32 FMA arithmetic. Tf32: tensor cores with TF32
// inputs allowed (Ampere and later), about 3e-4 relative error instead of 1e-6. Bf16: the
// operands converted to bfloat16 (convolutions in NHWC), tensor cores, float32 accumulation
// (backend::MathPrecision::Bf16 says what is rounded). Set through backend::set_compute_options.
enum class MathMode { Fp32, Tf32, Bf16 };
// How cuDNN convolution algorithms are chosen (once per shape; the choice is cached):
// Heuristic asks cudnnGetConvolution*Algorithm_v7, Search times candidates (cudnnFind*Ex).
enum class AlgorithmSearch { Heuristic, Search };
// Deterministic restricts cuDNN to deterministic algorithms (convolutions, max-pool backward),
// so that a rerun on the same GPU gives the same bits. Our own kernels are always deterministic.
enum class Determinism { Fastest, Deterministic };

struct Options {
  MathMode math = MathMode::Fp32;
  AlgorithmSearch algorithm_search = AlgorithmSearch::Heuristic;
  Determinism determinism = Determinism::Fastest;
  // Largest cuDNN workspace an algorithm may use; the workspace comes from the caching allocator.
  std::size_t workspace_limit_bytes = std::size_t{512} << 20;
};
void set_options(const Options& options);
Options options();

// ---- the caching device allocator (one per device): freed blocks return to size-class free
// lists and are handed out again, so a training step after warm-up makes no cudaMalloc.
struct AllocatorStats {
  std::size_t bytes_in_use = 0;  // blocks handed out (rounded to their size class)
  std::size_t peak_bytes_in_use = 0;
  std::size_t bytes_cached = 0;   // blocks in the free lists
  std::int64_t malloc_count = 0;  // cudaMalloc calls so far
  std::int64_t free_count = 0;    // cudaFree calls so far (cache releases)
};
// Throws md::Error for a device index this process does not see.
AllocatorStats allocator_stats(int device_index);
// Returns the cached (free) blocks of the device to the driver, after its stream has drained.
void release_cached_memory(int device_index);

}  // namespace md::cuda
