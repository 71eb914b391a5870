// Convolutions through cuDNN: forward, backward-data, backward-filter (groups, dilation), and
// the per-channel bias. The descriptors of a shape and the algorithm of each direction are
// chosen once and cached per (shapes, parameters, switches); the choice honours the workspace
// limit, the math mode (FMA only unless TF32 is allowed) and the determinism switch. The
// workspace of every call comes from the caching allocator. Write::Accumulate is beta = 1.
#include <algorithm>
#include <functional>
#include <string>
#include <vector>

#include "backend/cuda/cuda_backend_impl.h"
#include "backend/cuda/cuda_check.h"
#include "core/error.h"

namespace md::cuda {
namespace {

std::array<std::int64_t, 4> dims4(const Shape& shape, const char* what) {
  MD_CHECK(shape.size() == 4, "conv2d: ", what, " must be 4-D, got ", shape_str(shape));
  return {shape[0], shape[1], shape[2], shape[3]};
}

void check_conv_shapes(const char* op, const Shape& x, const Shape& weight, const Shape& y,
                       const Conv2dParams& params) {
  dims4(x, "x");
  dims4(weight, "weight");
  MD_CHECK(
      params.groups >= 1 && x[1] == weight[1] * params.groups && weight[0] % params.groups == 0, op,
      ": x ", shape_str(x), " and weight ", shape_str(weight), " do not match groups ",
      params.groups);
  const Shape expected = conv2d_output_shape(x, weight, params);
  MD_CHECK(y == expected, op, ": output ", shape_str(y), " but x ", shape_str(x), " and weight ",
           shape_str(weight), " give ", shape_str(expected));
}

bool uses_tensor_cores(cudnnMathType_t math) {
  return math == CUDNN_TENSOR_OP_MATH || math == CUDNN_TENSOR_OP_MATH_ALLOW_CONVERSION;
}

// The math type set while cuDNN proposes algorithms: FMA only, or the default (which lets
// float32 convolutions use TF32 tensor cores on Ampere and later).
cudnnMathType_t query_math(const Options& options) {
  return options.math == MathMode::Tf32 ? CUDNN_DEFAULT_MATH : CUDNN_FMA_MATH;
}

// The math type an accepted algorithm runs under.
cudnnMathType_t run_math(const Options& options, cudnnMathType_t proposed) {
  return options.math == MathMode::Tf32 ? proposed : CUDNN_FMA_MATH;
}

// Never CUDNN_TENSOR_OP_MATH_ALLOW_CONVERSION: it may round float32 inputs to half precision.
template <typename Perf>
bool acceptable(const Perf& perf, const Options& options) {
  if (perf.status != CUDNN_STATUS_SUCCESS) return false;
  if (perf.mathType == CUDNN_TENSOR_OP_MATH_ALLOW_CONVERSION) return false;
  if (options.determinism == Determinism::Deterministic &&
      perf.determinism != CUDNN_DETERMINISTIC) {
    return false;
  }
  return options.math == MathMode::Tf32 || !uses_tensor_cores(perf.mathType);
}

// The device data a timed search runs on: two inputs and a scratch output of output_bytes.
struct SearchData {
  const void* first = nullptr;
  const void* second = nullptr;
  std::size_t output_bytes = 0;
};

// One struct per direction gives choose() the cuDNN calls of that direction.
struct ForwardDirection {
  using Algorithm = cudnnConvolutionFwdAlgo_t;
  using Perf = cudnnConvolutionFwdAlgoPerf_t;
  static constexpr const char* name = "forward";
  static int max_count(cudnnHandle_t handle) {
    int count = 0;
    MD_CUDNN_CHECK(cudnnGetConvolutionForwardAlgorithmMaxCount(handle, &count));
    return count;
  }
  static void propose(cudnnHandle_t handle, const ConvPlan& plan, int requested, int* returned,
                      Perf* results) {
    MD_CUDNN_CHECK(cudnnGetConvolutionForwardAlgorithm_v7(handle, plan.x.get(), plan.weight.get(),
                                                          plan.convolution.get(), plan.y.get(),
                                                          requested, returned, results));
  }
  static void search(cudnnHandle_t handle, const ConvPlan& plan, const SearchData& data,
                     void* output, int requested, int* returned, Perf* results, void* workspace,
                     std::size_t workspace_bytes) {
    // first = x, second = weight, output = y
    MD_CUDNN_CHECK(cudnnFindConvolutionForwardAlgorithmEx(
        handle, plan.x.get(), data.first, plan.weight.get(), data.second, plan.convolution.get(),
        plan.y.get(), output, requested, returned, results, workspace, workspace_bytes));
  }
  static cudnnStatus_t workspace(cudnnHandle_t handle, const ConvPlan& plan, Algorithm algorithm,
                                 std::size_t* bytes) {
    return cudnnGetConvolutionForwardWorkspaceSize(handle, plan.x.get(), plan.weight.get(),
                                                   plan.convolution.get(), plan.y.get(), algorithm,
                                                   bytes);
  }
};

struct BackwardDataDirection {
  using Algorithm = cudnnConvolutionBwdDataAlgo_t;
  using Perf = cudnnConvolutionBwdDataAlgoPerf_t;
  static constexpr const char* name = "backward-data";
  static int max_count(cudnnHandle_t handle) {
    int count = 0;
    MD_CUDNN_CHECK(cudnnGetConvolutionBackwardDataAlgorithmMaxCount(handle, &count));
    return count;
  }
  static void propose(cudnnHandle_t handle, const ConvPlan& plan, int requested, int* returned,
                      Perf* results) {
    MD_CUDNN_CHECK(cudnnGetConvolutionBackwardDataAlgorithm_v7(
        handle, plan.weight.get(), plan.y.get(), plan.convolution.get(), plan.x.get(), requested,
        returned, results));
  }
  static void search(cudnnHandle_t handle, const ConvPlan& plan, const SearchData& data,
                     void* output, int requested, int* returned, Perf* results, void* workspace,
                     std::size_t workspace_bytes) {
    // first = weight, second = grad_y, output = grad_x
    MD_CUDNN_CHECK(cudnnFindConvolutionBackwardDataAlgorithmEx(
        handle, plan.weight.get(), data.first, plan.y.get(), data.second, plan.convolution.get(),
        plan.x.get(), output, requested, returned, results, workspace, workspace_bytes));
  }
  static cudnnStatus_t workspace(cudnnHandle_t handle, const ConvPlan& plan, Algorithm algorithm,
                                 std::size_t* bytes) {
    return cudnnGetConvolutionBackwardDataWorkspaceSize(handle, plan.weight.get(), plan.y.get(),
                                                        plan.convolution.get(), plan.x.get(),
                                                        algorithm, bytes);
  }
};

struct BackwardFilterDirection {
  using Algorithm = cudnnConvolutionBwdFilterAlgo_t;
  using Perf = cudnnConvolutionBwdFilterAlgoPerf_t;
  static constexpr const char* name = "backward-filter";
  static int max_count(cudnnHandle_t handle) {
    int count = 0;
    MD_CUDNN_CHECK(cudnnGetConvolutionBackwardFilterAlgorithmMaxCount(handle, &count));
    return count;
  }
  static void propose(cudnnHandle_t handle, const ConvPlan& plan, int requested, int* returned,
                      Perf* results) {
    MD_CUDNN_CHECK(cudnnGetConvolutionBackwardFilterAlgorithm_v7(
        handle, plan.x.get(), plan.y.get(), plan.convolution.get(), plan.weight.get(), requested,
        returned, results));
  }
  static void search(cudnnHandle_t handle, const ConvPlan& plan, const SearchData& data,
                     void* output, int requested, int* returned, Perf* results, void* workspace,
                     std::size_t workspace_bytes) {
    // first = x, second = grad_y, output = grad_weight
    MD_CUDNN_CHECK(cudnnFindConvolutionBackwardFilterAlgorithmEx(
        handle, plan.x.get(), data.first, plan.y.get(), data.second, plan.convolution.get(),
        plan.weight.get(), output, requested, returned, results, workspace, workspace_bytes));
  }
  static cudnnStatus_t workspace(cudnnHandle_t handle, const ConvPlan& plan, Algorithm algorithm,
                                 std::size_t* bytes) {
    return cudnnGetConvolutionBackwardFilterWorkspaceSize(handle, plan.x.get(), plan.y.get(),
                                                          plan.convolution.get(), plan.weight.get(),
                                                          algorithm, bytes);
  }
};

// Picks the first acceptable algorithm of cuDNN's ranking (heuristic or timed) whose
// workspace, under the math type it will run with, fits the limit.
template <typename Direction>
ConvChoice<typename Direction::Algorithm> choose(cudnnHandle_t handle, ConvPlan& plan,
                                                 const Options& options, const SearchData& data,
                                                 CachingAllocator& allocator,
                                                 const std::string& what) {
  using Perf = typename Direction::Perf;
  MD_CUDNN_CHECK(cudnnSetConvolutionMathType(plan.convolution.get(), query_math(options)));
  const int requested = Direction::max_count(handle);
  std::vector<Perf> results(static_cast<std::size_t>(std::max(requested, 1)));
  int returned = 0;
  Direction::propose(handle, plan, requested, &returned, results.data());

  if (options.algorithm_search == AlgorithmSearch::Search) {
    // Time the candidates with the largest workspace any of them needs within the limit.
    std::size_t workspace_bytes = 0;
    for (int i = 0; i < returned; ++i) {
      std::size_t bytes = 0;
      if (results[static_cast<std::size_t>(i)].status == CUDNN_STATUS_SUCCESS &&
          Direction::workspace(handle, plan, results[static_cast<std::size_t>(i)].algo, &bytes) ==
              CUDNN_STATUS_SUCCESS &&
          bytes <= options.workspace_limit_bytes) {
        workspace_bytes = std::max(workspace_bytes, bytes);
      }
    }
    DeviceBuffer workspace(allocator, workspace_bytes);
    DeviceBuffer scratch_output(allocator, data.output_bytes);
    returned = 0;
    Direction::search(handle, plan, data, scratch_output.data(), requested, &returned,
                      results.data(), workspace.data(), workspace_bytes);
  }

  for (int i = 0; i < returned; ++i) {
    const Perf& perf = results[static_cast<std::size_t>(i)];
    if (!acceptable(perf, options)) continue;
    const cudnnMathType_t math = run_math(options, perf.mathType);
    MD_CUDNN_CHECK(cudnnSetConvolutionMathType(plan.convolution.get(), math));
    std::size_t bytes = 0;
    if (Direction::workspace(handle, plan, perf.algo, &bytes) != CUDNN_STATUS_SUCCESS) continue;
    if (bytes > options.workspace_limit_bytes) continue;
    return ConvChoice<typename Direction::Algorithm>{perf.algo, math, bytes};
  }
  throw Error(std::string("conv2d ") + Direction::name + " for " + what +
              ": cuDNN proposes no algorithm within a workspace of " +
              std::to_string(options.workspace_limit_bytes) + " bytes" +
              (options.determinism == Determinism::Deterministic ? " that is deterministic" : "") +
              (options.math == MathMode::Fp32 ? " without tensor cores" : ""));
}

std::string describe_conv(const Shape& x, const Shape& weight, const Conv2dParams& params) {
  return "x " + shape_str(x) + ", weight " + shape_str(weight) + ", stride " +
         std::to_string(params.stride) + ", padding " + std::to_string(params.padding) +
         ", dilation " + std::to_string(params.dilation) + ", groups " +
         std::to_string(params.groups);
}

}  // namespace

bool ConvKey::operator==(const ConvKey& other) const {
  return x == other.x && weight == other.weight && params.stride == other.params.stride &&
         params.padding == other.params.padding && params.dilation == other.params.dilation &&
         params.groups == other.params.groups && options.math == other.options.math &&
         options.algorithm_search == other.options.algorithm_search &&
         options.determinism == other.options.determinism &&
         options.workspace_limit_bytes == other.options.workspace_limit_bytes;
}

std::size_t ConvKeyHash::operator()(const ConvKey& key) const {
  std::size_t hash = 0;
  auto mix = [&hash](std::size_t value) {
    hash ^= value + 0x9e3779b97f4a7c15ULL + (hash << 6) + (hash >> 2);
  };
  for (std::int64_t extent : key.x) mix(std::hash<std::int64_t>{}(extent));
  for (std::int64_t extent : key.weight) mix(std::hash<std::int64_t>{}(extent));
  mix(static_cast<std::size_t>(key.params.stride));
  mix(static_cast<std::size_t>(key.params.padding));
  mix(static_cast<std::size_t>(key.params.dilation));
  mix(static_cast<std::size_t>(key.params.groups));
  mix(static_cast<std::size_t>(key.options.math));
  mix(static_cast<std::size_t>(key.options.algorithm_search));
  mix(static_cast<std::size_t>(key.options.determinism));
  mix(key.options.workspace_limit_bytes);
  return hash;
}

ConvPlan& CudaBackend::conv_plan(const Shape& x_shape, const Shape& weight_shape,
                                 const Conv2dParams& params, const Options& options) {
  ConvKey key{dims4(x_shape, "x"), dims4(weight_shape, "weight"), params, options};
  auto found = conv_plans_.find(key);
  if (found != conv_plans_.end()) return *found->second;

  auto plan = std::make_unique<ConvPlan>();
  const Shape y_shape = conv2d_output_shape(x_shape, weight_shape, params);
  plan->x = make_tensor_descriptor(Nchw{x_shape[0], x_shape[1], x_shape[2], x_shape[3]});
  plan->y = make_tensor_descriptor(Nchw{y_shape[0], y_shape[1], y_shape[2], y_shape[3]});
  plan->weight = make_filter_descriptor(weight_shape);
  plan->convolution = make_convolution_descriptor(params);
  std::array<int, 4> cudnn_y{};
  MD_CUDNN_CHECK(cudnnGetConvolution2dForwardOutputDim(plan->convolution.get(), plan->x.get(),
                                                       plan->weight.get(), &cudnn_y[0], &cudnn_y[1],
                                                       &cudnn_y[2], &cudnn_y[3]));
  MD_CHECK(cudnn_y[0] == y_shape[0] && cudnn_y[1] == y_shape[1] && cudnn_y[2] == y_shape[2] &&
               cudnn_y[3] == y_shape[3],
           "conv2d: cuDNN's output shape differs from ", shape_str(y_shape), " for ",
           describe_conv(x_shape, weight_shape, params));
  return *conv_plans_.emplace(key, std::move(plan)).first->second;
}

void CudaBackend::conv2d_forward(const Tensor& x, const Tensor& weight, Tensor& y,
                                 const Conv2dParams& params) {
  expect_float32("conv2d_forward", {&x, &weight, &y});
  check_conv_shapes("conv2d_forward", x.shape(), weight.shape(), y.shape(), params);
  if (y.numel() == 0) return;
  DeviceGuard guard(device_index_);
  const Options current = options();
  ConvPlan& plan = conv_plan(x.shape(), weight.shape(), params, current);
  if (!plan.forward) {
    plan.forward = choose<ForwardDirection>(
        cudnn_.get(), plan, current, SearchData{x.raw_data(), weight.raw_data(), y.nbytes()},
        *context_.allocator, describe_conv(x.shape(), weight.shape(), params));
  }
  const auto& choice = *plan.forward;
  MD_CUDNN_CHECK(cudnnSetConvolutionMathType(plan.convolution.get(), choice.math));
  DeviceBuffer workspace(*context_.allocator, choice.workspace_bytes);
  const float one = 1.0f;
  const float zero = 0.0f;
  MD_CUDNN_CHECK(cudnnConvolutionForward(
      cudnn_.get(), &one, plan.x.get(), x.raw_data(), plan.weight.get(), weight.raw_data(),
      plan.convolution.get(), choice.algorithm, workspace.data(), choice.workspace_bytes, &zero,
      plan.y.get(), y.raw_data()));
}

void CudaBackend::conv2d_backward_data(const Tensor& grad_y, const Tensor& weight, Tensor& grad_x,
                                       const Conv2dParams& params, Write write) {
  expect_float32("conv2d_backward_data", {&grad_y, &weight, &grad_x});
  check_conv_shapes("conv2d_backward_data", grad_x.shape(), weight.shape(), grad_y.shape(), params);
  if (grad_x.numel() == 0) return;
  if (grad_y.numel() == 0) {
    if (write == Write::Overwrite) fill(grad_x, 0.0);
    return;
  }
  DeviceGuard guard(device_index_);
  const Options current = options();
  ConvPlan& plan = conv_plan(grad_x.shape(), weight.shape(), params, current);
  if (!plan.backward_data) {
    plan.backward_data = choose<BackwardDataDirection>(
        cudnn_.get(), plan, current,
        SearchData{weight.raw_data(), grad_y.raw_data(), grad_x.nbytes()}, *context_.allocator,
        describe_conv(grad_x.shape(), weight.shape(), params));
  }
  const auto& choice = *plan.backward_data;
  MD_CUDNN_CHECK(cudnnSetConvolutionMathType(plan.convolution.get(), choice.math));
  DeviceBuffer workspace(*context_.allocator, choice.workspace_bytes);
  const float one = 1.0f;
  const float beta = write_beta(write);
  MD_CUDNN_CHECK(cudnnConvolutionBackwardData(
      cudnn_.get(), &one, plan.weight.get(), weight.raw_data(), plan.y.get(), grad_y.raw_data(),
      plan.convolution.get(), choice.algorithm, workspace.data(), choice.workspace_bytes, &beta,
      plan.x.get(), grad_x.raw_data()));
}

void CudaBackend::conv2d_backward_filter(const Tensor& x, const Tensor& grad_y, Tensor& grad_weight,
                                         const Conv2dParams& params, Write write) {
  expect_float32("conv2d_backward_filter", {&x, &grad_y, &grad_weight});
  check_conv_shapes("conv2d_backward_filter", x.shape(), grad_weight.shape(), grad_y.shape(),
                    params);
  if (grad_weight.numel() == 0) return;
  if (grad_y.numel() == 0 || x.numel() == 0) {
    if (write == Write::Overwrite) fill(grad_weight, 0.0);
    return;
  }
  DeviceGuard guard(device_index_);
  const Options current = options();
  ConvPlan& plan = conv_plan(x.shape(), grad_weight.shape(), params, current);
  if (!plan.backward_filter) {
    plan.backward_filter = choose<BackwardFilterDirection>(
        cudnn_.get(), plan, current,
        SearchData{x.raw_data(), grad_y.raw_data(), grad_weight.nbytes()}, *context_.allocator,
        describe_conv(x.shape(), grad_weight.shape(), params));
  }
  const auto& choice = *plan.backward_filter;
  MD_CUDNN_CHECK(cudnnSetConvolutionMathType(plan.convolution.get(), choice.math));
  DeviceBuffer workspace(*context_.allocator, choice.workspace_bytes);
  const float one = 1.0f;
  const float beta = write_beta(write);
  MD_CUDNN_CHECK(cudnnConvolutionBackwardFilter(
      cudnn_.get(), &one, plan.x.get(), x.raw_data(), plan.y.get(), grad_y.raw_data(),
      plan.convolution.get(), choice.algorithm, workspace.data(), choice.workspace_bytes, &beta,
      plan.weight.get(), grad_weight.raw_data()));
}

void CudaBackend::add_channel_bias(Tensor& y, const Tensor& bias) {
  expect_float32("add_channel_bias", {&y, &bias});
  const Nchw view = channel_view(y.shape());
  MD_CHECK(bias.numel() == view.c, "add_channel_bias: bias ", bias.describe(), " for y ",
           y.describe());
  if (y.numel() == 0) return;
  DeviceGuard guard(device_index_);
  const TensorDescriptor bias_descriptor = make_tensor_descriptor(Nchw{1, view.c, 1, 1});
  const TensorDescriptor y_descriptor = make_tensor_descriptor(view);
  const float one = 1.0f;
  MD_CUDNN_CHECK(cudnnAddTensor(cudnn_.get(), &one, bias_descriptor.get(), bias.raw_data(), &one,
                                y_descriptor.get(), y.raw_data()));
}

void CudaBackend::channel_bias_backward(const Tensor& grad_y, Tensor& grad_bias, Write write) {
  expect_float32("channel_bias_backward", {&grad_y, &grad_bias});
  const Nchw view = channel_view(grad_y.shape());
  MD_CHECK(grad_bias.numel() == view.c, "channel_bias_backward: grad_bias ", grad_bias.describe(),
           " for grad_y ", grad_y.describe());
  if (grad_bias.numel() == 0) return;
  if (grad_y.numel() == 0) {
    if (write == Write::Overwrite) fill(grad_bias, 0.0);
    return;
  }
  DeviceGuard guard(device_index_);
  const TensorDescriptor grad_y_descriptor = make_tensor_descriptor(view);
  const TensorDescriptor grad_bias_descriptor = make_tensor_descriptor(Nchw{1, view.c, 1, 1});
  const float one = 1.0f;
  const float beta = write_beta(write);
  MD_CUDNN_CHECK(cudnnConvolutionBackwardBias(cudnn_.get(), &one, grad_y_descriptor.get(),
                                              grad_y.raw_data(), &beta, grad_bias_descriptor.get(),
                                              grad_bias.raw_data()));
}

}  // namespace md::cuda
