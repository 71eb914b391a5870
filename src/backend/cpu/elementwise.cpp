// Elementwise ops and whole-buffer arithmetic on the CPU: fill, copy, add, mul, axpby, and the
// reductions dot, sum and count_nonfinite. Reductions accumulate in double over fixed blocks
// added in order (ordered_sum), so they are the same for every thread count.
#include <algorithm>
#include <cmath>
#include <cstring>

#include "backend/cpu/cpu_backend.h"
#include "backend/cpu/cpu_common.h"

namespace md::cpu {
void CpuBackend::fill(Tensor& y, double value) {
  const char* op = "fill";
  MD_CHECK(y.defined() && y.device().is_cpu(), "cpu ", op, ": y is ",
           y.defined() ? y.describe() : std::string("undefined"));
  if (y.dtype() == DType::Int32) {
    std::int32_t* output = y.data<std::int32_t>();
    const auto filler = static_cast<std::int32_t>(value);
    parallel_range(y.numel(), [&](std::int64_t begin, std::int64_t end) {
      std::fill(output + begin, output + end, filler);
    });
    return;
  }
  dispatch_float(y.dtype(), op, [&](auto tag) {
    using T = decltype(tag);
    T* output = y.data<T>();
    const T filler = static_cast<T>(value);
    parallel_range(y.numel(), [&](std::int64_t begin, std::int64_t end) {
      std::fill(output + begin, output + end, filler);
    });
  });
}

void CpuBackend::copy(const Tensor& x, Tensor& y) {
  const char* op = "copy";
  MD_CHECK(x.defined() && x.device().is_cpu(), "cpu ", op, ": x is ",
           x.defined() ? x.describe() : std::string("undefined"));
  check_numel(op, "y", y, x.dtype(), x.numel());
  if (x.raw_data() == y.raw_data()) return;
  std::memmove(y.raw_data(), x.raw_data(), x.nbytes());
}

void CpuBackend::add(const Tensor& a, const Tensor& b, Tensor& y) {
  const char* op = "add";
  dispatch_float(a.dtype(), op, [&](auto tag) {
    using T = decltype(tag);
    check_tensor(op, "a", a, a.dtype());
    check_tensor(op, "b", b, a.dtype(), a.shape());
    check_tensor(op, "y", y, a.dtype(), a.shape());
    const T* left = a.data<T>();
    const T* right = b.data<T>();
    T* output = y.data<T>();
    parallel_range(a.numel(), [&](std::int64_t begin, std::int64_t end) {
      for (std::int64_t i = begin; i < end; ++i) output[i] = left[i] + right[i];
    });
  });
}

void CpuBackend::mul(const Tensor& a, const Tensor& b, Tensor& y, Write write) {
  const char* op = "mul";
  dispatch_float(a.dtype(), op, [&](auto tag) {
    using T = decltype(tag);
    check_tensor(op, "a", a, a.dtype());
    check_tensor(op, "b", b, a.dtype(), a.shape());
    check_tensor(op, "y", y, a.dtype(), a.shape());
    const T* left = a.data<T>();
    const T* right = b.data<T>();
    T* output = y.data<T>();
    parallel_range(a.numel(), [&](std::int64_t begin, std::int64_t end) {
      if (write == Write::Accumulate) {
        for (std::int64_t i = begin; i < end; ++i) output[i] += left[i] * right[i];
      } else {
        for (std::int64_t i = begin; i < end; ++i) output[i] = left[i] * right[i];
      }
    });
  });
}

void CpuBackend::axpby(double alpha, const Tensor& x, double beta, Tensor& y) {
  const char* op = "axpby";
  dispatch_float(x.dtype(), op, [&](auto tag) {
    using T = decltype(tag);
    check_tensor(op, "x", x, x.dtype());
    check_numel(op, "y", y, x.dtype(), x.numel());
    const T* input = x.data<T>();
    T* output = y.data<T>();
    const T alpha_t = static_cast<T>(alpha);
    const T beta_t = static_cast<T>(beta);
    if (beta == 0.0) {
      parallel_range(x.numel(), [&](std::int64_t begin, std::int64_t end) {
        for (std::int64_t i = begin; i < end; ++i) output[i] = alpha_t * input[i];
      });
    } else {
      parallel_range(x.numel(), [&](std::int64_t begin, std::int64_t end) {
        for (std::int64_t i = begin; i < end; ++i)
          output[i] = alpha_t * input[i] + beta_t * output[i];
      });
    }
  });
}

double CpuBackend::dot(const Tensor& a, const Tensor& b) {
  const char* op = "dot";
  check_not_capturing("dot (a value returned to the host)");
  double result = 0.0;
  dispatch_float(a.dtype(), op, [&](auto tag) {
    using T = decltype(tag);
    check_tensor(op, "a", a, a.dtype());
    check_numel(op, "b", b, a.dtype(), a.numel());
    const T* left = a.data<T>();
    const T* right = b.data<T>();
    result = ordered_sum(a.numel(), [&](std::int64_t i) {
      return static_cast<double>(left[i]) * static_cast<double>(right[i]);
    });
  });
  return result;
}

double CpuBackend::sum(const Tensor& x) {
  const char* op = "sum";
  check_not_capturing("sum (a value returned to the host)");
  double result = 0.0;
  dispatch_float(x.dtype(), op, [&](auto tag) {
    using T = decltype(tag);
    check_tensor(op, "x", x, x.dtype());
    const T* input = x.data<T>();
    result = ordered_sum(x.numel(), [&](std::int64_t i) { return static_cast<double>(input[i]); });
  });
  return result;
}

std::int64_t CpuBackend::count_nonfinite(const Tensor& x) {
  const char* op = "count_nonfinite";
  check_not_capturing("count_nonfinite (a value returned to the host)");
  double count = 0.0;
  dispatch_float(x.dtype(), op, [&](auto tag) {
    using T = decltype(tag);
    check_tensor(op, "x", x, x.dtype());
    const T* input = x.data<T>();
    count =
        ordered_sum(x.numel(), [&](std::int64_t i) { return std::isfinite(input[i]) ? 0.0 : 1.0; });
  });
  return static_cast<std::int64_t>(count);
}

}  // namespace md::cpu
