// The CUDA entry points (cuda_backend.h): device discovery, the DeviceRuntime of CUDA tensors
// (caching allocator, copies on the device's stream), the runtime switches, and the parts of
// CudaBackend shared by all op files. No op is implemented here.
#include "backend/cuda/cuda_backend.h"

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <mutex>

#include "backend/cuda/allocator.h"
#include "backend/cuda/cuda_backend_impl.h"
#include "backend/cuda/cuda_check.h"
#include "backend/cuda/handles.h"
#include "backend/cuda/kernels.h"
#include "core/error.h"
#include "core/logging.h"
#include "core/runtime.h"

namespace md::cuda {
namespace {

// Tensor memory on CUDA devices: every copy runs on the device's stream, the one the ops use,
// so it is ordered after the work that produced its source. Host sources are pageable memory
// (the CPU runtime's), which cudaMemcpyAsync has read by the time it returns.
class CudaRuntime final : public DeviceRuntime {
 public:
  void* allocate(std::size_t bytes, Device device) override {
    return device_context(device.index).allocator->allocate(bytes);
  }
  void deallocate(void* pointer, std::size_t, Device device) noexcept override {
    if (pointer == nullptr) return;
    try {
      device_context(device.index).allocator->deallocate(pointer);
    } catch (const std::exception& error) {
      log_error("CUDA runtime: freeing a block of ", device.str(), ": ", error.what());
    }
  }
  void copy_to_host(void* host_dst, const void* src, std::size_t bytes, Device device) override {
    check_not_capturing("a copy from the device to the host");
    if (bytes == 0) return;
    DeviceContext& context = device_context(device.index);
    DeviceGuard guard(device.index);
    MD_CUDA_CHECK(cudaMemcpyAsync(host_dst, src, bytes, cudaMemcpyDeviceToHost, context.stream));
    MD_CUDA_CHECK(cudaStreamSynchronize(context.stream));
  }
  void copy_from_host(void* dst, const void* host_src, std::size_t bytes, Device device) override {
    check_not_capturing("a copy from the host to the device");
    if (bytes == 0) return;
    DeviceContext& context = device_context(device.index);
    DeviceGuard guard(device.index);
    MD_CUDA_CHECK(cudaMemcpyAsync(dst, host_src, bytes, cudaMemcpyHostToDevice, context.stream));
  }
  void copy_within(void* dst, const void* src, std::size_t bytes, Device device) override {
    if (bytes == 0) return;
    DeviceContext& context = device_context(device.index);
    DeviceGuard guard(device.index);
    MD_CUDA_CHECK(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToDevice, context.stream));
  }
  // Zero patterns and single bytes by cudaMemsetAsync, 32-bit patterns (float32, int32) by
  // the fill kernel, on the stream; other patterns through a host buffer (the default).
  void fill(void* dst, const void* element, std::size_t element_bytes, std::size_t count,
            Device device) override {
    if (count == 0) return;
    const auto* bytes = static_cast<const unsigned char*>(element);
    const bool zero =
        std::all_of(bytes, bytes + element_bytes, [](unsigned char b) { return b == 0; });
    if (!zero && element_bytes != 1 && element_bytes != 4) {
      DeviceRuntime::fill(dst, element, element_bytes, count, device);
      return;
    }
    DeviceContext& context = device_context(device.index);
    DeviceGuard guard(device.index);
    if (zero || element_bytes == 1) {
      MD_CUDA_CHECK(cudaMemsetAsync(dst, bytes[0], element_bytes * count, context.stream));
      return;
    }
    std::int32_t word = 0;
    std::memcpy(&word, element, sizeof(word));
    kernels::fill(static_cast<std::int32_t*>(dst), word, static_cast<std::int64_t>(count),
                  context.stream);
  }
  void synchronize(Device device) override {
    check_not_capturing("synchronizing with the device");
    DeviceContext& context = device_context(device.index);
    DeviceGuard guard(device.index);
    MD_CUDA_CHECK(cudaStreamSynchronize(context.stream));
  }
};

std::mutex options_mutex;
Options current_options;

// A handle created with `device` current: cuDNN and cuBLAS handles belong to that device.
template <typename Handle>
Handle create_on_device(int device) {
  DeviceGuard guard(device);
  return Handle();
}

}  // namespace

int device_count() {
  static const int count = [] {
    int devices = 0;
    if (cudaGetDeviceCount(&devices) != cudaSuccess) {
      cudaGetLastError();  // no driver or no device: this process has no GPU
      return 0;
    }
    return devices;
  }();
  return count;
}

void register_runtime_if_available() {
  if (device_count() == 0) return;
  // Lives for the process: tensors may be freed during static destruction.
  static CudaRuntime* runtime = new CudaRuntime();
  register_runtime(DeviceType::Cuda, runtime);
}

std::unique_ptr<Backend> make_backend(int device_index) {
  return std::make_unique<CudaBackend>(device_index);
}

void set_options(const Options& options) {
  std::lock_guard<std::mutex> lock(options_mutex);
  current_options = options;
}

Options options() {
  std::lock_guard<std::mutex> lock(options_mutex);
  return current_options;
}

AllocatorStats allocator_stats(int device_index) {
  return device_context(device_index).allocator->stats();
}

void release_cached_memory(int device_index) {
  device_context(device_index).allocator->release_cached();
}

CudaBackend::CudaBackend(int device_index)
    : device_index_(device_index),
      context_(device_context(device_index)),
      cudnn_(create_on_device<CudnnHandle>(device_index)),
      cublas_(create_on_device<CublasHandle>(device_index)) {
  DeviceGuard guard(device_index_);
  MD_CUDNN_CHECK(cudnnSetStream(cudnn_.get(), context_.stream));
  MD_CUBLAS_CHECK(cublasSetStream(cublas_.get(), context_.stream));
  // Scalars (alpha, beta) are passed from the host.
  MD_CUBLAS_CHECK(cublasSetPointerMode(cublas_.get(), CUBLAS_POINTER_MODE_HOST));
}

CudaBackend::~CudaBackend() {
  // Backends held in statics die after the CUDA runtime has shut down at process exit: then
  // every CUDA call fails, and the handles are left to the exiting process.
  int previous_device = -1;
  if (cudaGetDevice(&previous_device) != cudaSuccess) {
    cudaGetLastError();
    cudnn_.abandon();
    cublas_.abandon();
    return;
  }
  if (previous_device != device_index_) MD_CUDA_LOG_ON_ERROR(cudaSetDevice(device_index_));
  // Work queued on the stream may still use the workspaces the handles own.
  MD_CUDA_LOG_ON_ERROR(cudaStreamSynchronize(context_.stream));
  cudnn_.reset();
  cublas_.reset();
  if (previous_device != device_index_) MD_CUDA_LOG_ON_ERROR(cudaSetDevice(previous_device));
}

void CudaBackend::expect_float32(const char* op,
                                 std::initializer_list<const Tensor*> tensors) const {
  for (const Tensor* tensor : tensors) {
    if (tensor == nullptr || !tensor->defined()) continue;
    if (tensor->dtype() != DType::Float32) {
      throw Error(std::string("CUDA backend: ") + op + " supports float32 only, got " +
                  tensor->describe());
    }
    if (tensor->device() != device()) {
      throw Error(std::string("CUDA backend: ") + op + " on " + device().str() +
                  " got a tensor on another device: " + tensor->describe());
    }
  }
}

void CudaBackend::synchronize() {
  check_not_capturing("synchronizing with the device");
  DeviceGuard guard(device_index_);
  MD_CUDA_CHECK(cudaStreamSynchronize(context_.stream));
}

}  // namespace md::cuda
