// Bit-identical results on the CPU: two runs of conv2d and batch norm (forward and backward)
// give the same bits, and so do runs with one and two threads (OpenMP loops and OpenBLAS).
#include <gtest/gtest.h>

#include <cstring>

#include "cpu_test_util.h"

namespace md::test {
namespace {

// Restores the backend's thread count at the end of a test.
class ThreadCountGuard {
 public:
  ThreadCountGuard() : saved_(backend::cpu_threads()) {}
  ~ThreadCountGuard() { backend::set_cpu_threads(saved_); }
  ThreadCountGuard(const ThreadCountGuard&) = delete;
  ThreadCountGuard& operator=(const ThreadCountGuard&) = delete;

 private:
  int saved_;
};

bool same_bits(const std::vector<Tensor>& a, const std::vector<Tensor>& b) {
  if (a.size() != b.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i) {
    if (a[i].nbytes() != b[i].nbytes() ||
        std::memcmp(a[i].raw_data(), b[i].raw_data(), a[i].nbytes()) != 0) {
      return false;
    }
  }
  return true;
}

// conv2d forward, backward data and backward filter; big enough for OpenBLAS to use threads.
std::vector<Tensor> run_conv(DType dtype, const Shape& x_shape, const Shape& weight_shape,
                             const Conv2dParams& params) {
  Backend& backend = cpu_backend();
  const Tensor x = random_tensor(x_shape, 1, -1, 1, dtype);
  const Tensor weight = random_tensor(weight_shape, 2, -1, 1, dtype);
  const Shape y_shape = conv2d_output_shape(x_shape, weight_shape, params);
  const Tensor grad_y = random_tensor(y_shape, 3, -1, 1, dtype);
  Tensor y = Tensor::empty(y_shape, dtype);
  Tensor grad_x = Tensor::empty(x_shape, dtype);
  Tensor grad_weight = Tensor::empty(weight_shape, dtype);
  backend.conv2d_forward(x, weight, y, params);
  backend.conv2d_backward_data(grad_y, weight, grad_x, params, Write::Overwrite);
  backend.conv2d_backward_filter(x, grad_y, grad_weight, params, Write::Overwrite);
  return {y, grad_x, grad_weight};
}

std::vector<Tensor> run_batch_norm(DType dtype) {
  Backend& backend = cpu_backend();
  const Shape shape{16, 24, 12, 12};
  const Tensor x = random_tensor(shape, 4, -2, 3, dtype);
  const Tensor gamma = random_tensor({24}, 5, 0.5, 1.5, dtype);
  const Tensor beta = random_tensor({24}, 6, -1, 1, dtype);
  const Tensor grad_y = random_tensor(shape, 7, -1, 1, dtype);
  Tensor running_mean = Tensor::zeros({24}, dtype);
  Tensor running_var = Tensor::full({24}, 1.0, dtype);
  Tensor y = Tensor::empty(shape, dtype), eval_y = Tensor::empty(shape, dtype);
  Tensor mean = Tensor::empty({24}, dtype), invstd = Tensor::empty({24}, dtype);
  backend.batch_norm_forward_train(x, gamma, beta, y, mean, invstd, running_mean, running_var, {},
                                   RunningStatsUpdate::Update);
  backend.batch_norm_forward_eval(x, gamma, beta, running_mean, running_var, eval_y, {});
  Tensor grad_x = Tensor::empty(shape, dtype);
  Tensor grad_gamma = Tensor::empty({24}, dtype), grad_beta = Tensor::empty({24}, dtype);
  backend.batch_norm_backward(x, grad_y, gamma, mean, invstd, grad_x, grad_gamma, grad_beta,
                              Write::Overwrite);
  return {y, eval_y, mean, invstd, running_mean, running_var, grad_x, grad_gamma, grad_beta};
}

template <typename Run>
void expect_bit_identical_across_threads(const Run& run) {
  ThreadCountGuard guard;
  backend::set_cpu_threads(2);
  ASSERT_EQ(backend::cpu_threads(), 2);
  const std::vector<Tensor> first = run();
  const std::vector<Tensor> second = run();
  EXPECT_TRUE(same_bits(first, second)) << "two runs with 2 threads differ";
  backend::set_cpu_threads(1);
  ASSERT_EQ(backend::cpu_threads(), 1);
  const std::vector<Tensor> single = run();
  EXPECT_TRUE(same_bits(first, single)) << "1 and 2 threads differ";
}

TEST(CpuDeterminism, ConvIsBitIdenticalAcrossRunsAndThreadCounts) {
  for (DType dtype : {DType::Float32, DType::Float64}) {
    SCOPED_TRACE(dtype_name(dtype));
    expect_bit_identical_across_threads([dtype] {
      return run_conv(dtype, {8, 16, 16, 16}, {32, 16, 3, 3}, {.stride = 1, .padding = 1});
    });
    expect_bit_identical_across_threads([dtype] {  // several im2col chunks
      return run_conv(dtype, {12, 8, 20, 20}, {16, 4, 3, 3},
                      {.stride = 1, .padding = 1, .groups = 2});
    });
    expect_bit_identical_across_threads([dtype] {  // depthwise
      return run_conv(dtype, {8, 32, 16, 16}, {32, 1, 3, 3},
                      {.stride = 1, .padding = 1, .groups = 32});
    });
  }
}

// Float32 3x3 stride-1 convolutions with many channels take the Winograd path: several tile
// blocks and filter-gradient slices (odd maps), and one block whose GEMMs split over the threads.
TEST(CpuDeterminism, WinogradConvIsBitIdenticalAcrossRunsAndThreadCounts) {
  expect_bit_identical_across_threads([] {
    return run_conv(DType::Float32, {8, 48, 21, 19}, {40, 48, 3, 3}, {.stride = 1, .padding = 1});
  });
  expect_bit_identical_across_threads([] {
    return run_conv(DType::Float32, {2, 64, 6, 6}, {512, 64, 3, 3}, {.stride = 1, .padding = 1});
  });
}

TEST(CpuDeterminism, BatchNormIsBitIdenticalAcrossRunsAndThreadCounts) {
  for (DType dtype : {DType::Float32, DType::Float64}) {
    SCOPED_TRACE(dtype_name(dtype));
    expect_bit_identical_across_threads([dtype] { return run_batch_norm(dtype); });
  }
}

TEST(CpuDeterminism, ReductionsDoNotDependOnTheThreadCount) {
  ThreadCountGuard guard;
  Backend& backend = cpu_backend();
  const Tensor values = random_tensor({300001}, 8, -1, 1, DType::Float32);
  backend::set_cpu_threads(2);
  const double sum2 = backend.sum(values), dot2 = backend.dot(values, values);
  backend::set_cpu_threads(1);
  EXPECT_EQ(backend.sum(values), sum2);
  EXPECT_EQ(backend.dot(values, values), dot2);
}

TEST(CpuThreads, SetAndQuery) {
  ThreadCountGuard guard;
  backend::set_cpu_threads(3);
  EXPECT_EQ(backend::cpu_threads(), 3);
  backend::set_cpu_threads(0);  // all cores
  EXPECT_GE(backend::cpu_threads(), 1);
  EXPECT_THROW(backend::set_cpu_threads(-1), Error);
}

}  // namespace
}  // namespace md::test
