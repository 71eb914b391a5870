// Convolutions through cuDNN: forward, backward-data, backward-filter (groups, dilation), and
// the per-channel bias. The descriptors of a shape and the algorithm of each direction are
// chosen once and cached per (shapes, parameters, switches); the candidates honour the
// workspace limit, the math mode (FMA only unless TF32 is allowed) and the determinism switch.
// cuDNN may refuse at execution an algorithm it ranked (most often bf16 NHWC with 1 or 3 input
// channels, grouped and depthwise convolutions), so the choice runs cuDNN's candidates in rank
// order and caches the first that ran (backend/algorithm_choice.h), logging it once; inside a
// captured step a shape without a cached algorithm is an error, never a search. The
// workspace of every call comes from the caching allocator. Write::Accumulate is beta = 1.
// MathMode::Bf16 runs each convolution on bfloat16 NHWC copies of its operands (one conversion
// kernel each) with float32 accumulation on tensor cores, into a bfloat16 NHWC result that a
// last kernel converts back to float32 NCHW, blending it in for Write::Accumulate.
#include <algorithm>
#include <deque>
#include <functional>
#include <string>
#include <vector>

#include "backend/algorithm_choice.h"
#include "backend/cuda/cuda_backend_impl.h"
#include "backend/cuda/cuda_check.h"
#include "backend/cuda/kernels.h"
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

// The math type set while cuDNN proposes algorithms: FMA only, the default (which lets
// float32 convolutions use TF32 tensor cores on Ampere and later), or tensor cores (bf16).
cudnnMathType_t query_math(const Options& options) {
  switch (options.math) {
    case MathMode::Fp32:
      return CUDNN_FMA_MATH;
    case MathMode::Tf32:
      return CUDNN_DEFAULT_MATH;
    case MathMode::Bf16:
      return CUDNN_TENSOR_OP_MATH;
  }
  return CUDNN_FMA_MATH;
}

// The math type an accepted algorithm runs under.
cudnnMathType_t run_math(const Options& options, cudnnMathType_t proposed) {
  return options.math == MathMode::Fp32 ? CUDNN_FMA_MATH : proposed;
}

ConvStorage storage_of(const Options& options) {
  return options.math == MathMode::Bf16 ? ConvStorage::Bfloat16Nhwc : ConvStorage::Float32Nchw;
}

kernels::ImageExtents extents_of(const Shape& shape) {
  return kernels::ImageExtents{shape[0], shape[1], shape[2], shape[3]};
}

// The device memory a convolution call reads and writes: the float32 NCHW tensors themselves,
// or (MathMode::Bf16) bfloat16 NHWC copies converted on the stream, which live until the call
// ends. The result goes to a bfloat16 scratch that finish() converts into the tensor.
class ConvOperands {
 public:
  ConvOperands(CachingAllocator& allocator, cudaStream_t stream, const Options& options)
      : allocator_(allocator), stream_(stream), bf16_(options.math == MathMode::Bf16) {}

  const void* input(const Tensor& tensor) {
    if (!bf16_) return tensor.raw_data();
    DeviceBuffer& copy = buffers_.emplace_back(allocator_, bf16_bytes(tensor));
    kernels::nchw_to_nhwc_bfloat16(tensor.data<float>(), copy.as<std::uint16_t>(),
                                   extents_of(tensor.shape()), stream_);
    return copy.data();
  }
  void* output(const Tensor& tensor) {
    if (!bf16_) return tensor.raw_data();
    return buffers_.emplace_back(allocator_, bf16_bytes(tensor)).data();
  }
  std::size_t output_bytes(const Tensor& tensor) const {
    return bf16_ ? bf16_bytes(tensor) : tensor.nbytes();
  }
  // cuDNN's blend factor: into the tensor itself, or into a fresh scratch (0).
  float cudnn_beta(Write write) const { return bf16_ ? 0.0f : write_beta(write); }
  // The scratch result (the last output()) into the tensor with `write`.
  void finish(Tensor& tensor, Write write) {
    if (!bf16_) return;
    kernels::nhwc_bfloat16_to_nchw(buffers_.back().as<std::uint16_t>(), tensor.data<float>(),
                                   extents_of(tensor.shape()), write_beta(write), stream_);
  }

 private:
  static std::size_t bf16_bytes(const Tensor& tensor) {
    return static_cast<std::size_t>(tensor.numel()) * sizeof(std::uint16_t);
  }

  CachingAllocator& allocator_;
  cudaStream_t stream_;
  bool bf16_;
  std::deque<DeviceBuffer> buffers_;  // stable addresses
};

// Never CUDNN_TENSOR_OP_MATH_ALLOW_CONVERSION: it may round float32 inputs to half precision.
template <typename Perf>
bool acceptable(const Perf& perf, const Options& options) {
  if (perf.status != CUDNN_STATUS_SUCCESS) return false;
  if (perf.mathType == CUDNN_TENSOR_OP_MATH_ALLOW_CONVERSION) return false;
  if (options.determinism == Determinism::Deterministic &&
      perf.determinism != CUDNN_DETERMINISTIC) {
    return false;
  }
  return options.math != MathMode::Fp32 || !uses_tensor_cores(perf.mathType);
}

// The device data of one convolution call: two inputs, the output (output_bytes) and cuDNN's
// blend factor for it. A timed search writes a scratch output of output_bytes instead.
struct ConvData {
  const void* first = nullptr;
  const void* second = nullptr;
  void* output = nullptr;
  std::size_t output_bytes = 0;
  float beta = 0.0f;
};

const char* math_name(cudnnMathType_t math) {
  switch (math) {
    case CUDNN_DEFAULT_MATH:
      return "default math";
    case CUDNN_TENSOR_OP_MATH:
      return "tensor-op math";
    case CUDNN_TENSOR_OP_MATH_ALLOW_CONVERSION:
      return "tensor-op math with conversion";
    case CUDNN_FMA_MATH:
      return "FMA math";
  }
  return "unknown math";
}

const char* mode_name(const Options& options) {
  switch (options.math) {
    case MathMode::Fp32:
      return "fp32";
    case MathMode::Tf32:
      return "tf32";
    case MathMode::Bf16:
      return "bf16";
  }
  return "unknown precision";
}

// The statuses with which cuDNN refuses one algorithm for a shape at execution; the next
// candidate may run. Any other failure (memory, the device) ends the choice.
bool refuses_algorithm(cudnnStatus_t status) {
#ifdef CUDNN_STATUS_CATEGORY
  const int category = CUDNN_STATUS_CATEGORY(static_cast<int>(status));
  return category == CUDNN_STATUS_NOT_SUPPORTED || category == CUDNN_STATUS_BAD_PARAM ||
         category == CUDNN_STATUS_EXECUTION_FAILED;
#else
  return status == CUDNN_STATUS_NOT_SUPPORTED || status == CUDNN_STATUS_BAD_PARAM ||
         status == CUDNN_STATUS_EXECUTION_FAILED;
#endif
}

// One struct per direction gives choose() the cuDNN calls of that direction.
struct ForwardDirection {
  using Algorithm = cudnnConvolutionFwdAlgo_t;
  using Perf = cudnnConvolutionFwdAlgoPerf_t;
  static constexpr const char* name = "forward";
  static constexpr const char* call = "cudnnConvolutionForward";
  static const char* algorithm_name(Algorithm algorithm) {
    switch (algorithm) {
      case CUDNN_CONVOLUTION_FWD_ALGO_IMPLICIT_GEMM:
        return "IMPLICIT_GEMM";
      case CUDNN_CONVOLUTION_FWD_ALGO_IMPLICIT_PRECOMP_GEMM:
        return "IMPLICIT_PRECOMP_GEMM";
      case CUDNN_CONVOLUTION_FWD_ALGO_GEMM:
        return "GEMM";
      case CUDNN_CONVOLUTION_FWD_ALGO_DIRECT:
        return "DIRECT";
      case CUDNN_CONVOLUTION_FWD_ALGO_FFT:
        return "FFT";
      case CUDNN_CONVOLUTION_FWD_ALGO_FFT_TILING:
        return "FFT_TILING";
      case CUDNN_CONVOLUTION_FWD_ALGO_WINOGRAD:
        return "WINOGRAD";
      case CUDNN_CONVOLUTION_FWD_ALGO_WINOGRAD_NONFUSED:
        return "WINOGRAD_NONFUSED";
      default:
        return "unknown";
    }
  }
  // first = x, second = weight, output = y
  static cudnnStatus_t execute(cudnnHandle_t handle, const ConvPlan& plan, const ConvData& data,
                               Algorithm algorithm, void* workspace, std::size_t workspace_bytes) {
    const float one = 1.0f;
    return cudnnConvolutionForward(handle, &one, plan.x.get(), data.first, plan.weight.get(),
                                   data.second, plan.convolution.get(), algorithm, workspace,
                                   workspace_bytes, &data.beta, plan.y.get(), data.output);
  }
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
  static void search(cudnnHandle_t handle, const ConvPlan& plan, const ConvData& data, void* output,
                     int requested, int* returned, Perf* results, void* workspace,
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
  static constexpr const char* call = "cudnnConvolutionBackwardData";
  static const char* algorithm_name(Algorithm algorithm) {
    switch (algorithm) {
      case CUDNN_CONVOLUTION_BWD_DATA_ALGO_0:
        return "ALGO_0";
      case CUDNN_CONVOLUTION_BWD_DATA_ALGO_1:
        return "ALGO_1";
      case CUDNN_CONVOLUTION_BWD_DATA_ALGO_FFT:
        return "FFT";
      case CUDNN_CONVOLUTION_BWD_DATA_ALGO_FFT_TILING:
        return "FFT_TILING";
      case CUDNN_CONVOLUTION_BWD_DATA_ALGO_WINOGRAD:
        return "WINOGRAD";
      case CUDNN_CONVOLUTION_BWD_DATA_ALGO_WINOGRAD_NONFUSED:
        return "WINOGRAD_NONFUSED";
      default:
        return "unknown";
    }
  }
  // first = weight, second = grad_y, output = grad_x
  static cudnnStatus_t execute(cudnnHandle_t handle, const ConvPlan& plan, const ConvData& data,
                               Algorithm algorithm, void* workspace, std::size_t workspace_bytes) {
    const float one = 1.0f;
    return cudnnConvolutionBackwardData(handle, &one, plan.weight.get(), data.first, plan.y.get(),
                                        data.second, plan.convolution.get(), algorithm, workspace,
                                        workspace_bytes, &data.beta, plan.x.get(), data.output);
  }
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
  static void search(cudnnHandle_t handle, const ConvPlan& plan, const ConvData& data, void* output,
                     int requested, int* returned, Perf* results, void* workspace,
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
  static constexpr const char* call = "cudnnConvolutionBackwardFilter";
  static const char* algorithm_name(Algorithm algorithm) {
    switch (algorithm) {
      case CUDNN_CONVOLUTION_BWD_FILTER_ALGO_0:
        return "ALGO_0";
      case CUDNN_CONVOLUTION_BWD_FILTER_ALGO_1:
        return "ALGO_1";
      case CUDNN_CONVOLUTION_BWD_FILTER_ALGO_FFT:
        return "FFT";
      case CUDNN_CONVOLUTION_BWD_FILTER_ALGO_3:
        return "ALGO_3";
      case CUDNN_CONVOLUTION_BWD_FILTER_ALGO_WINOGRAD_NONFUSED:
        return "WINOGRAD_NONFUSED";
      case CUDNN_CONVOLUTION_BWD_FILTER_ALGO_FFT_TILING:
        return "FFT_TILING";
      default:
        return "unknown";
    }
  }
  // first = x, second = grad_y, output = grad_weight
  static cudnnStatus_t execute(cudnnHandle_t handle, const ConvPlan& plan, const ConvData& data,
                               Algorithm algorithm, void* workspace, std::size_t workspace_bytes) {
    const float one = 1.0f;
    return cudnnConvolutionBackwardFilter(
        handle, &one, plan.x.get(), data.first, plan.y.get(), data.second, plan.convolution.get(),
        algorithm, workspace, workspace_bytes, &data.beta, plan.weight.get(), data.output);
  }
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
  static void search(cudnnHandle_t handle, const ConvPlan& plan, const ConvData& data, void* output,
                     int requested, int* returned, Perf* results, void* workspace,
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

// The acceptable algorithms of cuDNN's ranking (heuristic or timed), best first, each with
// the math type it runs under and its workspace under that math type, which fits the limit.
template <typename Direction>
std::vector<ConvChoice<typename Direction::Algorithm>> rank_candidates(
    cudnnHandle_t handle, ConvPlan& plan, const Options& options, const ConvData& data,
    CachingAllocator& allocator, const std::string& what) {
  using Perf = typename Direction::Perf;
  using Choice = ConvChoice<typename Direction::Algorithm>;
  MD_CUDNN_CHECK(cudnnSetConvolutionMathType(plan.convolution.get(), query_math(options)));
  const int requested = Direction::max_count(handle);
  std::vector<Perf> results(static_cast<std::size_t>(std::max(requested, 1)));
  int returned = 0;
  Direction::propose(handle, plan, requested, &returned, results.data());

  if (options.algorithm_search == AlgorithmSearch::Search) {
    // Timing runs and waits for the candidates: never in recorded work (a miss there is an
    // error before any ranking, see algorithm_choice.h).
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

  std::vector<Choice> candidates;
  for (int i = 0; i < returned; ++i) {
    const Perf& perf = results[static_cast<std::size_t>(i)];
    if (!acceptable(perf, options)) continue;
    const cudnnMathType_t math = run_math(options, perf.mathType);
    const bool seen = std::any_of(candidates.begin(), candidates.end(), [&](const Choice& other) {
      return other.algorithm == perf.algo && other.math == math;
    });
    if (seen) continue;
    MD_CUDNN_CHECK(cudnnSetConvolutionMathType(plan.convolution.get(), math));
    std::size_t bytes = 0;
    if (Direction::workspace(handle, plan, perf.algo, &bytes) != CUDNN_STATUS_SUCCESS) continue;
    if (bytes > options.workspace_limit_bytes) continue;
    candidates.push_back(Choice{perf.algo, math, bytes});
  }
  if (candidates.empty()) {
    throw Error(
        what + ": cuDNN proposes no algorithm within a workspace of " +
        std::to_string(options.workspace_limit_bytes) + " bytes" +
        (options.determinism == Determinism::Deterministic ? " that is deterministic" : "") +
        (options.math == MathMode::Fp32 ? " without tensor cores" : ""));
  }
  return candidates;
}

std::string describe_conv(const Shape& x, const Shape& weight, const Conv2dParams& params) {
  return "x " + shape_str(x) + ", weight " + shape_str(weight) + ", stride " +
         std::to_string(params.stride) + ", padding " + std::to_string(params.padding) +
         ", dilation " + std::to_string(params.dilation) + ", groups " +
         std::to_string(params.groups);
}

// One direction's convolution call, run with a cached algorithm or with cuDNN's candidates in
// turn (backend::run_with_cached_choice).
template <typename Direction>
class ConvWalk {
 public:
  using Choice = ConvChoice<typename Direction::Algorithm>;

  struct Setup {
    cudnnHandle_t handle = nullptr;
    ConvPlan* plan = nullptr;
    Options options;
    ConvData data;
    CachingAllocator* allocator = nullptr;
    // For messages: x and weight (the forward's shapes) and the parameters.
    const Shape* x_shape = nullptr;
    const Shape* weight_shape = nullptr;
    const Conv2dParams* params = nullptr;
  };

  explicit ConvWalk(const Setup& setup) : setup_(setup) {}

  std::string what() const {
    return std::string("conv2d ") + Direction::name + " for " +
           describe_conv(*setup_.x_shape, *setup_.weight_shape, *setup_.params) + ", " +
           mode_name(setup_.options) +
           (setup_.options.determinism == Determinism::Deterministic ? ", deterministic" : "");
  }

  std::vector<Choice> rank() {
    return rank_candidates<Direction>(setup_.handle, *setup_.plan, setup_.options, setup_.data,
                                      *setup_.allocator, what());
  }

  backend::CandidateOutcome run(const Choice& choice) {
    MD_CUDNN_CHECK(cudnnSetConvolutionMathType(setup_.plan->convolution.get(), choice.math));
    DeviceBuffer workspace(*setup_.allocator, choice.workspace_bytes);
    const cudnnStatus_t status =
        Direction::execute(setup_.handle, *setup_.plan, setup_.data, choice.algorithm,
                           workspace.data(), choice.workspace_bytes);
    if (status == CUDNN_STATUS_SUCCESS) return backend::CandidateOutcome::success();
    if (!refuses_algorithm(status)) {
      detail::throw_cudnn_error(status, Direction::call, __FILE__, __LINE__);
    }
    cudaGetLastError();  // a refused launch may leave a (non-sticky) error behind
    return backend::CandidateOutcome::refused(std::string(Direction::call) + " returned " +
                                              cudnnGetErrorString(status));
  }

  std::string describe(const Choice& choice) const {
    return std::string("algorithm ") + Direction::algorithm_name(choice.algorithm) + " (" +
           std::to_string(static_cast<int>(choice.algorithm)) + ", " + math_name(choice.math) +
           ", workspace " + std::to_string(choice.workspace_bytes) + " bytes)";
  }

 private:
  Setup setup_;
};

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
  const ConvStorage storage = storage_of(options);
  plan->x = make_tensor_descriptor(Nchw{x_shape[0], x_shape[1], x_shape[2], x_shape[3]}, storage);
  plan->y = make_tensor_descriptor(Nchw{y_shape[0], y_shape[1], y_shape[2], y_shape[3]}, storage);
  plan->weight = make_filter_descriptor(weight_shape, storage);
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
  ConvOperands operands(*context_.allocator, context_.stream, current);
  const void* x_data = operands.input(x);
  const void* weight_data = operands.input(weight);
  void* y_data = operands.output(y);
  ConvWalk<ForwardDirection> walk(
      {.handle = cudnn_.get(),
       .plan = &plan,
       .options = current,
       .data = ConvData{x_data, weight_data, y_data, operands.output_bytes(y),
                        operands.cudnn_beta(Write::Overwrite)},
       .allocator = context_.allocator,
       .x_shape = &x.shape(),
       .weight_shape = &weight.shape(),
       .params = &params});
  backend::run_with_cached_choice(plan.forward, walk);
  operands.finish(y, Write::Overwrite);
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
  ConvOperands operands(*context_.allocator, context_.stream, current);
  const void* weight_data = operands.input(weight);
  const void* grad_y_data = operands.input(grad_y);
  void* grad_x_data = operands.output(grad_x);
  ConvWalk<BackwardDataDirection> walk(
      {.handle = cudnn_.get(),
       .plan = &plan,
       .options = current,
       .data = ConvData{weight_data, grad_y_data, grad_x_data, operands.output_bytes(grad_x),
                        operands.cudnn_beta(write)},
       .allocator = context_.allocator,
       .x_shape = &grad_x.shape(),
       .weight_shape = &weight.shape(),
       .params = &params});
  backend::run_with_cached_choice(plan.backward_data, walk);
  operands.finish(grad_x, write);
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
  ConvOperands operands(*context_.allocator, context_.stream, current);
  const void* x_data = operands.input(x);
  const void* grad_y_data = operands.input(grad_y);
  void* grad_weight_data = operands.output(grad_weight);
  ConvWalk<BackwardFilterDirection> walk(
      {.handle = cudnn_.get(),
       .plan = &plan,
       .options = current,
       .data = ConvData{x_data, grad_y_data, grad_weight_data, operands.output_bytes(grad_weight),
                        operands.cudnn_beta(write)},
       .allocator = context_.allocator,
       .x_shape = &x.shape(),
       .weight_shape = &grad_weight.shape(),
       .params = &params});
  backend::run_with_cached_choice(plan.backward_filter, walk);
  operands.finish(grad_weight, write);
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
