// RAII owners of the CUDA backend's handles: the current-device guard, cuDNN and cuBLAS
// handles, and cuDNN descriptors. Move-only; destructors log failures and never throw.
// The descriptor builders check that every extent fits cuDNN's int arguments.
// Private to backend/cuda.
#pragma once

#include <cstdint>
#include <utility>

#include "backend/cuda/cuda_backend.h"
#include "backend/cuda/cuda_check.h"
#include "backend/params.h"

namespace md::cuda {

// Makes `device` current for the guard's lifetime and restores the previous device after.
class DeviceGuard {
 public:
  explicit DeviceGuard(int device);
  ~DeviceGuard();
  DeviceGuard(const DeviceGuard&) = delete;
  DeviceGuard& operator=(const DeviceGuard&) = delete;

 private:
  int previous_ = -1;
  bool switched_ = false;
};

// One owner template for every cuDNN/cuBLAS object: Traits gives the handle type, the
// create/destroy calls and a name for the log line.
template <typename Traits>
class UniqueHandle {
 public:
  using Handle = typename Traits::Handle;

  UniqueHandle() { Traits::create(&handle_); }
  ~UniqueHandle() { reset(); }
  UniqueHandle(UniqueHandle&& other) noexcept : handle_(std::exchange(other.handle_, nullptr)) {}
  UniqueHandle& operator=(UniqueHandle&& other) noexcept {
    if (this != &other) {
      reset();
      handle_ = std::exchange(other.handle_, nullptr);
    }
    return *this;
  }
  UniqueHandle(const UniqueHandle&) = delete;
  UniqueHandle& operator=(const UniqueHandle&) = delete;

  Handle get() const { return handle_; }
  // Destroys the handle now.
  void reset() noexcept {
    if (handle_ != nullptr) Traits::destroy(handle_);
    handle_ = nullptr;
  }
  // Gives up ownership without destroying (at process exit, after the CUDA runtime is gone).
  void abandon() noexcept { handle_ = nullptr; }

 private:
  Handle handle_ = nullptr;
};

struct CudnnHandleTraits {
  using Handle = cudnnHandle_t;
  static void create(Handle* handle) { MD_CUDNN_CHECK(cudnnCreate(handle)); }
  static void destroy(Handle handle) noexcept { MD_CUDNN_LOG_ON_ERROR(cudnnDestroy(handle)); }
};
struct CublasHandleTraits {
  using Handle = cublasHandle_t;
  static void create(Handle* handle) { MD_CUBLAS_CHECK(cublasCreate(handle)); }
  static void destroy(Handle handle) noexcept { MD_CUBLAS_LOG_ON_ERROR(cublasDestroy(handle)); }
};
struct TensorDescriptorTraits {
  using Handle = cudnnTensorDescriptor_t;
  static void create(Handle* handle) { MD_CUDNN_CHECK(cudnnCreateTensorDescriptor(handle)); }
  static void destroy(Handle handle) noexcept {
    MD_CUDNN_LOG_ON_ERROR(cudnnDestroyTensorDescriptor(handle));
  }
};
struct FilterDescriptorTraits {
  using Handle = cudnnFilterDescriptor_t;
  static void create(Handle* handle) { MD_CUDNN_CHECK(cudnnCreateFilterDescriptor(handle)); }
  static void destroy(Handle handle) noexcept {
    MD_CUDNN_LOG_ON_ERROR(cudnnDestroyFilterDescriptor(handle));
  }
};
struct ConvolutionDescriptorTraits {
  using Handle = cudnnConvolutionDescriptor_t;
  static void create(Handle* handle) { MD_CUDNN_CHECK(cudnnCreateConvolutionDescriptor(handle)); }
  static void destroy(Handle handle) noexcept {
    MD_CUDNN_LOG_ON_ERROR(cudnnDestroyConvolutionDescriptor(handle));
  }
};
struct PoolingDescriptorTraits {
  using Handle = cudnnPoolingDescriptor_t;
  static void create(Handle* handle) { MD_CUDNN_CHECK(cudnnCreatePoolingDescriptor(handle)); }
  static void destroy(Handle handle) noexcept {
    MD_CUDNN_LOG_ON_ERROR(cudnnDestroyPoolingDescriptor(handle));
  }
};

using CudnnHandle = UniqueHandle<CudnnHandleTraits>;
using CublasHandle = UniqueHandle<CublasHandleTraits>;
using TensorDescriptor = UniqueHandle<TensorDescriptorTraits>;
using FilterDescriptor = UniqueHandle<FilterDescriptorTraits>;
using ConvolutionDescriptor = UniqueHandle<ConvolutionDescriptorTraits>;
using PoolingDescriptor = UniqueHandle<PoolingDescriptorTraits>;

// A dense float32 NCHW tensor descriptor.
struct Nchw {
  std::int64_t n = 1;
  std::int64_t c = 1;
  std::int64_t h = 1;
  std::int64_t w = 1;
};
// (N, C, ...) as (N, C, prod(...), 1): the view of a per-channel op over any trailing axes.
Nchw channel_view(const Shape& shape);

// How a convolution's tensors are stored: float32 NCHW (the engine's tensors), or the bfloat16
// NHWC copies of MathMode::Bf16 (weights as O·K·K·C/groups).
enum class ConvStorage { Float32Nchw, Bfloat16Nhwc };

// dims are the logical (N, C, H, W) extents whatever the storage.
TensorDescriptor make_tensor_descriptor(const Nchw& dims,
                                        ConvStorage storage = ConvStorage::Float32Nchw);
// weight: (O, C/groups, K, K)
FilterDescriptor make_filter_descriptor(const Shape& weight_shape,
                                        ConvStorage storage = ConvStorage::Float32Nchw);
// Cross-correlation (PyTorch's convolution), float32 compute; the math type is set per call.
ConvolutionDescriptor make_convolution_descriptor(const Conv2dParams& params);
PoolingDescriptor make_pooling_descriptor(PoolKind kind, const Pool2dParams& params,
                                          Determinism determinism);

// An extent for a cuDNN/cuBLAS int argument; throws md::Error naming `what` when too large.
int to_int(std::int64_t value, const char* what);

}  // namespace md::cuda
