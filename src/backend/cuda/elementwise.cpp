// Elementwise ops and whole-buffer arithmetic: fill, copy, add, mul, axpby through the kernels
// of elementwise.cu, and the reductions dot, sum and count_nonfinite, accumulated in double in
// a fixed order (two passes, no atomics) and returned to the host, which waits for the stream.
#include "backend/cuda/cuda_backend_impl.h"
#include "backend/cuda/cuda_check.h"
#include "backend/cuda/kernels.h"
#include "core/error.h"

namespace md::cuda {
namespace {

void check_same_shape(const char* op, const Tensor& a, const Tensor& b) {
  MD_CHECK(a.shape() == b.shape(), op, ": shapes differ: ", a.describe(), " vs ", b.describe());
}

void check_same_numel(const char* op, const Tensor& a, const Tensor& b) {
  MD_CHECK(a.numel() == b.numel(), op, ": element counts differ: ", a.describe(), " vs ",
           b.describe());
}

}  // namespace

template <typename LaunchPartials>
double CudaBackend::reduce_to_host(std::int64_t count, const LaunchPartials& launch_partials) {
  check_not_capturing("a reduction returned to the host (dot, sum, count_nonfinite)");
  if (count == 0) return 0.0;
  const int blocks = kernels::reduction_blocks(count);
  // blocks partial sums, then the total in the last slot.
  DeviceBuffer partials(*context_.allocator,
                        (static_cast<std::size_t>(blocks) + 1) * sizeof(double));
  double* total = partials.as<double>() + blocks;
  launch_partials(partials.as<double>(), blocks);
  kernels::finish_sum(partials.as<double>(), blocks, 1.0, total, nullptr, context_.stream);
  double result = 0.0;
  MD_CUDA_CHECK(
      cudaMemcpyAsync(&result, total, sizeof(double), cudaMemcpyDeviceToHost, context_.stream));
  MD_CUDA_CHECK(cudaStreamSynchronize(context_.stream));
  return result;
}

void CudaBackend::fill(Tensor& y, double value) {
  MD_CHECK(y.defined() && y.device() == device(), "fill on ", device().str(), ": y is ",
           y.describe());
  DeviceGuard guard(device_index_);
  if (y.dtype() == DType::Int32) {
    kernels::fill(y.data<std::int32_t>(), static_cast<std::int32_t>(value), y.numel(),
                  context_.stream);
    return;
  }
  expect_float32("fill", {&y});
  kernels::fill(y.data<float>(), static_cast<float>(value), y.numel(), context_.stream);
}

void CudaBackend::copy(const Tensor& x, Tensor& y) {
  MD_CHECK(x.defined() && y.defined() && x.device() == device() && y.device() == device(),
           "copy on ", device().str(), ": x ", x.describe(), ", y ", y.describe());
  MD_CHECK(x.dtype() == y.dtype() && x.numel() == y.numel(), "copy: x ", x.describe(), " into y ",
           y.describe());
  if (x.numel() == 0 || x.raw_data() == y.raw_data()) return;
  DeviceGuard guard(device_index_);
  MD_CUDA_CHECK(cudaMemcpyAsync(y.raw_data(), x.raw_data(), x.nbytes(), cudaMemcpyDeviceToDevice,
                                context_.stream));
}

void CudaBackend::add(const Tensor& a, const Tensor& b, Tensor& y) {
  expect_float32("add", {&a, &b, &y});
  check_same_shape("add", a, b);
  check_same_shape("add", a, y);
  DeviceGuard guard(device_index_);
  kernels::add(a.data<float>(), b.data<float>(), y.data<float>(), a.numel(), context_.stream);
}

void CudaBackend::mul(const Tensor& a, const Tensor& b, Tensor& y, Write write) {
  expect_float32("mul", {&a, &b, &y});
  check_same_shape("mul", a, b);
  check_same_shape("mul", a, y);
  DeviceGuard guard(device_index_);
  kernels::mul(a.data<float>(), b.data<float>(), y.data<float>(), a.numel(), write_beta(write),
               context_.stream);
}

void CudaBackend::axpby(double alpha, const Tensor& x, double beta, Tensor& y) {
  expect_float32("axpby", {&x, &y});
  check_same_numel("axpby", x, y);
  DeviceGuard guard(device_index_);
  kernels::axpby(static_cast<float>(alpha), x.data<float>(), static_cast<float>(beta),
                 y.data<float>(), x.numel(), context_.stream);
}

double CudaBackend::dot(const Tensor& a, const Tensor& b) {
  expect_float32("dot", {&a, &b});
  check_same_numel("dot", a, b);
  DeviceGuard guard(device_index_);
  const float* left = a.data<float>();
  const float* right = b.data<float>();
  return reduce_to_host(a.numel(), [&](double* partials, int blocks) {
    kernels::dot_partials(left, right, a.numel(), partials, blocks, context_.stream);
  });
}

double CudaBackend::sum(const Tensor& x) {
  expect_float32("sum", {&x});
  DeviceGuard guard(device_index_);
  const float* values = x.data<float>();
  return reduce_to_host(x.numel(), [&](double* partials, int blocks) {
    kernels::sum_partials(values, x.numel(), partials, blocks, context_.stream);
  });
}

std::int64_t CudaBackend::count_nonfinite(const Tensor& x) {
  expect_float32("count_nonfinite", {&x});
  DeviceGuard guard(device_index_);
  const float* values = x.data<float>();
  const double count = reduce_to_host(x.numel(), [&](double* partials, int blocks) {
    kernels::nonfinite_partials(values, x.numel(), partials, blocks, context_.stream);
  });
  return static_cast<std::int64_t>(count);
}

}  // namespace md::cuda
