// Turns CUDA, cuDNN and cuBLAS status codes into md::Error (or a log line in destructors).
#include "backend/cuda/cuda_check.h"

#include <string>

#include "core/error.h"
#include "core/logging.h"

namespace md::cuda::detail {
namespace {

std::string describe(const char* library, const char* call, const char* message, const char* file,
                     int line) {
  return std::string(library) + " call " + call + " failed: " + message + " (" + file + ":" +
         std::to_string(line) + ")";
}

}  // namespace

void throw_cuda_error(cudaError_t status, const char* call, const char* file, int line) {
  // Clears the (non-sticky) error so that later checks do not report it again.
  cudaGetLastError();
  throw Error(describe("CUDA", call, cudaGetErrorString(status), file, line));
}

void throw_cudnn_error(cudnnStatus_t status, const char* call, const char* file, int line) {
  throw Error(describe("cuDNN", call, cudnnGetErrorString(status), file, line));
}

void throw_cublas_error(cublasStatus_t status, const char* call, const char* file, int line) {
  throw Error(describe("cuBLAS", call, cublasGetStatusString(status), file, line));
}

void log_cuda_error(cudaError_t status, const char* call, const char* file, int line) noexcept {
  try {
    log_error(describe("CUDA", call, cudaGetErrorString(status), file, line));
  } catch (...) {
  }
}

void log_cudnn_error(cudnnStatus_t status, const char* call, const char* file, int line) noexcept {
  try {
    log_error(describe("cuDNN", call, cudnnGetErrorString(status), file, line));
  } catch (...) {
  }
}

void log_cublas_error(cublasStatus_t status, const char* call, const char* file,
                      int line) noexcept {
  try {
    log_error(describe("cuBLAS", call, cublasGetStatusString(status), file, line));
  } catch (...) {
  }
}

}  // namespace md::cuda::detail
