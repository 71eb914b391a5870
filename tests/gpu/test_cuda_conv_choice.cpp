// cuDNN algorithm choice on a GPU (backend/cuda/conv2d.cpp, backend/algorithm_choice.h): the
// shapes cuDNN most often refuses at execution (1- and 3-channel stems, grouped and depthwise
// convolutions) run in every precision and determinism mode and match the CPU, each direction's
// choice is logged once, and inside a captured step a cached shape replays while a new shape is
// an error naming the convolution. Every test reports SKIPPED without a GPU.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "backend/backend.h"
#include "backend/cuda/cuda_backend.h"
#include "core/capture.h"
#include "core/error.h"
#include "support/gradcheck.h"

namespace md {
namespace {

Device gpu() {
  return Device::cuda(0);
}

struct ConvShape {
  std::string name;
  Shape x;       // (N, C, H, W)
  Shape weight;  // (O, C / groups, kH, kW)
  Conv2dParams params;
};

std::vector<ConvShape> refused_shapes() {
  return {
      {"stem_c1", {4, 1, 28, 28}, {16, 1, 3, 3}, Conv2dParams{.stride = 1, .padding = 1}},
      {"stem_c3_7x7", {2, 3, 32, 32}, {16, 3, 7, 7}, Conv2dParams{.stride = 2, .padding = 3}},
      {"depthwise",
       {2, 32, 14, 14},
       {32, 1, 3, 3},
       Conv2dParams{.stride = 1, .padding = 1, .groups = 32}},
      {"depthwise_stride2",
       {2, 24, 15, 15},
       {24, 1, 3, 3},
       Conv2dParams{.stride = 2, .padding = 1, .groups = 24}},
      {"grouped",
       {2, 8, 9, 9},
       {12, 4, 3, 3},
       Conv2dParams{.stride = 1, .padding = 1, .groups = 2}},
  };
}

class CudaConvChoice : public ::testing::Test {
 protected:
  void SetUp() override {
    if (backend::cuda_device_count() == 0) GTEST_SKIP() << "no CUDA device";
    backend::init();
  }
  void TearDown() override {
    backend::set_compute_options(backend::ComputeOptions{});
    if (backend::cuda_device_count() > 0) cuda::set_options(cuda::Options{});
  }
};

void expect_close(const Tensor& gpu_result, const Tensor& cpu_result, const std::string& what,
                  double tolerance) {
  const double error = test::relative_norm_error(gpu_result.to(Device::cpu()), cpu_result);
  EXPECT_LT(error, tolerance) << what << ": ‖gpu − cpu‖/‖cpu‖ = " << error;
}

TEST_F(CudaConvChoice, RefusalProneShapesRunInEveryModeAndMatchTheCpu) {
  struct Mode {
    backend::ComputeOptions options;
    double tolerance;
  };
  const std::vector<Mode> modes = {
      {{.precision = backend::MathPrecision::Fp32}, 1e-4},
      {{.precision = backend::MathPrecision::Tf32}, 5e-3},
      {{.precision = backend::MathPrecision::Bf16}, 1e-2},
      {{.precision = backend::MathPrecision::Fp32,
        .determinism = backend::AlgorithmDeterminism::Deterministic},
       1e-4},
      {{.precision = backend::MathPrecision::Bf16,
        .determinism = backend::AlgorithmDeterminism::Deterministic},
       1e-2},
  };
  Backend& cpu = backend::get(Device::cpu());
  Backend& device = backend::get(gpu());
  std::uint64_t seed = 100;
  for (const Mode& mode : modes) {
    backend::set_compute_options(mode.options);
    const std::string mode_name =
        backend::math_precision_name(mode.options.precision) +
        std::string(mode.options.determinism == backend::AlgorithmDeterminism::Deterministic
                        ? " deterministic"
                        : "");
    for (const ConvShape& shape : refused_shapes()) {
      const std::string what = shape.name + " " + mode_name;
      const Shape y_shape = conv2d_output_shape(shape.x, shape.weight, shape.params);
      const Tensor x = test::random_tensor(shape.x, ++seed, -1.0, 1.0, DType::Float32);
      const Tensor weight = test::random_tensor(shape.weight, ++seed, -1.0, 1.0, DType::Float32);
      const Tensor grad_y = test::random_tensor(y_shape, ++seed, -1.0, 1.0, DType::Float32);
      for (int call = 0; call < 2; ++call) {  // the second call runs the cached choice
        Tensor y_cpu = Tensor::empty(y_shape);
        Tensor y_gpu = Tensor::empty(y_shape, DType::Float32, gpu());
        cpu.conv2d_forward(x, weight, y_cpu, shape.params);
        device.conv2d_forward(x.to(gpu()), weight.to(gpu()), y_gpu, shape.params);
        expect_close(y_gpu, y_cpu, what + " forward", mode.tolerance);

        Tensor grad_x_cpu = Tensor::empty(shape.x);
        Tensor grad_x_gpu = Tensor::empty(shape.x, DType::Float32, gpu());
        cpu.conv2d_backward_data(grad_y, weight, grad_x_cpu, shape.params, Write::Overwrite);
        device.conv2d_backward_data(grad_y.to(gpu()), weight.to(gpu()), grad_x_gpu, shape.params,
                                    Write::Overwrite);
        expect_close(grad_x_gpu, grad_x_cpu, what + " backward-data", mode.tolerance);

        Tensor grad_w_cpu = Tensor::empty(shape.weight);
        Tensor grad_w_gpu = Tensor::empty(shape.weight, DType::Float32, gpu());
        cpu.conv2d_backward_filter(x, grad_y, grad_w_cpu, shape.params, Write::Overwrite);
        device.conv2d_backward_filter(x.to(gpu()), grad_y.to(gpu()), grad_w_gpu, shape.params,
                                      Write::Overwrite);
        expect_close(grad_w_gpu, grad_w_cpu, what + " backward-filter", mode.tolerance);
      }
    }
  }
}

TEST_F(CudaConvChoice, EachChoiceIsLoggedOnce) {
  // A shape no other test uses, so that its algorithms are chosen here.
  const Shape x_shape{3, 5, 11, 13};
  const Shape w_shape{7, 5, 3, 3};
  const Conv2dParams params{.stride = 1, .padding = 1};
  Backend& device = backend::get(gpu());
  const Tensor x = test::random_tensor(x_shape, 1, -1.0, 1.0, DType::Float32).to(gpu());
  const Tensor weight = test::random_tensor(w_shape, 2, -1.0, 1.0, DType::Float32).to(gpu());
  Tensor y = Tensor::empty(conv2d_output_shape(x_shape, w_shape, params), DType::Float32, gpu());
  testing::internal::CaptureStderr();
  device.conv2d_forward(x, weight, y, params);
  device.conv2d_forward(x, weight, y, params);
  device.synchronize();
  const std::string log = testing::internal::GetCapturedStderr();
  const std::string line = "conv2d forward for x [3, 5, 11, 13], weight [7, 5, 3, 3]";
  const std::size_t first = log.find(line);
  ASSERT_NE(first, std::string::npos) << log;
  EXPECT_NE(log.find("chose algorithm", first), std::string::npos) << log;
  EXPECT_NE(log.find(" math", first), std::string::npos) << log;
  EXPECT_EQ(log.find(line, first + 1), std::string::npos) << "logged twice: " << log;
}

TEST_F(CudaConvChoice, CaptureReplaysACachedShapeAndNamesANewOne) {
  Backend& device = backend::get(gpu());
  const Shape x_shape{2, 4, 10, 10};
  const Shape w_shape{6, 4, 3, 3};
  const Conv2dParams params{.stride = 1, .padding = 1};
  const Tensor x = test::random_tensor(x_shape, 3, -1.0, 1.0, DType::Float32).to(gpu());
  const Tensor weight = test::random_tensor(w_shape, 4, -1.0, 1.0, DType::Float32).to(gpu());
  Tensor y = Tensor::empty(conv2d_output_shape(x_shape, w_shape, params), DType::Float32, gpu());
  device.conv2d_forward(x, weight, y, params);  // the eager warm-up chooses
  const std::vector<float> eager = y.to_vector<float>();
  device.fill(y, 0.0);
  auto graph = device.capture_graph([&] { device.conv2d_forward(x, weight, y, params); });
  EXPECT_EQ(y.to_vector<float>(), eager);

  const Shape new_x_shape{2, 4, 12, 12};
  const Tensor new_x = test::random_tensor(new_x_shape, 5, -1.0, 1.0, DType::Float32).to(gpu());
  Tensor new_y =
      Tensor::empty(conv2d_output_shape(new_x_shape, w_shape, params), DType::Float32, gpu());
  try {
    (void)device.capture_graph([&] { device.conv2d_forward(new_x, weight, new_y, params); });
    ADD_FAILURE() << "a new shape inside a capture did not throw";
  } catch (const Error& error) {
    const std::string message = error.what();
    EXPECT_NE(message.find("conv2d forward for x [2, 4, 12, 12]"), std::string::npos) << message;
    EXPECT_NE(message.find("inside a captured step"), std::string::npos) << message;
  }
  EXPECT_FALSE(capturing());
  device.conv2d_forward(new_x, weight, new_y, params);  // eager again: chosen and run
  device.synchronize();
}

}  // namespace
}  // namespace md
