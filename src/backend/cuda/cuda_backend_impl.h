// The CUDA backend class: the op interface on one GPU, float32. cuDNN for convolutions,
// batch norm, pooling and softmax; cuBLAS for linear; our kernels (the *.cu files, launched
// through kernels.h) for the rest, with their per-element math from element_math.h. Each op
// family is one .cpp file of this folder (the names of backend/cpu), forward and backward
// together. Every op makes the backend's device current for its work (DeviceGuard) and
// queues it on the device's one stream; nothing here synchronizes with the host except the
// ops that return a value to it (dot, sum, count_nonfinite). A backend is used by one thread
// at a time, like the cuDNN and cuBLAS handles it owns.
// Private to backend/cuda.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <initializer_list>
#include <memory>
#include <optional>
#include <unordered_map>

#include "backend/backend.h"
#include "backend/cuda/allocator.h"
#include "backend/cuda/cuda_backend.h"
#include "backend/cuda/handles.h"

namespace md::cuda {

// A cuDNN algorithm chosen for one convolution direction, with the math type it runs under
// and the workspace it needs.
template <typename Algorithm>
struct ConvChoice {
  Algorithm algorithm{};
  cudnnMathType_t math = CUDNN_FMA_MATH;
  std::size_t workspace_bytes = 0;
};

// What a convolution's algorithm choice depends on: shapes, parameters and the switches.
struct ConvKey {
  std::array<std::int64_t, 4> x{};
  std::array<std::int64_t, 4> weight{};
  Conv2dParams params;
  Options options;
  bool operator==(const ConvKey& other) const;
};
struct ConvKeyHash {
  std::size_t operator()(const ConvKey& key) const;
};

// The descriptors of one convolution shape and its cached algorithm per direction.
struct ConvPlan {
  TensorDescriptor x;
  TensorDescriptor y;
  FilterDescriptor weight;
  ConvolutionDescriptor convolution;
  std::optional<ConvChoice<cudnnConvolutionFwdAlgo_t>> forward;
  std::optional<ConvChoice<cudnnConvolutionBwdDataAlgo_t>> backward_data;
  std::optional<ConvChoice<cudnnConvolutionBwdFilterAlgo_t>> backward_filter;
};

class CudaBackend final : public Backend {
 public:
  explicit CudaBackend(int device_index);
  ~CudaBackend() override;

  Device device() const override { return Device::cuda(device_index_); }

  void conv2d_forward(const Tensor& x, const Tensor& weight, Tensor& y,
                      const Conv2dParams& params) override;
  void conv2d_backward_data(const Tensor& grad_y, const Tensor& weight, Tensor& grad_x,
                            const Conv2dParams& params, Write write) override;
  void conv2d_backward_filter(const Tensor& x, const Tensor& grad_y, Tensor& grad_weight,
                              const Conv2dParams& params, Write write) override;
  void add_channel_bias(Tensor& y, const Tensor& bias) override;
  void channel_bias_backward(const Tensor& grad_y, Tensor& grad_bias, Write write) override;

  void linear_forward(const Tensor& x, const Tensor& weight, const Tensor& bias,
                      Tensor& y) override;
  void linear_backward(const Tensor& x, const Tensor& weight, const Tensor& grad_y, Tensor& grad_x,
                       Tensor& grad_weight, Tensor& grad_bias, Write write) override;

  void batch_norm_forward_train(const Tensor& x, const Tensor& gamma, const Tensor& beta, Tensor& y,
                                Tensor& save_mean, Tensor& save_invstd, Tensor& running_mean,
                                Tensor& running_var, const BatchNormParams& params,
                                RunningStatsUpdate update) override;
  void batch_norm_forward_eval(const Tensor& x, const Tensor& gamma, const Tensor& beta,
                               const Tensor& running_mean, const Tensor& running_var, Tensor& y,
                               const BatchNormParams& params) override;
  void batch_norm_backward(const Tensor& x, const Tensor& grad_y, const Tensor& gamma,
                           const Tensor& save_mean, const Tensor& save_invstd, Tensor& grad_x,
                           Tensor& grad_gamma, Tensor& grad_beta, Write write) override;

  void batch_norm_add_relu_forward_train(const Tensor& x, const Tensor& gamma, const Tensor& beta,
                                         const Tensor& residual, Tensor& y, Tensor& save_mean,
                                         Tensor& save_invstd, Tensor& running_mean,
                                         Tensor& running_var, const BatchNormParams& params,
                                         RunningStatsUpdate update) override;
  void batch_norm_add_relu_forward_eval(const Tensor& x, const Tensor& gamma, const Tensor& beta,
                                        const Tensor& residual, const Tensor& running_mean,
                                        const Tensor& running_var, Tensor& y,
                                        const BatchNormParams& params) override;
  void batch_norm_add_relu_backward(const Tensor& x, const Tensor& y, const Tensor& grad_y,
                                    const Tensor& gamma, const Tensor& save_mean,
                                    const Tensor& save_invstd, Tensor& grad_x, Tensor& grad_gamma,
                                    Tensor& grad_beta, Tensor& grad_residual, Write write) override;

  void relu_forward(const Tensor& x, Tensor& y) override;
  void relu_backward(const Tensor& y, const Tensor& grad_y, Tensor& grad_x, Write write) override;
  void sigmoid_forward(const Tensor& x, Tensor& y) override;
  void sigmoid_backward(const Tensor& y, const Tensor& grad_y, Tensor& grad_x,
                        Write write) override;

  void pool2d_forward(const Tensor& x, Tensor& y, PoolKind kind,
                      const Pool2dParams& params) override;
  void pool2d_backward(const Tensor& x, const Tensor& y, const Tensor& grad_y, Tensor& grad_x,
                       PoolKind kind, const Pool2dParams& params, Write write) override;
  void global_avg_pool_forward(const Tensor& x, Tensor& y) override;
  void global_avg_pool_backward(const Tensor& grad_y, Tensor& grad_x, Write write) override;

  void resize_forward(const Tensor& x, Tensor& y, ResizeMode mode) override;
  void resize_backward(const Tensor& grad_y, Tensor& grad_x, ResizeMode mode, Write write) override;

  void concat_channels(const std::vector<Tensor>& xs, Tensor& y) override;
  void concat_channels_backward(const Tensor& grad_y, std::vector<Tensor>& grad_xs,
                                Write write) override;

  void fill(Tensor& y, double value) override;
  void copy(const Tensor& x, Tensor& y) override;
  void add(const Tensor& a, const Tensor& b, Tensor& y) override;
  void mul(const Tensor& a, const Tensor& b, Tensor& y, Write write) override;
  void axpby(double alpha, const Tensor& x, double beta, Tensor& y) override;
  double dot(const Tensor& a, const Tensor& b) override;
  double sum(const Tensor& x) override;
  std::int64_t count_nonfinite(const Tensor& x) override;

  void softmax_forward(const Tensor& x, Tensor& y) override;
  void softmax_backward(const Tensor& y, const Tensor& grad_y, Tensor& grad_x,
                        Write write) override;
  void log_softmax_forward(const Tensor& x, Tensor& y) override;
  void log_softmax_backward(const Tensor& y, const Tensor& grad_y, Tensor& grad_x,
                            Write write) override;

  void cross_entropy_forward(const Tensor& logits, const Tensor& labels, Tensor& loss,
                             double label_smoothing) override;
  void cross_entropy_backward(const Tensor& logits, const Tensor& labels, const Tensor& grad_loss,
                              Tensor& grad_logits, double label_smoothing, Write write) override;
  void kl_div_forward(const Tensor& student, const Tensor& teacher, Tensor& loss,
                      double temperature) override;
  void kl_div_backward(const Tensor& student, const Tensor& teacher, const Tensor& grad_loss,
                       Tensor& grad_student, Tensor& grad_teacher, double temperature,
                       Write write) override;
  void mse_forward(const Tensor& a, const Tensor& b, Tensor& loss) override;
  void mse_backward(const Tensor& a, const Tensor& b, const Tensor& grad_loss, Tensor& grad_a,
                    Tensor& grad_b, Write write) override;

  void augment_images(const Tensor& pixels, const Tensor& draws, const Tensor& table, Tensor& out,
                      const AugmentParams& params) override;

  void sgd_update(Tensor& param, const Tensor& grad, Tensor& momentum_buffer,
                  const SgdParams& params) override;
  void adam_update(Tensor& param, const Tensor& grad, Tensor& exp_avg, Tensor& exp_avg_sq,
                   const AdamParams& params) override;

  void synchronize() override;
  std::unique_ptr<DeviceGraph> capture_graph(const std::function<void()>& work) override;

 private:
  // Throws md::Error naming `op` unless every defined tensor is float32 on this device.
  void expect_float32(const char* op, std::initializer_list<const Tensor*> tensors) const;
  // The plan of a convolution shape, created on first use.
  ConvPlan& conv_plan(const Shape& x_shape, const Shape& weight_shape, const Conv2dParams& params,
                      const Options& options);
  // Runs `launch_partials(partials, blocks)` (one double per block) for `count` elements and
  // returns the sum of the partials to the host; synchronizes the stream.
  template <typename LaunchPartials>
  double reduce_to_host(std::int64_t count, const LaunchPartials& launch_partials);
  void softmax_forward_with(const Tensor& x, Tensor& y, cudnnSoftmaxAlgorithm_t algorithm,
                            const char* op);
  void softmax_backward_with(const Tensor& y, const Tensor& grad_y, Tensor& grad_x, Write write,
                             cudnnSoftmaxAlgorithm_t algorithm, const char* op);

  int device_index_;
  DeviceContext& context_;
  CudnnHandle cudnn_;
  CublasHandle cublas_;
  std::unordered_map<ConvKey, std::unique_ptr<ConvPlan>, ConvKeyHash> conv_plans_;
};

// The blend factors of a cuDNN/cuBLAS call for a Write mode: dst = 1·result + beta·dst.
inline float write_beta(Write write) {
  return write == Write::Accumulate ? 1.0f : 0.0f;
}

}  // namespace md::cuda
