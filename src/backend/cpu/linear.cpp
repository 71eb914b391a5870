// linear on the CPU: y = x · weightᵀ + bias as one GEMM, and its backward (two GEMMs and a
// per-output column sum). The bias sum runs per output over the batch in order, so it does not
// depend on the thread count.
#include "backend/cpu/cpu_backend.h"
#include "backend/cpu/cpu_common.h"

namespace md::cpu {

void CpuBackend::linear_forward_exact(const Tensor& x, const Tensor& weight, const Tensor& bias,
                                      Tensor& y) {
  const char* op = "linear_forward";
  dispatch_float(x.dtype(), op, [&](auto tag) {
    using T = decltype(tag);
    check_tensor(op, "x", x, x.dtype());
    check_tensor(op, "weight", weight, x.dtype());
    MD_CHECK(x.ndim() == 2 && weight.ndim() == 2 && weight.dim(1) == x.dim(1), "cpu ", op, ": x ",
             x.describe(), " and weight ", weight.describe(), " are not (N, In) and (Out, In)");
    const std::int64_t batch = x.dim(0);
    const std::int64_t in_features = x.dim(1);
    const std::int64_t out_features = weight.dim(0);
    check_tensor(op, "y", y, x.dtype(), Shape{batch, out_features});
    T* out = y.data<T>();
    T beta = T(0);
    if (bias.defined()) {
      check_tensor(op, "bias", bias, x.dtype(), Shape{out_features});
      const T* values = bias.data<T>();
      parallel_for(batch, out_features, [&](std::int64_t row) {
        std::copy(values, values + out_features, out + row * out_features);
      });
      beta = T(1);
    }
    gemm<T>(CblasNoTrans, CblasTrans, batch, out_features, in_features, T(1), x.data<T>(),
            in_features, weight.data<T>(), in_features, beta, out, out_features);
  });
}

void CpuBackend::linear_backward_exact(const Tensor& x, const Tensor& weight, const Tensor& grad_y,
                                       Tensor& grad_x, Tensor& grad_weight, Tensor& grad_bias,
                                       Write write) {
  const char* op = "linear_backward";
  dispatch_float(x.dtype(), op, [&](auto tag) {
    using T = decltype(tag);
    check_tensor(op, "x", x, x.dtype());
    check_tensor(op, "weight", weight, x.dtype());
    MD_CHECK(x.ndim() == 2 && weight.ndim() == 2 && weight.dim(1) == x.dim(1), "cpu ", op, ": x ",
             x.describe(), " and weight ", weight.describe(), " are not (N, In) and (Out, In)");
    const std::int64_t batch = x.dim(0);
    const std::int64_t in_features = x.dim(1);
    const std::int64_t out_features = weight.dim(0);
    check_tensor(op, "grad_y", grad_y, x.dtype(), Shape{batch, out_features});
    const T beta = write == Write::Accumulate ? T(1) : T(0);
    const T* upstream = grad_y.data<T>();
    if (grad_x.defined()) {
      check_tensor(op, "grad_x", grad_x, x.dtype(), x.shape());
      gemm<T>(CblasNoTrans, CblasNoTrans, batch, in_features, out_features, T(1), upstream,
              out_features, weight.data<T>(), in_features, beta, grad_x.data<T>(), in_features);
    }
    if (grad_weight.defined()) {
      check_tensor(op, "grad_weight", grad_weight, x.dtype(), weight.shape());
      gemm<T>(CblasTrans, CblasNoTrans, out_features, in_features, batch, T(1), upstream,
              out_features, x.data<T>(), in_features, beta, grad_weight.data<T>(), in_features);
    }
    if (grad_bias.defined()) {
      check_tensor(op, "grad_bias", grad_bias, x.dtype(), Shape{out_features});
      T* out = grad_bias.data<T>();
      parallel_for(out_features, batch, [&](std::int64_t feature) {
        T total = T(0);
        for (std::int64_t row = 0; row < batch; ++row)
          total += upstream[row * out_features + feature];
        write_value(out[feature], total, write);
      });
    }
  });
}

}  // namespace md::cpu
