// Softmax and log-softmax over the last axis on the CPU, numerically stable (the row maximum is
// subtracted before exp), forward and backward. Backward ops read the forward output y. One
// row per loop index; row sums accumulate in double in index order.
#include <cmath>

#include "backend/cpu/cpu_backend.h"
#include "backend/cpu/cpu_common.h"

namespace md::cpu {
namespace {

enum class SoftmaxKind { Probabilities, LogProbabilities };

struct Rows {
  std::int64_t count = 0;
  std::int64_t width = 0;  // K, the last axis
};

Rows rows_of(const char* op, const Tensor& x) {
  MD_CHECK(x.ndim() >= 1 && x.dim(-1) > 0, "cpu ", op, ": x ", x.describe(),
           " has no last axis to normalize");
  return Rows{x.numel() / x.dim(-1), x.dim(-1)};
}

template <typename T>
void softmax_row(const T* x, T* y, std::int64_t width, SoftmaxKind kind) {
  T maximum = x[0];
  for (std::int64_t k = 1; k < width; ++k) maximum = std::max(maximum, x[k]);
  double total = 0.0;
  for (std::int64_t k = 0; k < width; ++k) total += std::exp(static_cast<double>(x[k] - maximum));
  if (kind == SoftmaxKind::Probabilities) {
    const double inverse = 1.0 / total;
    for (std::int64_t k = 0; k < width; ++k) {
      y[k] = static_cast<T>(std::exp(static_cast<double>(x[k] - maximum)) * inverse);
    }
  } else {
    const T log_total = static_cast<T>(std::log(total));
    for (std::int64_t k = 0; k < width; ++k) y[k] = x[k] - maximum - log_total;
  }
}

void softmax_forward_any(const char* op, const Tensor& x, Tensor& y, SoftmaxKind kind) {
  dispatch_float(x.dtype(), op, [&](auto tag) {
    using T = decltype(tag);
    check_tensor(op, "x", x, x.dtype());
    check_tensor(op, "y", y, x.dtype(), x.shape());
    const Rows rows = rows_of(op, x);
    const T* input = x.data<T>();
    T* output = y.data<T>();
    parallel_for(rows.count, 4 * rows.width, [&](std::int64_t row) {
      softmax_row(input + row * rows.width, output + row * rows.width, rows.width, kind);
    });
  });
}

void softmax_backward_any(const char* op, const Tensor& y, const Tensor& grad_y, Tensor& grad_x,
                          Write write, SoftmaxKind kind) {
  dispatch_float(y.dtype(), op, [&](auto tag) {
    using T = decltype(tag);
    check_tensor(op, "y", y, y.dtype());
    check_tensor(op, "grad_y", grad_y, y.dtype(), y.shape());
    check_tensor(op, "grad_x", grad_x, y.dtype(), y.shape());
    const Rows rows = rows_of(op, y);
    const T* output = y.data<T>();
    const T* upstream = grad_y.data<T>();
    T* downstream = grad_x.data<T>();
    parallel_for(rows.count, 4 * rows.width, [&](std::int64_t row) {
      const T* y_row = output + row * rows.width;
      const T* grad_row = upstream + row * rows.width;
      T* out_row = downstream + row * rows.width;
      double total = 0.0;
      if (kind == SoftmaxKind::Probabilities) {
        // grad_x = y ⊙ (grad_y − Σ grad_y ⊙ y)
        for (std::int64_t k = 0; k < rows.width; ++k) {
          total += static_cast<double>(grad_row[k]) * static_cast<double>(y_row[k]);
        }
        const T projection = static_cast<T>(total);
        for (std::int64_t k = 0; k < rows.width; ++k) {
          write_value(out_row[k], y_row[k] * (grad_row[k] - projection), write);
        }
      } else {
        // grad_x = grad_y − exp(y) · Σ grad_y
        for (std::int64_t k = 0; k < rows.width; ++k) total += static_cast<double>(grad_row[k]);
        const T row_sum = static_cast<T>(total);
        for (std::int64_t k = 0; k < rows.width; ++k) {
          write_value(out_row[k], grad_row[k] - std::exp(y_row[k]) * row_sum, write);
        }
      }
    });
  });
}

}  // namespace

void CpuBackend::softmax_forward(const Tensor& x, Tensor& y) {
  softmax_forward_any("softmax_forward", x, y, SoftmaxKind::Probabilities);
}

void CpuBackend::softmax_backward(const Tensor& y, const Tensor& grad_y, Tensor& grad_x,
                                  Write write) {
  softmax_backward_any("softmax_backward", y, grad_y, grad_x, write, SoftmaxKind::Probabilities);
}

void CpuBackend::log_softmax_forward(const Tensor& x, Tensor& y) {
  softmax_forward_any("log_softmax_forward", x, y, SoftmaxKind::LogProbabilities);
}

void CpuBackend::log_softmax_backward(const Tensor& y, const Tensor& grad_y, Tensor& grad_x,
                                      Write write) {
  softmax_backward_any("log_softmax_backward", y, grad_y, grad_x, write,
                       SoftmaxKind::LogProbabilities);
}

}  // namespace md::cpu
