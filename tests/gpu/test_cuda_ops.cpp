// The CUDA backend against the CPU backend (the reference), op by op and on ResNet blocks.
// Inputs are random (fresh per test, odd shapes: batch 1, 7x5 maps, groups, depthwise, stride
// above the kernel); outputs written in Overwrite mode start poisoned with NaN, Accumulate mode
// starts from the same random values on both devices. The measure is ‖gpu − cpu‖ / ‖cpu‖ below
// 1e-4 (3e-4 with TF32, 1e-2 in bf16), and NaN never passes (relative_norm_error is NaN then).
// Every test needs a GPU and reports SKIPPED without one, except the device-count check, which is
// what a machine without a GPU must get right.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <functional>
#include <limits>
#include <memory>
#include <string>
#include <vector>

#include "autograd/functions.h"
#include "backend/backend.h"
#include "backend/cuda/cuda_backend.h"
#include "core/error.h"
#include "core/rng.h"
#include "core/runtime.h"
#include "models/blocks.h"
#include "nn/module.h"
#include "support/gradcheck.h"

namespace md {
namespace {

using autograd::Variable;

constexpr double kFp32Tolerance = 1e-4;
constexpr double kTf32Tolerance = 3e-4;
constexpr double kBf16Tolerance = 1e-2;
constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();
const Write kWriteModes[] = {Write::Overwrite, Write::Accumulate};

Device gpu() {
  return Device::cuda(0);
}
Backend& cpu_backend() {
  return backend::get(Device::cpu());
}
Backend& gpu_backend() {
  return backend::get(gpu());
}

const char* write_name(Write write) {
  return write == Write::Overwrite ? "overwrite" : "accumulate";
}

// A float32 tensor uniform in [low, high) on the CPU.
Tensor random(const Shape& shape, std::uint64_t seed, double low = -1.0, double high = 1.0) {
  return test::random_tensor(shape, seed, low, high, DType::Float32);
}

// The same values on the CPU and on the GPU.
struct Both {
  Tensor cpu;
  Tensor gpu;
  const Tensor& on(const Backend& backend) const { return backend.device().is_cpu() ? cpu : gpu; }
};

Both both(const Tensor& host) {
  return Both{host, host.to(gpu())};
}
Both random_both(const Shape& shape, std::uint64_t seed, double low = -1.0, double high = 1.0) {
  return both(random(shape, seed, low, high));
}
Both poisoned_both(const Shape& shape) {
  return Both{Tensor::full(shape, kNaN), Tensor::full(shape, kNaN, DType::Float32, gpu())};
}
// A start for an output: NaN for Overwrite (it must not be read), random for Accumulate.
Both output_start(const Shape& shape, Write write, std::uint64_t seed) {
  if (write == Write::Overwrite) return poisoned_both(shape);
  Tensor start = random(shape, seed);
  return Both{start.clone(), start.to(gpu())};
}

void expect_close(const Tensor& gpu_result, const Tensor& cpu_result, const std::string& what,
                  double tolerance = kFp32Tolerance) {
  const double error = test::relative_norm_error(gpu_result, cpu_result);
  EXPECT_LT(error, tolerance) << what << ": ‖gpu − cpu‖/‖cpu‖ = " << error;
}
void expect_close(const Both& result, const std::string& what, double tolerance = kFp32Tolerance) {
  expect_close(result.gpu, result.cpu, what, tolerance);
}

// Runs a forward op on both backends into NaN-poisoned outputs and compares.
void compare_forward(const Shape& out_shape, const std::string& what,
                     const std::function<void(Backend&, Tensor&)>& run,
                     double tolerance = kFp32Tolerance) {
  Both out = poisoned_both(out_shape);
  run(cpu_backend(), out.cpu);
  run(gpu_backend(), out.gpu);
  expect_close(out, what, tolerance);
}

// Runs a backward op with one gradient output on both backends in both Write modes.
void compare_backward(const Shape& out_shape, const std::string& what,
                      const std::function<void(Backend&, Tensor&, Write)>& run,
                      double tolerance = kFp32Tolerance) {
  std::uint64_t seed = 9000;
  for (Write write : kWriteModes) {
    Both out = output_start(out_shape, write, ++seed);
    run(cpu_backend(), out.cpu, write);
    run(gpu_backend(), out.gpu, write);
    expect_close(out, what + " (" + write_name(write) + ")", tolerance);
  }
}

// Values on the TF32 grid (multiples of 1/256 in [-1, 1]): TF32 tensor cores multiply them
// exactly, so a TF32 result differs from the CPU's only by float32 accumulation order.
Tensor tf32_exact(const Shape& shape, std::uint64_t seed) {
  Tensor values = random(shape, seed);
  float* data = values.data<float>();
  for (std::int64_t i = 0; i < values.numel(); ++i) {
    data[i] = std::round(data[i] * 256.0f) / 256.0f;
  }
  return values;
}

class CudaOps : public ::testing::Test {
 protected:
  void SetUp() override {
    if (backend::cuda_device_count() == 0) GTEST_SKIP() << "no CUDA device";
    backend::init();
    backend::set_compute_options(backend::ComputeOptions{});
    cuda::set_options(cuda::Options{});
  }
  void TearDown() override {
    backend::set_compute_options(backend::ComputeOptions{});
    if (backend::cuda_device_count() > 0) cuda::set_options(cuda::Options{});
  }
};

// ---------------------------------------------------------------- devices and errors

TEST(CudaDevices, CountIsZeroWithoutGpuAndMissingDevicesThrow) {
  backend::init();
  const int count = backend::cuda_device_count();
  EXPECT_GE(count, 0);
  EXPECT_EQ(count, cuda::device_count());
  if (count == 0) {
    EXPECT_FALSE(has_runtime(DeviceType::Cuda));
    EXPECT_THROW(backend::get(Device::cuda(0)), Error);
  } else {
    EXPECT_TRUE(has_runtime(DeviceType::Cuda));
    EXPECT_THROW(backend::get(Device::cuda(count)), Error);
    EXPECT_THROW(cuda::make_backend(count), Error);
  }
}

TEST_F(CudaOps, EveryDeviceRunsItsOwnBackend) {
  for (int index = 0; index < backend::cuda_device_count(); ++index) {
    SCOPED_TRACE("cuda:" + std::to_string(index));
    Backend& device_backend = backend::get(Device::cuda(index));
    EXPECT_EQ(device_backend.device(), Device::cuda(index));
    Tensor host = random({5, 7}, 11);
    Tensor x = host.to(Device::cuda(index));
    Tensor y = Tensor::full({5, 7}, kNaN, DType::Float32, Device::cuda(index));
    device_backend.relu_forward(x, y);
    Tensor expected = Tensor::empty({5, 7});
    cpu_backend().relu_forward(host, expected);
    expect_close(y, expected, "relu on cuda:" + std::to_string(index));
  }
}

TEST_F(CudaOps, OtherDtypesAndDevicesAreErrorsNamingTheOp) {
  Tensor x64 = Tensor::zeros({2, 3}, DType::Float64, gpu());
  Tensor y64 = Tensor::zeros({2, 3}, DType::Float64, gpu());
  try {
    gpu_backend().relu_forward(x64, y64);
    ADD_FAILURE() << "relu_forward accepted float64";
  } catch (const Error& error) {
    EXPECT_NE(std::string(error.what()).find("relu_forward"), std::string::npos) << error.what();
  }
  Tensor host = Tensor::zeros({2, 3});
  Tensor y = Tensor::zeros({2, 3}, DType::Float32, gpu());
  try {
    gpu_backend().sigmoid_forward(host, y);
    ADD_FAILURE() << "sigmoid_forward accepted a CPU tensor";
  } catch (const Error& error) {
    EXPECT_NE(std::string(error.what()).find("sigmoid_forward"), std::string::npos) << error.what();
  }
}

// Tensor::full on the GPU (the CUDA runtime's fill: memset for zeros and bytes, the fill kernel
// for 32-bit values, a host copy otherwise) equals the host's.
TEST_F(CudaOps, TensorFullOnTheDeviceEqualsTheHost) {
  for (double value : {0.0, 1.5, -0.0, std::nan("")}) {
    const std::vector<float> host = Tensor::full({7, 3}, value).to_vector<float>();
    const std::vector<float> device =
        Tensor::full({7, 3}, value, DType::Float32, gpu()).to_vector<float>();
    ASSERT_EQ(host.size(), device.size());
    EXPECT_EQ(std::memcmp(host.data(), device.data(), host.size() * sizeof(float)), 0) << value;
  }
  EXPECT_EQ(Tensor::full({5}, -7, DType::Int32, gpu()).to_vector<std::int32_t>(),
            (std::vector<std::int32_t>(5, -7)));
  EXPECT_EQ(Tensor::full({9}, 200, DType::UInt8, gpu()).to_vector<std::uint8_t>(),
            (std::vector<std::uint8_t>(9, 200)));
  EXPECT_EQ(Tensor::zeros({0}, DType::Float32, gpu()).numel(), 0);
}

// ---------------------------------------------------------------- convolution

struct ConvCase {
  std::string name;
  Shape x;
  std::int64_t out_channels;
  std::int64_t kernel;
  Conv2dParams params;
};

std::vector<ConvCase> conv_cases() {
  return {
      {"batch1_7x5", {1, 3, 7, 5}, 4, 3, Conv2dParams{.stride = 1, .padding = 1}},
      {"stride2_groups2", {2, 4, 9, 9}, 6, 3, Conv2dParams{.stride = 2, .padding = 1, .groups = 2}},
      {"depthwise", {2, 6, 7, 5}, 6, 3, Conv2dParams{.padding = 1, .groups = 6}},
      {"stride_above_kernel", {3, 5, 11, 8}, 7, 1, Conv2dParams{.stride = 3}},
      {"dilation2", {2, 3, 9, 7}, 5, 3, Conv2dParams{.padding = 2, .dilation = 2}},
      {"kernel5_stride2", {2, 3, 8, 8}, 4, 5, Conv2dParams{.stride = 2, .padding = 2}},
      {"stem7x7", {2, 3, 17, 16}, 8, 7, Conv2dParams{.stride = 2, .padding = 3}},
  };
}

Shape weight_shape(const ConvCase& c) {
  return {c.out_channels, c.x[1] / c.params.groups, c.kernel, c.kernel};
}

// Forward, backward-data and backward-filter of every case; `make` draws the inputs.
void check_convolutions(const std::function<Tensor(const Shape&, std::uint64_t)>& make,
                        double tolerance) {
  std::uint64_t seed = 100;
  for (const ConvCase& c : conv_cases()) {
    SCOPED_TRACE(c.name);
    const Shape w_shape = weight_shape(c);
    const Shape y_shape = conv2d_output_shape(c.x, w_shape, c.params);
    const Both x = both(make(c.x, ++seed));
    const Both weight = both(make(w_shape, ++seed));
    const Both grad_y = both(make(y_shape, ++seed));
    compare_forward(
        y_shape, c.name + " forward",
        [&](Backend& b, Tensor& y) { b.conv2d_forward(x.on(b), weight.on(b), y, c.params); },
        tolerance);
    compare_backward(
        c.x, c.name + " backward data",
        [&](Backend& b, Tensor& grad_x, Write write) {
          b.conv2d_backward_data(grad_y.on(b), weight.on(b), grad_x, c.params, write);
        },
        tolerance);
    compare_backward(
        w_shape, c.name + " backward filter",
        [&](Backend& b, Tensor& grad_weight, Write write) {
          b.conv2d_backward_filter(x.on(b), grad_y.on(b), grad_weight, c.params, write);
        },
        tolerance);
  }
}

TEST_F(CudaOps, Conv2dForwardAndBackwardMatchTheCpu) {
  check_convolutions([](const Shape& shape, std::uint64_t seed) { return random(shape, seed); },
                     kFp32Tolerance);
}

TEST_F(CudaOps, Conv2dWithTf32AllowedMatchesTheCpu) {
  cuda::set_options(cuda::Options{.math = cuda::MathMode::Tf32});
  check_convolutions(tf32_exact, kTf32Tolerance);
}

TEST_F(CudaOps, Conv2dWithTimedAlgorithmSearchMatchesTheCpu) {
  cuda::set_options(cuda::Options{.algorithm_search = cuda::AlgorithmSearch::Search});
  check_convolutions([](const Shape& shape, std::uint64_t seed) { return random(shape, seed); },
                     kFp32Tolerance);
}

TEST_F(CudaOps, Conv2dDeterministicModeMatchesTheCpuAndRepeatsBitForBit) {
  cuda::set_options(cuda::Options{.determinism = cuda::Determinism::Deterministic,
                                  .workspace_limit_bytes = std::size_t{64} << 20});
  check_convolutions([](const Shape& shape, std::uint64_t seed) { return random(shape, seed); },
                     kFp32Tolerance);
  const ConvCase c = conv_cases()[1];
  const Shape w_shape = weight_shape(c);
  const Shape y_shape = conv2d_output_shape(c.x, w_shape, c.params);
  const Tensor x = random(c.x, 1).to(gpu());
  const Tensor grad_y = random(y_shape, 2).to(gpu());
  std::vector<std::vector<float>> runs;
  for (int run = 0; run < 2; ++run) {
    Tensor grad_weight = Tensor::full(w_shape, kNaN, DType::Float32, gpu());
    gpu_backend().conv2d_backward_filter(x, grad_y, grad_weight, c.params, Write::Overwrite);
    runs.push_back(grad_weight.to_vector<float>());
  }
  EXPECT_EQ(runs[0], runs[1]);
}

TEST_F(CudaOps, ChannelBiasMatchesTheCpu) {
  for (const Shape& shape : {Shape{2, 5, 7, 3}, Shape{4, 6}}) {
    SCOPED_TRACE(shape_str(shape));
    const Both bias = random_both({shape[1]}, 3);
    Tensor start = random(shape, 4);
    Both y{start.clone(), start.to(gpu())};
    cpu_backend().add_channel_bias(y.cpu, bias.cpu);
    gpu_backend().add_channel_bias(y.gpu, bias.gpu);
    expect_close(y, "add_channel_bias");
    const Both grad_y = random_both(shape, 5);
    compare_backward({shape[1]}, "channel_bias_backward",
                     [&](Backend& b, Tensor& grad_bias, Write w) {
                       b.channel_bias_backward(grad_y.on(b), grad_bias, w);
                     });
  }
}

// ---------------------------------------------------------------- linear

// Forward and backward of linear layers with and without bias, every Write mode.
void check_linear(double tolerance) {
  for (std::int64_t batch : {1, 7}) {
    SCOPED_TRACE("batch " + std::to_string(batch));
    const std::int64_t in_features = 13;
    const std::int64_t out_features = 5;
    const Both x = random_both({batch, in_features}, 20);
    const Both weight = random_both({out_features, in_features}, 21);
    const Both bias = random_both({out_features}, 22);
    const Both grad_y = random_both({batch, out_features}, 23);
    compare_forward(
        {batch, out_features}, "linear forward",
        [&](Backend& b, Tensor& y) { b.linear_forward(x.on(b), weight.on(b), bias.on(b), y); },
        tolerance);
    compare_forward(
        {batch, out_features}, "linear forward without bias",
        [&](Backend& b, Tensor& y) { b.linear_forward(x.on(b), weight.on(b), Tensor(), y); },
        tolerance);
    for (Write write : kWriteModes) {
      Both grad_x = output_start(x.cpu.shape(), write, 30);
      Both grad_weight = output_start(weight.cpu.shape(), write, 31);
      Both grad_bias = output_start(bias.cpu.shape(), write, 32);
      cpu_backend().linear_backward(x.cpu, weight.cpu, grad_y.cpu, grad_x.cpu, grad_weight.cpu,
                                    grad_bias.cpu, write);
      gpu_backend().linear_backward(x.gpu, weight.gpu, grad_y.gpu, grad_x.gpu, grad_weight.gpu,
                                    grad_bias.gpu, write);
      expect_close(grad_x, std::string("linear grad_x ") + write_name(write), tolerance);
      expect_close(grad_weight, std::string("linear grad_weight ") + write_name(write), tolerance);
      expect_close(grad_bias, std::string("linear grad_bias ") + write_name(write), tolerance);
    }
    // Only the weight gradient wanted.
    Tensor undefined_cpu, undefined_gpu, more_undefined_cpu, more_undefined_gpu;
    Both grad_weight = poisoned_both(weight.cpu.shape());
    cpu_backend().linear_backward(x.cpu, weight.cpu, grad_y.cpu, undefined_cpu, grad_weight.cpu,
                                  more_undefined_cpu, Write::Overwrite);
    gpu_backend().linear_backward(x.gpu, weight.gpu, grad_y.gpu, undefined_gpu, grad_weight.gpu,
                                  more_undefined_gpu, Write::Overwrite);
    expect_close(grad_weight, "linear grad_weight alone", tolerance);
  }
}

TEST_F(CudaOps, LinearForwardAndBackwardMatchTheCpu) {
  check_linear(kFp32Tolerance);
}

// MathPrecision::Bf16 on both backends: cuDNN's bfloat16 NHWC convolutions and cuBLAS's bfloat16
// GEMMs against the CPU's rounding emulation (DESIGN.md §8: 1e-2 in bf16).
TEST_F(CudaOps, Bf16ConvolutionsAndLinearMatchTheCpuEmulation) {
  backend::set_compute_options(backend::ComputeOptions{.precision = backend::MathPrecision::Bf16});
  check_convolutions([](const Shape& shape, std::uint64_t seed) { return random(shape, seed); },
                     kBf16Tolerance);
  check_linear(kBf16Tolerance);
  // The bf16 results differ from the float32 ones (the switch reached the GPU).
  const ConvCase c = conv_cases()[1];
  const Shape w_shape = weight_shape(c);
  const Tensor x = random(c.x, 7);
  const Tensor weight = random(w_shape, 8);
  Tensor y_bf16 = Tensor::empty(conv2d_output_shape(c.x, w_shape, c.params), DType::Float32, gpu());
  gpu_backend().conv2d_forward(x.to(gpu()), weight.to(gpu()), y_bf16, c.params);
  backend::set_compute_options(backend::ComputeOptions{});
  Tensor y_fp32 = Tensor::empty(y_bf16.shape(), DType::Float32, gpu());
  gpu_backend().conv2d_forward(x.to(gpu()), weight.to(gpu()), y_fp32, c.params);
  EXPECT_GT(test::relative_norm_error(y_bf16, y_fp32), 1e-4);
}

// ---------------------------------------------------------------- batch norm

struct BatchNormInputs {
  Both x, gamma, beta, running_mean, running_var;
};

BatchNormInputs batch_norm_inputs(const Shape& shape) {
  const std::int64_t channels = shape[1];
  return BatchNormInputs{random_both(shape, 40, -2.0, 3.0), random_both({channels}, 41, 0.5, 1.5),
                         random_both({channels}, 42), random_both({channels}, 43),
                         random_both({channels}, 44, 0.5, 1.5)};
}

TEST_F(CudaOps, BatchNormTrainingForwardMatchesTheCpu) {
  const BatchNormParams params{.momentum = 0.1, .epsilon = 1e-5};
  for (const Shape& shape : {Shape{4, 6, 7, 5}, Shape{1, 3, 4, 3}, Shape{8, 6}}) {
    SCOPED_TRACE(shape_str(shape));
    const BatchNormInputs in = batch_norm_inputs(shape);
    const Shape channels{shape[1]};
    for (RunningStatsUpdate update : {RunningStatsUpdate::Update, RunningStatsUpdate::Skip}) {
      const std::string mode = update == RunningStatsUpdate::Update ? " (update)" : " (skip)";
      Both y = poisoned_both(shape);
      Both save_mean = poisoned_both(channels);
      Both save_invstd = poisoned_both(channels);
      Both running_mean{in.running_mean.cpu.clone(), in.running_mean.cpu.to(gpu())};
      Both running_var{in.running_var.cpu.clone(), in.running_var.cpu.to(gpu())};
      cpu_backend().batch_norm_forward_train(in.x.cpu, in.gamma.cpu, in.beta.cpu, y.cpu,
                                             save_mean.cpu, save_invstd.cpu, running_mean.cpu,
                                             running_var.cpu, params, update);
      gpu_backend().batch_norm_forward_train(in.x.gpu, in.gamma.gpu, in.beta.gpu, y.gpu,
                                             save_mean.gpu, save_invstd.gpu, running_mean.gpu,
                                             running_var.gpu, params, update);
      expect_close(y, "batch norm y" + mode);
      expect_close(save_mean, "batch norm save_mean" + mode);
      expect_close(save_invstd, "batch norm save_invstd" + mode);
      expect_close(running_mean, "batch norm running_mean" + mode);
      expect_close(running_var, "batch norm running_var" + mode);
      if (update == RunningStatsUpdate::Skip) {
        EXPECT_EQ(running_mean.gpu.to_vector<float>(), in.running_mean.cpu.to_vector<float>());
        EXPECT_EQ(running_var.gpu.to_vector<float>(), in.running_var.cpu.to_vector<float>());
      }
    }
  }
}

TEST_F(CudaOps, BatchNormEvalForwardMatchesTheCpu) {
  const BatchNormParams params{.momentum = 0.1, .epsilon = 1e-5};
  for (const Shape& shape : {Shape{3, 5, 7, 5}, Shape{1, 4}}) {
    SCOPED_TRACE(shape_str(shape));
    const BatchNormInputs in = batch_norm_inputs(shape);
    compare_forward(shape, "batch norm eval", [&](Backend& b, Tensor& y) {
      b.batch_norm_forward_eval(in.x.on(b), in.gamma.on(b), in.beta.on(b), in.running_mean.on(b),
                                in.running_var.on(b), y, params);
    });
  }
}

TEST_F(CudaOps, BatchNormBackwardMatchesTheCpu) {
  const BatchNormParams params{.momentum = 0.1, .epsilon = 1e-5};
  for (const Shape& shape : {Shape{4, 6, 7, 5}, Shape{8, 6}}) {
    SCOPED_TRACE(shape_str(shape));
    const BatchNormInputs in = batch_norm_inputs(shape);
    const Shape channels{shape[1]};
    // The saved statistics of a CPU forward, the same on both devices.
    Tensor y = Tensor::empty(shape);
    Tensor save_mean = Tensor::empty(channels);
    Tensor save_invstd = Tensor::empty(channels);
    Tensor unused_mean, unused_var;
    cpu_backend().batch_norm_forward_train(in.x.cpu, in.gamma.cpu, in.beta.cpu, y, save_mean,
                                           save_invstd, unused_mean, unused_var, params,
                                           RunningStatsUpdate::Skip);
    const Both saved_mean = both(save_mean);
    const Both saved_invstd = both(save_invstd);
    const Both grad_y = random_both(shape, 45);
    for (Write write : kWriteModes) {
      Both grad_x = output_start(shape, write, 50);
      Both grad_gamma = output_start(channels, write, 51);
      Both grad_beta = output_start(channels, write, 52);
      cpu_backend().batch_norm_backward(in.x.cpu, grad_y.cpu, in.gamma.cpu, saved_mean.cpu,
                                        saved_invstd.cpu, grad_x.cpu, grad_gamma.cpu, grad_beta.cpu,
                                        write);
      gpu_backend().batch_norm_backward(in.x.gpu, grad_y.gpu, in.gamma.gpu, saved_mean.gpu,
                                        saved_invstd.gpu, grad_x.gpu, grad_gamma.gpu, grad_beta.gpu,
                                        write);
      expect_close(grad_x, std::string("batch norm grad_x ") + write_name(write));
      expect_close(grad_gamma, std::string("batch norm grad_gamma ") + write_name(write));
      expect_close(grad_beta, std::string("batch norm grad_beta ") + write_name(write));
    }
    // Only grad_x wanted, then only the parameter gradients.
    compare_backward(shape, "batch norm grad_x alone", [&](Backend& b, Tensor& grad_x, Write w) {
      Tensor no_gamma, no_beta;
      b.batch_norm_backward(in.x.on(b), grad_y.on(b), in.gamma.on(b), saved_mean.on(b),
                            saved_invstd.on(b), grad_x, no_gamma, no_beta, w);
    });
    compare_backward(
        channels, "batch norm grad_gamma alone", [&](Backend& b, Tensor& grad_gamma, Write w) {
          Tensor no_x, no_beta;
          b.batch_norm_backward(in.x.on(b), grad_y.on(b), in.gamma.on(b), saved_mean.on(b),
                                saved_invstd.on(b), no_x, grad_gamma, no_beta, w);
        });
  }
}

TEST_F(CudaOps, FusedBatchNormAddReluMatchesTheCpu) {
  const BatchNormParams params{.momentum = 0.1, .epsilon = 1e-5};
  for (const Shape& shape : {Shape{4, 6, 7, 5}, Shape{8, 6}}) {
    SCOPED_TRACE(shape_str(shape));
    const BatchNormInputs in = batch_norm_inputs(shape);
    const Shape channels{shape[1]};
    const Both residual = random_both(shape, 46);
    const Both grad_y = random_both(shape, 47);
    for (bool with_residual : {true, false}) {
      const std::string what = with_residual ? "fused with residual " : "fused without residual ";
      const auto residual_on = [&](const Backend& b) {
        return with_residual ? residual.on(b) : Tensor();
      };
      Both y = poisoned_both(shape);
      Both save_mean = poisoned_both(channels);
      Both save_invstd = poisoned_both(channels);
      Both running_mean{in.running_mean.cpu.clone(), in.running_mean.cpu.to(gpu())};
      Both running_var{in.running_var.cpu.clone(), in.running_var.cpu.to(gpu())};
      for (Backend* b : {&cpu_backend(), &gpu_backend()}) {
        const bool on_cpu = b->device().is_cpu();
        b->batch_norm_add_relu_forward_train(
            in.x.on(*b), in.gamma.on(*b), in.beta.on(*b), residual_on(*b), on_cpu ? y.cpu : y.gpu,
            on_cpu ? save_mean.cpu : save_mean.gpu, on_cpu ? save_invstd.cpu : save_invstd.gpu,
            on_cpu ? running_mean.cpu : running_mean.gpu,
            on_cpu ? running_var.cpu : running_var.gpu, params, RunningStatsUpdate::Update);
      }
      expect_close(y, what + "y");
      expect_close(save_mean, what + "save_mean");
      expect_close(running_var, what + "running_var");
      compare_forward(shape, what + "eval y", [&](Backend& b, Tensor& out) {
        b.batch_norm_add_relu_forward_eval(in.x.on(b), in.gamma.on(b), in.beta.on(b),
                                           residual_on(b), in.running_mean.on(b),
                                           in.running_var.on(b), out, params);
      });
      // The backward from the CPU forward's y and statistics, the same on both devices.
      const Both saved_y = both(y.cpu);
      const Both saved_mean = both(save_mean.cpu);
      const Both saved_invstd = both(save_invstd.cpu);
      for (Write write : kWriteModes) {
        Both grad_x = output_start(shape, write, 53);
        Both grad_gamma = output_start(channels, write, 54);
        Both grad_beta = output_start(channels, write, 55);
        Both grad_residual = output_start(shape, write, 56);
        for (Backend* b : {&cpu_backend(), &gpu_backend()}) {
          const bool on_cpu = b->device().is_cpu();
          Tensor residual_target =
              with_residual ? (on_cpu ? grad_residual.cpu : grad_residual.gpu) : Tensor();
          b->batch_norm_add_relu_backward(
              in.x.on(*b), saved_y.on(*b), grad_y.on(*b), in.gamma.on(*b), saved_mean.on(*b),
              saved_invstd.on(*b), on_cpu ? grad_x.cpu : grad_x.gpu,
              on_cpu ? grad_gamma.cpu : grad_gamma.gpu, on_cpu ? grad_beta.cpu : grad_beta.gpu,
              residual_target, write);
        }
        const std::string mode = write_name(write);
        expect_close(grad_x, what + "grad_x " + mode);
        expect_close(grad_gamma, what + "grad_gamma " + mode);
        expect_close(grad_beta, what + "grad_beta " + mode);
        if (with_residual) expect_close(grad_residual, what + "grad_residual " + mode);
      }
      if (with_residual) {
        compare_backward(shape, what + "grad_residual alone",
                         [&](Backend& b, Tensor& grad_residual_out, Write w) {
                           Tensor none;
                           b.batch_norm_add_relu_backward(in.x.on(b), saved_y.on(b), grad_y.on(b),
                                                          in.gamma.on(b), saved_mean.on(b),
                                                          saved_invstd.on(b), none, none, none,
                                                          grad_residual_out, w);
                         });
      }
    }
  }
}

// ---------------------------------------------------------------- activations

TEST_F(CudaOps, ReluAndSigmoidMatchTheCpu) {
  const Shape shape{3, 4, 7, 5};
  const Both x = random_both(shape, 60, -3.0, 3.0);
  const Both grad_y = random_both(shape, 61);
  Tensor relu_y = Tensor::empty(shape);
  cpu_backend().relu_forward(x.cpu, relu_y);
  Tensor sigmoid_y = Tensor::empty(shape);
  cpu_backend().sigmoid_forward(x.cpu, sigmoid_y);
  const Both relu_out = both(relu_y);
  const Both sigmoid_out = both(sigmoid_y);
  compare_forward(shape, "relu forward",
                  [&](Backend& b, Tensor& y) { b.relu_forward(x.on(b), y); });
  compare_forward(shape, "sigmoid forward",
                  [&](Backend& b, Tensor& y) { b.sigmoid_forward(x.on(b), y); });
  compare_backward(shape, "relu backward", [&](Backend& b, Tensor& grad_x, Write w) {
    b.relu_backward(relu_out.on(b), grad_y.on(b), grad_x, w);
  });
  compare_backward(shape, "sigmoid backward", [&](Backend& b, Tensor& grad_x, Write w) {
    b.sigmoid_backward(sigmoid_out.on(b), grad_y.on(b), grad_x, w);
  });
}

// ---------------------------------------------------------------- pooling

TEST_F(CudaOps, PoolingMatchesTheCpu) {
  struct PoolCase {
    std::string name;
    PoolKind kind;
    Shape x;
    Pool2dParams params;
  };
  const std::vector<PoolCase> cases = {
      {"max 3/2 pad 1 on 7x5",
       PoolKind::Max,
       {2, 3, 7, 5},
       {.kernel = 3, .stride = 2, .padding = 1}},
      {"max 2/2 batch 1", PoolKind::Max, {1, 2, 8, 6}, {.kernel = 2, .stride = 2}},
      {"max 2/3 stride above kernel", PoolKind::Max, {2, 2, 9, 8}, {.kernel = 2, .stride = 3}},
      {"avg 3/2 pad 1 on 7x5",
       PoolKind::Average,
       {2, 3, 7, 5},
       {.kernel = 3, .stride = 2, .padding = 1}},
      {"avg 2/3 stride above kernel", PoolKind::Average, {2, 2, 9, 8}, {.kernel = 2, .stride = 3}},
  };
  std::uint64_t seed = 70;
  for (const PoolCase& c : cases) {
    SCOPED_TRACE(c.name);
    const Shape y_shape = pool2d_output_shape(c.x, c.params);
    const Both x = random_both(c.x, ++seed);
    Tensor y_cpu = Tensor::empty(y_shape);
    cpu_backend().pool2d_forward(x.cpu, y_cpu, c.kind, c.params);
    const Both y = both(y_cpu);
    const Both grad_y = random_both(y_shape, ++seed);
    compare_forward(y_shape, c.name + " forward", [&](Backend& b, Tensor& out) {
      b.pool2d_forward(x.on(b), out, c.kind, c.params);
    });
    compare_backward(c.x, c.name + " backward", [&](Backend& b, Tensor& grad_x, Write w) {
      b.pool2d_backward(x.on(b), y.on(b), grad_y.on(b), grad_x, c.kind, c.params, w);
    });
  }
}

TEST_F(CudaOps, GlobalAveragePoolMatchesTheCpu) {
  for (const Shape& shape : {Shape{3, 4, 7, 5}, Shape{1, 2, 1, 1}, Shape{2, 3, 33, 17}}) {
    SCOPED_TRACE(shape_str(shape));
    const Both x = random_both(shape, 80);
    const Both grad_y = random_both({shape[0], shape[1]}, 81);
    compare_forward({shape[0], shape[1]}, "global avg pool forward",
                    [&](Backend& b, Tensor& y) { b.global_avg_pool_forward(x.on(b), y); });
    compare_backward(shape, "global avg pool backward", [&](Backend& b, Tensor& grad_x, Write w) {
      b.global_avg_pool_backward(grad_y.on(b), grad_x, w);
    });
  }
}

// ---------------------------------------------------------------- resize and concat

TEST_F(CudaOps, ResizeMatchesTheCpu) {
  struct ResizeCase {
    Shape x;
    std::int64_t out_height;
    std::int64_t out_width;
  };
  const std::vector<ResizeCase> cases = {
      {{2, 3, 7, 5}, 14, 11}, {{2, 3, 9, 9}, 4, 3}, {{1, 2, 5, 5}, 5, 5},
      {{1, 1, 3, 4}, 10, 7},  {{2, 2, 8, 4}, 3, 9},
  };
  std::uint64_t seed = 90;
  for (ResizeMode mode : {ResizeMode::Nearest, ResizeMode::Bilinear}) {
    for (const ResizeCase& c : cases) {
      const std::string name = std::string(mode == ResizeMode::Nearest ? "nearest " : "bilinear ") +
                               shape_str(c.x) + " -> " + std::to_string(c.out_height) + "x" +
                               std::to_string(c.out_width);
      SCOPED_TRACE(name);
      const Shape y_shape{c.x[0], c.x[1], c.out_height, c.out_width};
      const Both x = random_both(c.x, ++seed);
      const Both grad_y = random_both(y_shape, ++seed);
      compare_forward(y_shape, name + " forward",
                      [&](Backend& b, Tensor& y) { b.resize_forward(x.on(b), y, mode); });
      compare_backward(c.x, name + " backward", [&](Backend& b, Tensor& grad_x, Write w) {
        b.resize_backward(grad_y.on(b), grad_x, mode, w);
      });
    }
  }
}

TEST_F(CudaOps, ConcatChannelsMatchesTheCpu) {
  const std::vector<Shape> parts = {{2, 3, 7, 5}, {2, 1, 7, 5}, {2, 4, 7, 5}};
  const Shape y_shape{2, 8, 7, 5};
  std::vector<Both> xs;
  std::uint64_t seed = 100;
  for (const Shape& shape : parts) xs.push_back(random_both(shape, ++seed));
  compare_forward(y_shape, "concat forward", [&](Backend& b, Tensor& y) {
    std::vector<Tensor> inputs;
    for (const Both& x : xs) inputs.push_back(x.on(b));
    b.concat_channels(inputs, y);
  });
  const Both grad_y = random_both(y_shape, 110);
  for (bool first_wanted : {true, false}) {
    for (Write write : kWriteModes) {
      std::vector<Both> grads;
      for (std::size_t i = 0; i < parts.size(); ++i) {
        grads.push_back(i == 0 && !first_wanted ? Both{} : output_start(parts[i], write, 120 + i));
      }
      for (Backend* b : {&cpu_backend(), &gpu_backend()}) {
        std::vector<Tensor> outputs;
        for (const Both& grad : grads) outputs.push_back(grad.on(*b));
        b->concat_channels_backward(grad_y.on(*b), outputs, write);
      }
      for (std::size_t i = first_wanted ? 0 : 1; i < parts.size(); ++i) {
        expect_close(grads[i], "concat backward part " + std::to_string(i) + " " +
                                   write_name(write) + (first_wanted ? "" : " (first skipped)"));
      }
    }
  }
}

// ---------------------------------------------------------------- elementwise and reductions

TEST_F(CudaOps, ElementwiseOpsMatchTheCpu) {
  const Shape shape{3, 5, 7};
  const Both a = random_both(shape, 130);
  const Both b_values = random_both(shape, 131);
  compare_forward(shape, "fill", [&](Backend& b, Tensor& y) { b.fill(y, 0.25); });
  compare_forward(shape, "copy", [&](Backend& b, Tensor& y) { b.copy(a.on(b), y); });
  compare_forward(shape, "add", [&](Backend& b, Tensor& y) { b.add(a.on(b), b_values.on(b), y); });
  compare_backward(shape, "mul",
                   [&](Backend& b, Tensor& y, Write w) { b.mul(a.on(b), b_values.on(b), y, w); });
  compare_forward(shape, "axpby with beta 0 over NaN",
                  [&](Backend& b, Tensor& y) { b.axpby(-1.5, a.on(b), 0.0, y); });
  Tensor start = random(shape, 132);
  Both y{start.clone(), start.to(gpu())};
  cpu_backend().axpby(0.75, a.cpu, -0.5, y.cpu);
  gpu_backend().axpby(0.75, a.gpu, -0.5, y.gpu);
  expect_close(y, "axpby");

  Tensor labels = Tensor::full({9}, -1.0, DType::Int32, gpu());
  gpu_backend().fill(labels, 7.0);
  EXPECT_EQ(labels.to_vector<std::int32_t>(), std::vector<std::int32_t>(9, 7));
}

TEST_F(CudaOps, ReductionsMatchTheCpu) {
  for (std::int64_t count : {1, 255, 256, 257, 100003, 1 << 20}) {
    SCOPED_TRACE("count " + std::to_string(count));
    const Both a = random_both({count}, 140);
    const Both b = random_both({count}, 141);
    const double dot_cpu = cpu_backend().dot(a.cpu, b.cpu);
    const double dot_gpu = gpu_backend().dot(a.gpu, b.gpu);
    EXPECT_NEAR(dot_gpu, dot_cpu, 1e-9 * std::max(1.0, std::fabs(dot_cpu)));
    const double sum_cpu = cpu_backend().sum(a.cpu);
    const double sum_gpu = gpu_backend().sum(a.gpu);
    EXPECT_NEAR(sum_gpu, sum_cpu, 1e-9 * std::max(1.0, std::fabs(sum_cpu)));
    EXPECT_TRUE(std::isfinite(dot_gpu) && std::isfinite(sum_gpu));
  }
  Tensor values = random({1000}, 142);
  float* data = values.data<float>();
  data[3] = std::numeric_limits<float>::quiet_NaN();
  data[500] = std::numeric_limits<float>::infinity();
  data[999] = -std::numeric_limits<float>::infinity();
  EXPECT_EQ(cpu_backend().count_nonfinite(values), 3);
  EXPECT_EQ(gpu_backend().count_nonfinite(values.to(gpu())), 3);
  EXPECT_EQ(gpu_backend().count_nonfinite(random({777}, 143).to(gpu())), 0);
}

// ---------------------------------------------------------------- softmax and losses

TEST_F(CudaOps, SoftmaxAndLogSoftmaxMatchTheCpu) {
  for (const Shape& shape : {Shape{7, 10}, Shape{1, 100}, Shape{3, 1000}}) {
    SCOPED_TRACE(shape_str(shape));
    const Both x = random_both(shape, 150, -4.0, 4.0);
    const Both grad_y = random_both(shape, 151);
    Tensor softmax_y = Tensor::empty(shape);
    cpu_backend().softmax_forward(x.cpu, softmax_y);
    Tensor log_softmax_y = Tensor::empty(shape);
    cpu_backend().log_softmax_forward(x.cpu, log_softmax_y);
    const Both softmax_out = both(softmax_y);
    const Both log_softmax_out = both(log_softmax_y);
    compare_forward(shape, "softmax forward",
                    [&](Backend& b, Tensor& y) { b.softmax_forward(x.on(b), y); });
    compare_forward(shape, "log_softmax forward",
                    [&](Backend& b, Tensor& y) { b.log_softmax_forward(x.on(b), y); });
    compare_backward(shape, "softmax backward", [&](Backend& b, Tensor& grad_x, Write w) {
      b.softmax_backward(softmax_out.on(b), grad_y.on(b), grad_x, w);
    });
    compare_backward(shape, "log_softmax backward", [&](Backend& b, Tensor& grad_x, Write w) {
      b.log_softmax_backward(log_softmax_out.on(b), grad_y.on(b), grad_x, w);
    });
  }
}

TEST_F(CudaOps, CrossEntropyMatchesTheCpu) {
  const Shape shape{9, 10};
  const Both logits = random_both(shape, 160, -3.0, 3.0);
  Rng rng(161);
  std::vector<std::int32_t> label_values;
  for (std::int64_t row = 0; row < shape[0]; ++row) {
    label_values.push_back(
        static_cast<std::int32_t>(rng.below(static_cast<std::uint64_t>(shape[1]))));
  }
  const Tensor labels_cpu = Tensor::from_vector<std::int32_t>({shape[0]}, label_values);
  const Both labels{labels_cpu, labels_cpu.to(gpu())};
  const Both grad_loss = both(Tensor::full({}, 0.7));
  for (double smoothing : {0.0, 0.1}) {
    const std::string name = "cross entropy, smoothing " + std::to_string(smoothing);
    compare_forward({}, name + " forward", [&](Backend& b, Tensor& loss) {
      b.cross_entropy_forward(logits.on(b), labels.on(b), loss, smoothing);
    });
    compare_backward(shape, name + " backward", [&](Backend& b, Tensor& grad_logits, Write w) {
      b.cross_entropy_backward(logits.on(b), labels.on(b), grad_loss.on(b), grad_logits, smoothing,
                               w);
    });
  }
}

TEST_F(CudaOps, KlDivergenceMatchesTheCpu) {
  const Shape shape{6, 12};
  const Both student = random_both(shape, 170, -3.0, 3.0);
  const Both teacher = random_both(shape, 171, -3.0, 3.0);
  const Both grad_loss = both(Tensor::full({}, 1.3));
  for (double temperature : {1.0, 3.0}) {
    const std::string name = "kl, T = " + std::to_string(temperature);
    compare_forward({}, name + " forward", [&](Backend& b, Tensor& loss) {
      b.kl_div_forward(student.on(b), teacher.on(b), loss, temperature);
    });
    for (Write write : kWriteModes) {
      Both grad_student = output_start(shape, write, 172);
      Both grad_teacher = output_start(shape, write, 173);
      for (Backend* b : {&cpu_backend(), &gpu_backend()}) {
        Tensor student_out = grad_student.on(*b);
        Tensor teacher_out = grad_teacher.on(*b);
        b->kl_div_backward(student.on(*b), teacher.on(*b), grad_loss.on(*b), student_out,
                           teacher_out, temperature, write);
      }
      expect_close(grad_student, name + " grad_student " + write_name(write));
      expect_close(grad_teacher, name + " grad_teacher " + write_name(write));
    }
    compare_backward(shape, name + " grad_student alone", [&](Backend& b, Tensor& grad, Write w) {
      Tensor no_teacher;
      b.kl_div_backward(student.on(b), teacher.on(b), grad_loss.on(b), grad, no_teacher,
                        temperature, w);
    });
  }
}

TEST_F(CudaOps, MeanSquaredErrorMatchesTheCpu) {
  const Shape shape{4, 5, 3};
  const Both a = random_both(shape, 180);
  const Both b_values = random_both(shape, 181);
  const Both grad_loss = both(Tensor::full({}, 0.9));
  compare_forward({}, "mse forward",
                  [&](Backend& b, Tensor& loss) { b.mse_forward(a.on(b), b_values.on(b), loss); });
  compare_backward(shape, "mse grad_a", [&](Backend& b, Tensor& grad, Write w) {
    Tensor no_grad_b;
    b.mse_backward(a.on(b), b_values.on(b), grad_loss.on(b), grad, no_grad_b, w);
  });
  compare_backward(shape, "mse grad_b", [&](Backend& b, Tensor& grad, Write w) {
    Tensor no_grad_a;
    b.mse_backward(a.on(b), b_values.on(b), grad_loss.on(b), no_grad_a, grad, w);
  });
}

// ---------------------------------------------------------------- optimizers

TEST_F(CudaOps, SgdMatchesTheCpu) {
  const std::vector<SgdParams> cases = {
      {.learning_rate = 0.1, .momentum = 0.9, .weight_decay = 5e-4, .nesterov = false},
      {.learning_rate = 0.05, .momentum = 0.9, .weight_decay = 1e-4, .nesterov = true},
      {.learning_rate = 0.2, .momentum = 0.0, .weight_decay = 0.0, .nesterov = false},
  };
  for (const SgdParams& params : cases) {
    SCOPED_TRACE("momentum " + std::to_string(params.momentum) +
                 (params.nesterov ? " nesterov" : ""));
    const std::int64_t count = 1000;
    Both param = random_both({count}, 190);
    Both buffer = params.momentum != 0.0 ? both(Tensor::zeros({count})) : Both{};
    for (int step = 0; step < 3; ++step) {
      const Both grad = random_both({count}, 191 + static_cast<std::uint64_t>(step));
      cpu_backend().sgd_update(param.cpu, grad.cpu, buffer.cpu, params);
      gpu_backend().sgd_update(param.gpu, grad.gpu, buffer.gpu, params);
    }
    expect_close(param, "sgd param");
    if (params.momentum != 0.0) expect_close(buffer, "sgd momentum buffer");
  }
}

TEST_F(CudaOps, AdamMatchesTheCpu) {
  const std::int64_t count = 1000;
  Both param = random_both({count}, 200);
  Both exp_avg = both(Tensor::zeros({count}));
  Both exp_avg_sq = both(Tensor::zeros({count}));
  for (std::int64_t step = 1; step <= 3; ++step) {
    const AdamParams params{.learning_rate = 1e-2, .weight_decay = 1e-3, .step = step};
    const Both grad = random_both({count}, 200 + static_cast<std::uint64_t>(step));
    cpu_backend().adam_update(param.cpu, grad.cpu, exp_avg.cpu, exp_avg_sq.cpu, params);
    gpu_backend().adam_update(param.gpu, grad.gpu, exp_avg.gpu, exp_avg_sq.gpu, params);
  }
  expect_close(param, "adam param");
  expect_close(exp_avg, "adam exp_avg");
  expect_close(exp_avg_sq, "adam exp_avg_sq");
}

// ---------------------------------------------------------------- ResNet blocks

nn::Conv2dSpec conv_spec(int in_channels, int out_channels, int kernel, int stride, int padding) {
  return nn::Conv2dSpec{.in_channels = in_channels,
                        .out_channels = out_channels,
                        .kernel = kernel,
                        .params = Conv2dParams{.stride = stride, .padding = padding}};
}

// torchvision's BasicBlock with an identity shortcut: relu(bn2(conv2(relu(bn1(conv1(x))))) + x).
class BasicBlock final : public nn::Module {
 public:
  BasicBlock(nn::ModelLayout& layout, int channels)
      : conv1_(layout, "conv1", conv_spec(channels, channels, 3, 1, 1)),
        bn1_(layout, "bn1", channels),
        conv2_(layout, "conv2", conv_spec(channels, channels, 3, 1, 1)),
        bn2_(layout, "bn2", channels) {}

  Variable forward(const nn::ForwardContext& context, const Variable& x) const override {
    Variable out = autograd::relu(bn1_.forward(context, conv1_.forward(context, x)));
    out = bn2_.forward(context, conv2_.forward(context, out));
    return autograd::relu(autograd::add(out, x));
  }

 private:
  nn::Conv2d conv1_;
  nn::BatchNorm2d bn1_;
  nn::Conv2d conv2_;
  nn::BatchNorm2d bn2_;
};

// torchvision's Bottleneck with stride 2 and a conv1x1-bn downsample shortcut.
class Bottleneck final : public nn::Module {
 public:
  Bottleneck(nn::ModelLayout& layout, int in_channels, int planes)
      : conv1_(layout, "conv1", conv_spec(in_channels, planes, 1, 1, 0)),
        bn1_(layout, "bn1", planes),
        conv2_(layout, "conv2", conv_spec(planes, planes, 3, 2, 1)),
        bn2_(layout, "bn2", planes),
        conv3_(layout, "conv3", conv_spec(planes, planes * 4, 1, 1, 0)),
        bn3_(layout, "bn3", planes * 4),
        downsample_conv_(layout, "downsample.0", conv_spec(in_channels, planes * 4, 1, 2, 0)),
        downsample_bn_(layout, "downsample.1", planes * 4) {}

  Variable forward(const nn::ForwardContext& context, const Variable& x) const override {
    Variable out = autograd::relu(bn1_.forward(context, conv1_.forward(context, x)));
    out = autograd::relu(bn2_.forward(context, conv2_.forward(context, out)));
    out = bn3_.forward(context, conv3_.forward(context, out));
    Variable shortcut = downsample_bn_.forward(context, downsample_conv_.forward(context, x));
    return autograd::relu(autograd::add(out, shortcut));
  }

 private:
  nn::Conv2d conv1_;
  nn::BatchNorm2d bn1_;
  nn::Conv2d conv2_;
  nn::BatchNorm2d bn2_;
  nn::Conv2d conv3_;
  nn::BatchNorm2d bn3_;
  nn::Conv2d downsample_conv_;
  nn::BatchNorm2d downsample_bn_;
};

struct BlockRun {
  Tensor output;
  Tensor input_grad;
  Tensor eval_output;
  nn::ModelBuffers model;
};

// One training step of `block` on `device` from the CPU buffers `initial`: forward (running
// statistics updated), backward from a seed gradient drawn from `seed` (the same on every
// device), then an eval forward.
BlockRun run_block(const nn::Module& block, const nn::ModelLayout& layout,
                   const nn::ModelBuffers& initial, const Tensor& x, std::uint64_t seed,
                   Device device) {
  BlockRun run;
  run.model = nn::ModelBuffers::allocate(layout, DType::Float32, device);
  run.model.parameters.copy_from(initial.parameters);
  run.model.buffers.copy_from(initial.buffers);
  backend::get(device).fill(run.model.gradients, 0.0);
  nn::ForwardContext context{&layout,           run.model.parameters, run.model.gradients,
                             run.model.buffers, nn::Mode::Train,      RunningStatsUpdate::Update};
  autograd::Tape tape;
  Variable input(x.to(device), true);
  Variable output;
  {
    autograd::TapeScope scope(tape);
    output = block.forward(context, input);
  }
  tape.backward(output, random(output.shape(), seed).to(device));
  run.output = output.value();
  run.input_grad = input.grad();
  autograd::NoGrad no_grad;
  context.mode = nn::Mode::Eval;
  run.eval_output = block.forward(context, Variable(x.to(device), false)).value();
  return run;
}

// CPU-initialized buffers with non-trivial batch norm scales and shifts.
nn::ModelBuffers initial_buffers(const nn::ModelLayout& layout) {
  nn::ModelBuffers initial = nn::ModelBuffers::allocate(layout, DType::Float32, Device::cpu());
  Rng rng(210);
  initial.initialize(layout, rng);
  std::uint64_t seed = 211;
  for (const nn::TensorSlot& slot : layout.parameters.slots()) {
    if (slot.shape.size() == 1) {
      Tensor view = initial.parameters.slice_flat(slot.offset, slot.shape);
      view.copy_from(random(slot.shape, ++seed, 0.5, 1.5));
    }
  }
  return initial;
}

void check_block(const nn::Module& block, const nn::ModelLayout& layout, const Shape& x_shape,
                 double tolerance = kFp32Tolerance) {
  const nn::ModelBuffers initial = initial_buffers(layout);
  const Tensor x = random(x_shape, 220);
  const BlockRun cpu = run_block(block, layout, initial, x, 230, Device::cpu());
  const BlockRun gpu_run = run_block(block, layout, initial, x, 230, gpu());
  expect_close(gpu_run.output, cpu.output, "block output", tolerance);
  expect_close(gpu_run.input_grad, cpu.input_grad, "block input gradient", tolerance);
  expect_close(gpu_run.eval_output, cpu.eval_output, "block eval output", tolerance);
  for (int index = 0; index < static_cast<int>(layout.parameters.slots().size()); ++index) {
    const std::string& name = layout.parameters.slot(index).name;
    expect_close(layout.parameters.view(gpu_run.model.gradients, index),
                 layout.parameters.view(cpu.model.gradients, index), "gradient of " + name,
                 tolerance);
  }
  for (int index = 0; index < static_cast<int>(layout.buffers.slots().size()); ++index) {
    const std::string& name = layout.buffers.slot(index).name;
    expect_close(layout.buffers.view(gpu_run.model.buffers, index),
                 layout.buffers.view(cpu.model.buffers, index), "buffer " + name, tolerance);
  }
}

TEST_F(CudaOps, BasicBlockForwardAndParameterGradientsMatchTheCpu) {
  nn::ModelLayout layout;
  const BasicBlock block(layout, 8);
  check_block(block, layout, {3, 8, 9, 7});
}

TEST_F(CudaOps, BottleneckWithDownsampleMatchesTheCpu) {
  nn::ModelLayout layout;
  const Bottleneck block(layout, 8, 4);
  check_block(block, layout, {2, 8, 9, 9});
}

// The zoo's blocks, whose batch norms run fused with the residual add and the ReLU.
TEST_F(CudaOps, ZooResidualBlocksWithFusedBatchNormMatchTheCpu) {
  nn::ModelLayout basic_layout;
  const models::BasicBlock basic(basic_layout, "basic",
                                 models::ResidualBlockSpec{.in_channels = 8, .planes = 8});
  check_block(basic, basic_layout, {3, 8, 9, 7});
  nn::ModelLayout bottleneck_layout;
  const models::Bottleneck bottleneck(
      bottleneck_layout, "bottleneck",
      models::ResidualBlockSpec{.in_channels = 8, .planes = 4, .stride = 2});
  check_block(bottleneck, bottleneck_layout, {2, 8, 9, 9});
}

// A whole block in bf16: convolutions in bfloat16, the fused batch norm + add + ReLU in float32.
TEST_F(CudaOps, ZooBasicBlockInBf16MatchesTheCpuEmulation) {
  backend::set_compute_options(backend::ComputeOptions{.precision = backend::MathPrecision::Bf16});
  nn::ModelLayout layout;
  const models::BasicBlock block(layout, "basic",
                                 models::ResidualBlockSpec{.in_channels = 8, .planes = 8});
  check_block(block, layout, {3, 8, 9, 7}, kBf16Tolerance);
}

// ---------------------------------------------------------------- caching allocator

TEST_F(CudaOps, AllocatorReusesMemoryAcrossTrainingSteps) {
  nn::ModelLayout layout;
  const BasicBlock block(layout, 16);
  nn::ModelBuffers model = nn::ModelBuffers::allocate(layout, DType::Float32, gpu());
  Rng rng(240);
  model.initialize(layout, rng);
  Tensor momentum = Tensor::zeros({layout.parameters.numel()}, DType::Float32, gpu());
  const Tensor x = random({8, 16, 16, 16}, 241).to(gpu());
  const Tensor seed_grad = random({8, 16, 16, 16}, 242).to(gpu());
  Backend& device_backend = gpu_backend();
  auto step = [&] {
    device_backend.fill(model.gradients, 0.0);
    nn::ForwardContext context{&layout,       model.parameters, model.gradients,
                               model.buffers, nn::Mode::Train,  RunningStatsUpdate::Update};
    autograd::Tape tape;
    Variable output;
    {
      autograd::TapeScope scope(tape);
      output = block.forward(context, Variable(x, false));
    }
    tape.backward(output, seed_grad);
    device_backend.sgd_update(model.parameters, model.gradients, momentum,
                              SgdParams{.learning_rate = 0.01, .momentum = 0.9});
    device_backend.synchronize();
  };
  step();
  const cuda::AllocatorStats after_first = cuda::allocator_stats(0);
  for (int repeat = 0; repeat < 3; ++repeat) step();
  const cuda::AllocatorStats after_more = cuda::allocator_stats(0);
  EXPECT_EQ(after_more.malloc_count, after_first.malloc_count)
      << "cudaMalloc inside steps after the first";
  EXPECT_EQ(after_more.bytes_in_use, after_first.bytes_in_use) << "memory held across steps grew";
  EXPECT_GT(after_more.bytes_cached, 0u) << "a step's temporaries did not return to the cache";
  EXPECT_GE(after_more.peak_bytes_in_use, after_more.bytes_in_use);

  cuda::release_cached_memory(0);
  const cuda::AllocatorStats released = cuda::allocator_stats(0);
  EXPECT_EQ(released.bytes_cached, 0u);
  EXPECT_GT(released.free_count, after_more.free_count);
  EXPECT_EQ(released.bytes_in_use, after_more.bytes_in_use);
}

// ---------------------------------------------------------------- captured steps (CUDA graphs)

// A zoo block's training step (fused batch norms, running statistics updated) recorded once and
// replayed with new inputs copied in, against the same steps run op by op: equal bit for bit
// with deterministic algorithms, the SGD update (its learning rate changing) outside the graph.
TEST_F(CudaOps, CapturedStepsEqualEagerStepsBitForBit) {
  cuda::set_options(cuda::Options{.determinism = cuda::Determinism::Deterministic});
  nn::ModelLayout layout;
  const models::BasicBlock block(layout, "basic",
                                 models::ResidualBlockSpec{.in_channels = 16, .planes = 16});
  const nn::ModelBuffers initial = initial_buffers(layout);
  const Shape x_shape{8, 16, 12, 12};
  struct Run {
    nn::ModelBuffers model;
    Tensor momentum;
    Tensor x;          // the step's input, refreshed in place
    Tensor seed_grad;  // the upstream gradient of the block's output
  };
  auto make_run = [&] {
    Run run;
    run.model = nn::ModelBuffers::allocate(layout, DType::Float32, gpu());
    run.model.parameters.copy_from(initial.parameters);
    run.model.buffers.copy_from(initial.buffers);
    run.momentum = Tensor::zeros({layout.parameters.numel()}, DType::Float32, gpu());
    run.x = Tensor::empty(x_shape, DType::Float32, gpu());
    run.seed_grad = Tensor::empty(x_shape, DType::Float32, gpu());
    return run;
  };
  Backend& device_backend = gpu_backend();
  auto forward_backward = [&](Run& run) {
    device_backend.fill(run.model.gradients, 0.0);
    nn::ForwardContext context{&layout,           run.model.parameters, run.model.gradients,
                               run.model.buffers, nn::Mode::Train,      RunningStatsUpdate::Update};
    autograd::Tape tape;
    Variable output;
    {
      autograd::TapeScope scope(tape);
      output = block.forward(context, Variable(run.x, false));
    }
    tape.backward(output, run.seed_grad);
  };
  Run eager = make_run();
  Run graphed = make_run();
  std::unique_ptr<DeviceGraph> graph;
  for (int step = 0; step < 5; ++step) {
    const Tensor x = random(x_shape, 300 + static_cast<std::uint64_t>(step)).to(gpu());
    const Tensor grad = random(x_shape, 400 + static_cast<std::uint64_t>(step)).to(gpu());
    for (Run* run : {&eager, &graphed}) {
      run->x.copy_from(x);
      run->seed_grad.copy_from(grad);
    }
    forward_backward(eager);
    if (step == 0) {
      forward_backward(graphed);  // the eager warm-up chooses the algorithms
    } else if (!graph) {
      graph = device_backend.capture_graph([&] { forward_backward(graphed); });
    } else {
      graph->replay();
    }
    const SgdParams sgd{.learning_rate = 0.05 - 0.01 * step, .momentum = 0.9, .weight_decay = 5e-4};
    for (Run* run : {&eager, &graphed}) {
      device_backend.sgd_update(run->model.parameters, run->model.gradients, run->momentum, sgd);
    }
    const std::string at = " after step " + std::to_string(step);
    EXPECT_EQ(graphed.model.gradients.to_vector<float>(), eager.model.gradients.to_vector<float>())
        << "gradients" << at;
    EXPECT_EQ(graphed.model.parameters.to_vector<float>(),
              eager.model.parameters.to_vector<float>())
        << "parameters" << at;
    EXPECT_EQ(graphed.model.buffers.to_vector<float>(), eager.model.buffers.to_vector<float>())
        << "running statistics" << at;
  }
  ASSERT_NE(graph, nullptr);
}

// Memory the recorded work allocated, and memory allocated before it that it freed, is never
// handed to other work while the graph lives: eager tensors of the same size get other blocks,
// and a replay after they were written still reads its own inputs. Destroying the graph gives
// the blocks back to the cache.
TEST_F(CudaOps, GraphMemoryStaysReservedUntilTheGraphIsDestroyed) {
  Backend& device_backend = gpu_backend();
  const Shape shape{1 << 16};
  Tensor before = Tensor::full(shape, 1.0, DType::Float32, gpu());
  Tensor out = Tensor::zeros(shape, DType::Float32, gpu());
  std::vector<const void*> reserved{before.raw_data()};
  auto graph = device_backend.capture_graph([&] {
    Tensor temporary = Tensor::empty(shape, DType::Float32, gpu());
    reserved.push_back(temporary.raw_data());
    device_backend.axpby(2.0, before, 0.0, temporary);  // temporary = 2·before
    device_backend.axpby(1.0, temporary, 1.0, out);     // out += temporary
    before = Tensor();  // freed inside the capture; the graph still reads it
  });
  EXPECT_EQ(out.to_vector<float>(), std::vector<float>(static_cast<std::size_t>(shape[0]), 2.0f));
  std::vector<Tensor> others;
  for (int i = 0; i < 4; ++i) {
    others.push_back(Tensor::full(shape, 7.0, DType::Float32, gpu()));
    for (const void* block : reserved) {
      EXPECT_NE(others.back().raw_data(), block) << "a graph's block was handed to other work";
    }
  }
  graph->replay();
  EXPECT_EQ(out.to_vector<float>(), std::vector<float>(static_cast<std::size_t>(shape[0]), 4.0f));
  const cuda::AllocatorStats with_graph = cuda::allocator_stats(0);
  graph.reset();
  const cuda::AllocatorStats without = cuda::allocator_stats(0);
  EXPECT_EQ(without.bytes_cached, with_graph.bytes_cached) << "the pool's free blocks were counted";
  others.clear();
  Tensor again = Tensor::empty(shape, DType::Float32, gpu());
  EXPECT_NE(again.raw_data(), nullptr);
}

// A host round trip inside the work fails naming the call; the failed capture ran nothing and
// left the stream usable.
TEST_F(CudaOps, HostRoundTripInsideACaptureIsNamedAndRunsNothing) {
  Backend& device_backend = gpu_backend();
  Tensor values = Tensor::full({4}, 2.0, DType::Float32, gpu());
  try {
    (void)device_backend.capture_graph([&] {
      device_backend.fill(values, 3.0);
      (void)values.slice_flat(0, {}).item();
    });
    ADD_FAILURE() << "item() inside a capture did not throw";
  } catch (const Error& error) {
    EXPECT_NE(std::string(error.what()).find("Tensor::item"), std::string::npos) << error.what();
  }
  EXPECT_FALSE(capturing());
  EXPECT_EQ(values.to_vector<float>(), (std::vector<float>{2, 2, 2, 2}));
  device_backend.fill(values, 5.0);
  EXPECT_EQ(values.to_vector<float>(), (std::vector<float>{5, 5, 5, 5}));
}

}  // namespace
}  // namespace md
