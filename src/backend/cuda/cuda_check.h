// Checks for every CUDA runtime, cuDNN and cuBLAS call of the CUDA backend: a failing call
// throws md::Error naming the call, the library's message, the file and the line. Destructors
// use the *_LOG_ON_ERROR forms, which log through md::log_error and never throw.
// Private to backend/cuda.
#pragma once

#include <cublas_v2.h>
#include <cuda_runtime_api.h>
#include <cudnn.h>

namespace md::cuda::detail {

[[noreturn]] void throw_cuda_error(cudaError_t status, const char* call, const char* file,
                                   int line);
[[noreturn]] void throw_cudnn_error(cudnnStatus_t status, const char* call, const char* file,
                                    int line);
[[noreturn]] void throw_cublas_error(cublasStatus_t status, const char* call, const char* file,
                                     int line);
void log_cuda_error(cudaError_t status, const char* call, const char* file, int line) noexcept;
void log_cudnn_error(cudnnStatus_t status, const char* call, const char* file, int line) noexcept;
void log_cublas_error(cublasStatus_t status, const char* call, const char* file, int line) noexcept;

}  // namespace md::cuda::detail

#define MD_CUDA_CHECK(call)                                                             \
  do {                                                                                  \
    const cudaError_t md_cuda_status_ = (call);                                         \
    if (md_cuda_status_ != cudaSuccess) {                                               \
      ::md::cuda::detail::throw_cuda_error(md_cuda_status_, #call, __FILE__, __LINE__); \
    }                                                                                   \
  } while (false)

#define MD_CUDNN_CHECK(call)                                                              \
  do {                                                                                    \
    const cudnnStatus_t md_cudnn_status_ = (call);                                        \
    if (md_cudnn_status_ != CUDNN_STATUS_SUCCESS) {                                       \
      ::md::cuda::detail::throw_cudnn_error(md_cudnn_status_, #call, __FILE__, __LINE__); \
    }                                                                                     \
  } while (false)

#define MD_CUBLAS_CHECK(call)                                                               \
  do {                                                                                      \
    const cublasStatus_t md_cublas_status_ = (call);                                        \
    if (md_cublas_status_ != CUBLAS_STATUS_SUCCESS) {                                       \
      ::md::cuda::detail::throw_cublas_error(md_cublas_status_, #call, __FILE__, __LINE__); \
    }                                                                                       \
  } while (false)

#define MD_CUDA_LOG_ON_ERROR(call)                                                    \
  do {                                                                                \
    const cudaError_t md_cuda_status_ = (call);                                       \
    if (md_cuda_status_ != cudaSuccess) {                                             \
      ::md::cuda::detail::log_cuda_error(md_cuda_status_, #call, __FILE__, __LINE__); \
    }                                                                                 \
  } while (false)

#define MD_CUDNN_LOG_ON_ERROR(call)                                                     \
  do {                                                                                  \
    const cudnnStatus_t md_cudnn_status_ = (call);                                      \
    if (md_cudnn_status_ != CUDNN_STATUS_SUCCESS) {                                     \
      ::md::cuda::detail::log_cudnn_error(md_cudnn_status_, #call, __FILE__, __LINE__); \
    }                                                                                   \
  } while (false)

#define MD_CUBLAS_LOG_ON_ERROR(call)                                                      \
  do {                                                                                    \
    const cublasStatus_t md_cublas_status_ = (call);                                      \
    if (md_cublas_status_ != CUBLAS_STATUS_SUCCESS) {                                     \
      ::md::cuda::detail::log_cublas_error(md_cublas_status_, #call, __FILE__, __LINE__); \
    }                                                                                     \
  } while (false)
