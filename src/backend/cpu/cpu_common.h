// Internal helpers of the CPU backend, shared by its op files: dtype dispatch, argument checks,
// OpenMP loops, order-fixed reductions and a typed GEMM. Only backend/cpu/*.cpp include this
// header. Every loop here is deterministic: work is split so that each index writes its own
// outputs, and sums are taken in fixed blocks added in a fixed order, so that results do not
// depend on the thread count (DESIGN.md §3, "Determinism").
#pragma once

#include <cblas.h>
#include <omp.h>

#include <algorithm>
#include <climits>
#include <cstdint>
#include <type_traits>
#include <vector>

#include "backend/params.h"
#include "core/error.h"
#include "core/tensor.h"

namespace md::cpu {

// Threads of the backend's OpenMP loops (backend::set_cpu_threads); in cpu_backend.cpp.
int thread_count();

// Calls fn(T{}) with T = float or double for the dtype; any other dtype is an error naming op.
template <typename Fn>
void dispatch_float(DType dtype, const char* op, Fn&& fn) {
  switch (dtype) {
    case DType::Float32:
      fn(float{});
      return;
    case DType::Float64:
      fn(double{});
      return;
    default:
      throw Error(detail::concat("cpu ", op, ": unsupported dtype ", dtype_name(dtype),
                                 " (the CPU backend computes float32 and float64)"));
  }
}

// `tensor` is defined, on the CPU and of `dtype`.
inline void check_tensor(const char* op, const char* name, const Tensor& tensor, DType dtype) {
  MD_CHECK(tensor.defined(), "cpu ", op, ": ", name, " is undefined");
  MD_CHECK(tensor.device().is_cpu(), "cpu ", op, ": ", name, " is ", tensor.describe());
  MD_CHECK(tensor.dtype() == dtype, "cpu ", op, ": ", name, " is ", tensor.describe(),
           ", expected ", dtype_name(dtype));
}

// check_tensor plus an exact shape.
inline void check_tensor(const char* op, const char* name, const Tensor& tensor, DType dtype,
                         const Shape& shape) {
  check_tensor(op, name, tensor, dtype);
  MD_CHECK(tensor.shape() == shape, "cpu ", op, ": ", name, " is ", tensor.describe(),
           ", expected shape ", shape_str(shape));
}

// check_tensor plus an element count (flat-buffer ops).
inline void check_numel(const char* op, const char* name, const Tensor& tensor, DType dtype,
                        std::int64_t numel) {
  check_tensor(op, name, tensor, dtype);
  MD_CHECK(tensor.numel() == numel, "cpu ", op, ": ", name, " is ", tensor.describe(),
           ", expected ", numel, " elements");
}

// A scalar loss or upstream gradient: one element.
inline void check_scalar(const char* op, const char* name, const Tensor& tensor, DType dtype) {
  check_tensor(op, name, tensor, dtype);
  MD_CHECK(tensor.numel() == 1, "cpu ", op, ": ", name, " is ", tensor.describe(),
           ", expected a scalar");
}

// Writes one gradient element according to the Write mode (Overwrite ignores what was there).
template <typename T>
inline void write_value(T& out, T value, Write write) {
  out = write == Write::Accumulate ? out + value : value;
}

// Total work (about one element touched per unit) below which a loop runs serially: a parallel
// region costs more than it saves on small tensors, and much more on a loaded machine.
constexpr std::int64_t parallel_work_threshold = std::int64_t{1} << 15;

// Runs body(i) for i in [0, count) on the backend's threads when count · work_per_item is worth
// it, else serially. Each index must write only its own outputs.
template <typename Body>
void parallel_for(std::int64_t count, std::int64_t work_per_item, const Body& body) {
  const bool parallel = count > 1 && count * work_per_item >= parallel_work_threshold;
#pragma omp parallel for num_threads(thread_count()) schedule(static) if (parallel)
  for (std::int64_t i = 0; i < count; ++i) body(i);
}

// Elements below which an elementwise loop runs on one thread: forking the team costs more
// than a memory-bound pass over fewer elements saves.
constexpr std::int64_t parallel_range_threshold = std::int64_t{1} << 16;

// Runs body(begin, end) over contiguous pieces of [0, count): one piece when count is below
// parallel_range_threshold or there is one thread, else one piece per thread (a multiple of 64
// elements long). For elementwise loops whose element i depends only on inputs at i: the split
// does not change any result, and the body's inner loop stays a plain vectorizable loop.
template <typename Body>
void parallel_range(std::int64_t count, const Body& body) {
  const int threads = thread_count();
  if (count < parallel_range_threshold || threads <= 1) {
    if (count > 0) body(std::int64_t{0}, count);
    return;
  }
#pragma omp parallel num_threads(threads)
  {
    const auto team = static_cast<std::int64_t>(omp_get_num_threads());
    const auto rank = static_cast<std::int64_t>(omp_get_thread_num());
    const std::int64_t piece = ((count + team - 1) / team + 63) / 64 * 64;
    const std::int64_t begin = std::min(count, rank * piece);
    const std::int64_t end = std::min(count, begin + piece);
    if (begin < end) body(begin, end);
  }
}

// Sum of term(i) over [0, count), accumulated in double over fixed blocks whose partial sums are
// added in order: the result is the same for every thread count.
template <typename Term>
double ordered_sum(std::int64_t count, const Term& term) {
  constexpr std::int64_t block = 8192;
  const std::int64_t blocks = (count + block - 1) / block;
  std::vector<double> partial(static_cast<std::size_t>(blocks), 0.0);
  parallel_for(blocks, block, [&](std::int64_t which) {
    const std::int64_t begin = which * block;
    const std::int64_t end = std::min(count, begin + block);
    double total = 0.0;
    for (std::int64_t i = begin; i < end; ++i) total += term(i);
    partial[static_cast<std::size_t>(which)] = total;
  });
  double total = 0.0;
  for (double value : partial) total += value;
  return total;
}

inline blasint blas_int(std::int64_t value) {
  MD_CHECK(value >= 0 && value <= INT_MAX, "cpu gemm: dimension ", value,
           " exceeds the BLAS range");
  return static_cast<blasint>(value);
}

// c (m x n, row-major, leading dimension ldc) = alpha · op(a) · op(b) + beta · c, where op(a) is
// m x k and op(b) is k x n. beta = 0 ignores what c held (BLAS semantics). One single-threaded
// BLAS call in the calling thread.
template <typename T>
void gemm_serial(CBLAS_TRANSPOSE transpose_a, CBLAS_TRANSPOSE transpose_b, std::int64_t m,
                 std::int64_t n, std::int64_t k, T alpha, const T* a, std::int64_t lda, const T* b,
                 std::int64_t ldb, T beta, T* c, std::int64_t ldc) {
  if (m == 0 || n == 0) return;
  if (k == 0) {  // an empty product: c = beta · c, spelled out (beta = 0 still clears NaN)
    for (std::int64_t row = 0; row < m; ++row) {
      for (std::int64_t col = 0; col < n; ++col) {
        T& value = c[row * ldc + col];
        value = beta == T(0) ? T(0) : beta * value;
      }
    }
    return;
  }
  if constexpr (std::is_same_v<T, float>) {
    cblas_sgemm(CblasRowMajor, transpose_a, transpose_b, blas_int(m), blas_int(n), blas_int(k),
                alpha, a, blas_int(lda), b, blas_int(ldb), beta, c, blas_int(ldc));
  } else {
    cblas_dgemm(CblasRowMajor, transpose_a, transpose_b, blas_int(m), blas_int(n), blas_int(k),
                alpha, a, blas_int(lda), b, blas_int(ldb), beta, c, blas_int(ldc));
  }
}

// The same product on the backend's threads. BLAS itself runs single-threaded (one thread
// pool, OpenMP's, for the whole backend): the longer side of c is cut into blocks whose sizes
// depend only on the shape, one BLAS call per block, so the bits do not depend on the thread
// count. Blocks are at least 256 long: every call packs its whole op(a) or op(b) panel again,
// and 64-long blocks cost 10-25 % on large weights. Inside another parallel region (a loop over
// conv chunks) the blocks run on the calling thread.
template <typename T>
void gemm(CBLAS_TRANSPOSE transpose_a, CBLAS_TRANSPOSE transpose_b, std::int64_t m, std::int64_t n,
          std::int64_t k, T alpha, const T* a, std::int64_t lda, const T* b, std::int64_t ldb,
          T beta, T* c, std::int64_t ldc) {
  constexpr std::int64_t min_block = 256;
  constexpr std::int64_t max_blocks = 32;
  const bool split_columns = n >= m;
  const std::int64_t length = split_columns ? n : m;
  const std::int64_t block = std::max(min_block, (length + max_blocks - 1) / max_blocks);
  const std::int64_t blocks = (length + block - 1) / block;
  const std::int64_t block_flops = (split_columns ? m : n) * block * k;
  parallel_for(blocks, block_flops / 8, [&](std::int64_t which) {
    const std::int64_t begin = which * block;
    const std::int64_t size = std::min(block, length - begin);
    if (split_columns) {
      const T* b_block = transpose_b == CblasNoTrans ? b + begin : b + begin * ldb;
      gemm_serial(transpose_a, transpose_b, m, size, k, alpha, a, lda, b_block, ldb, beta,
                  c + begin, ldc);
    } else {
      const T* a_block = transpose_a == CblasNoTrans ? a + begin * lda : a + begin;
      gemm_serial(transpose_a, transpose_b, size, n, k, alpha, a_block, lda, b, ldb, beta,
                  c + begin * ldc, ldc);
    }
  });
}

}  // namespace md::cpu
