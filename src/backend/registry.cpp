// Which backends this build and this machine have. The CUDA backend is created lazily per
// device when MD_HAVE_CUDA is set and the driver reports a GPU; otherwise only the CPU exists.
#include <memory>
#include <mutex>
#include <vector>

#include "backend/backend.h"
#include "backend/cpu/cpu_backend.h"
#include "core/error.h"
#ifdef MD_HAVE_CUDA
#include "backend/cuda/cuda_backend.h"
#endif

namespace md::backend {
namespace {
std::once_flag init_flag;
std::mutex backends_mutex;
std::vector<std::unique_ptr<Backend>> cuda_backends;
std::mutex options_mutex;
ComputeOptions current_options;
}  // namespace

void set_compute_options(const ComputeOptions& options) {
  {
    std::lock_guard<std::mutex> lock(options_mutex);
    current_options = options;
  }
#ifdef MD_HAVE_CUDA
  cuda::Options cuda_options = cuda::options();
  switch (options.precision) {
    case MathPrecision::Fp32:
      cuda_options.math = cuda::MathMode::Fp32;
      break;
    case MathPrecision::Tf32:
      cuda_options.math = cuda::MathMode::Tf32;
      break;
    case MathPrecision::Bf16:
      cuda_options.math = cuda::MathMode::Bf16;
      break;
  }
  cuda_options.determinism = options.determinism == AlgorithmDeterminism::Deterministic
                                 ? cuda::Determinism::Deterministic
                                 : cuda::Determinism::Fastest;
  cuda::set_options(cuda_options);
#endif
}

ComputeOptions compute_options() {
  std::lock_guard<std::mutex> lock(options_mutex);
  return current_options;
}

PrecisionScope::PrecisionScope(MathPrecision precision) : previous_(compute_options()) {
  ComputeOptions options = previous_;
  options.precision = precision;
  set_compute_options(options);
}

PrecisionScope::~PrecisionScope() {
  set_compute_options(previous_);
}

const char* math_precision_name(MathPrecision precision) {
  switch (precision) {
    case MathPrecision::Fp32:
      return "fp32";
    case MathPrecision::Tf32:
      return "tf32";
    case MathPrecision::Bf16:
      return "bf16";
  }
  return "?";
}

void init() {
  std::call_once(init_flag, [] {
#ifdef MD_HAVE_CUDA
    cuda::register_runtime_if_available();
#endif
  });
}

int cuda_device_count() {
#ifdef MD_HAVE_CUDA
  return cuda::device_count();
#else
  return 0;
#endif
}

Backend& get(Device device) {
  if (device.is_cpu()) return cpu::instance();
  init();
  std::lock_guard<std::mutex> lock(backends_mutex);
  int count = cuda_device_count();
  if (device.index < 0 || device.index >= count) {
    throw Error("device " + device.str() + " is not available (this process sees " +
                std::to_string(count) + " CUDA devices" +
#ifdef MD_HAVE_CUDA
                ")"
#else
                "; built without CUDA)"
#endif
    );
  }
#ifdef MD_HAVE_CUDA
  if (cuda_backends.size() < static_cast<std::size_t>(count))
    cuda_backends.resize(static_cast<std::size_t>(count));
  auto& slot = cuda_backends[static_cast<std::size_t>(device.index)];
  if (!slot) slot = cuda::make_backend(device.index);
  return *slot;
#else
  MD_CHECK(false, "unreachable");
#endif
}

}  // namespace md::backend
