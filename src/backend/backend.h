// The op interface (DESIGN.md §3). One interface, two implementations that compute the same
// functions: backend/cpu (the reference: im2col + BLAS, float32 and float64) and backend/cuda
// (cuDNN, cuBLAS, kernels; float32). All tensors are dense row-major (NCHW for images) and
// live on the backend's device; outputs are allocated by the caller with the right shape.
// Shapes in the comments: N batch, C channels, H/W spatial, K classes, O output channels.
// Backward ops take a Write mode for their gradient outputs; forward ops overwrite.
// Losses are means over the batch and write a scalar (shape {}) tensor.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <vector>

#include "backend/params.h"
#include "core/capture.h"
#include "core/device.h"
#include "core/tensor.h"

namespace md {

// Device work recorded by Backend::capture_graph. replay() runs it again: the same ops on the
// same memory, so the work's inputs are refreshed in place before a replay and its outputs read
// from where the work wrote them. Owns the memory the work used until it is destroyed.
class DeviceGraph {
 public:
  virtual ~DeviceGraph() = default;
  virtual void replay() = 0;
};

class Backend {
 public:
  virtual ~Backend() = default;
  virtual Device device() const = 0;

  // ---- convolution. x: (N, C, H, W), weight: (O, C/groups, K, K), y: (N, O, Ho, Wo)
  virtual void conv2d_forward(const Tensor& x, const Tensor& weight, Tensor& y,
                              const Conv2dParams& params) = 0;
  virtual void conv2d_backward_data(const Tensor& grad_y, const Tensor& weight, Tensor& grad_x,
                                    const Conv2dParams& params, Write write) = 0;
  virtual void conv2d_backward_filter(const Tensor& x, const Tensor& grad_y, Tensor& grad_weight,
                                      const Conv2dParams& params, Write write) = 0;
  // y: (N, C, ...) += bias[c]; bias: (C)
  virtual void add_channel_bias(Tensor& y, const Tensor& bias) = 0;
  // grad_bias[c] (+)= sum over n and spatial of grad_y[n, c, ...]
  virtual void channel_bias_backward(const Tensor& grad_y, Tensor& grad_bias, Write write) = 0;

  // ---- linear. x: (N, In), weight: (Out, In), bias: (Out) or undefined, y: (N, Out)
  virtual void linear_forward(const Tensor& x, const Tensor& weight, const Tensor& bias,
                              Tensor& y) = 0;
  // Any of grad_x / grad_weight / grad_bias may be undefined (not wanted).
  virtual void linear_backward(const Tensor& x, const Tensor& weight, const Tensor& grad_y,
                               Tensor& grad_x, Tensor& grad_weight, Tensor& grad_bias,
                               Write write) = 0;

  // ---- batch norm over (N, H, W) per channel. x, y: (N, C, H, W) or (N, C);
  // gamma, beta, running_mean, running_var, save_mean, save_invstd: (C)
  virtual void batch_norm_forward_train(const Tensor& x, const Tensor& gamma, const Tensor& beta,
                                        Tensor& y, Tensor& save_mean, Tensor& save_invstd,
                                        Tensor& running_mean, Tensor& running_var,
                                        const BatchNormParams& params,
                                        RunningStatsUpdate update) = 0;
  virtual void batch_norm_forward_eval(const Tensor& x, const Tensor& gamma, const Tensor& beta,
                                       const Tensor& running_mean, const Tensor& running_var,
                                       Tensor& y, const BatchNormParams& params) = 0;
  // Backward of the training-mode forward; grad_gamma / grad_beta may be undefined.
  virtual void batch_norm_backward(const Tensor& x, const Tensor& grad_y, const Tensor& gamma,
                                   const Tensor& save_mean, const Tensor& save_invstd,
                                   Tensor& grad_x, Tensor& grad_gamma, Tensor& grad_beta,
                                   Write write) = 0;

  // ---- batch norm with a fused epilogue: y = relu(bn(x) + residual), where residual (same shape
  // as x) may be undefined: y = relu(bn(x)). Equal bit for bit to batch_norm_forward_*, add and
  // relu_forward in a row; the fusion saves two passes over memory and, in autograd, the
  // intermediate tensors (its backward needs only x and y).
  virtual void batch_norm_add_relu_forward_train(const Tensor& x, const Tensor& gamma,
                                                 const Tensor& beta, const Tensor& residual,
                                                 Tensor& y, Tensor& save_mean, Tensor& save_invstd,
                                                 Tensor& running_mean, Tensor& running_var,
                                                 const BatchNormParams& params,
                                                 RunningStatsUpdate update) = 0;
  virtual void batch_norm_add_relu_forward_eval(const Tensor& x, const Tensor& gamma,
                                                const Tensor& beta, const Tensor& residual,
                                                const Tensor& running_mean,
                                                const Tensor& running_var, Tensor& y,
                                                const BatchNormParams& params) = 0;
  // Backward of the training forward, from its output y: with g = grad_y·[y > 0],
  // grad_residual (+)= g and grad_x, grad_gamma, grad_beta are batch_norm_backward of g. Any
  // gradient may be undefined; grad_residual must not alias grad_x.
  virtual void batch_norm_add_relu_backward(const Tensor& x, const Tensor& y, const Tensor& grad_y,
                                            const Tensor& gamma, const Tensor& save_mean,
                                            const Tensor& save_invstd, Tensor& grad_x,
                                            Tensor& grad_gamma, Tensor& grad_beta,
                                            Tensor& grad_residual, Write write) = 0;

  // ---- activations (any shape). Backward reads the forward output y.
  virtual void relu_forward(const Tensor& x, Tensor& y) = 0;
  virtual void relu_backward(const Tensor& y, const Tensor& grad_y, Tensor& grad_x,
                             Write write) = 0;
  virtual void sigmoid_forward(const Tensor& x, Tensor& y) = 0;
  virtual void sigmoid_backward(const Tensor& y, const Tensor& grad_y, Tensor& grad_x,
                                Write write) = 0;

  // ---- pooling. x: (N, C, H, W), y: (N, C, Ho, Wo)
  virtual void pool2d_forward(const Tensor& x, Tensor& y, PoolKind kind,
                              const Pool2dParams& params) = 0;
  virtual void pool2d_backward(const Tensor& x, const Tensor& y, const Tensor& grad_y,
                               Tensor& grad_x, PoolKind kind, const Pool2dParams& params,
                               Write write) = 0;
  // x: (N, C, H, W) -> y: (N, C)
  virtual void global_avg_pool_forward(const Tensor& x, Tensor& y) = 0;
  virtual void global_avg_pool_backward(const Tensor& grad_y, Tensor& grad_x, Write write) = 0;

  // ---- resize. x: (N, C, H, W) -> y: (N, C, Ho, Wo)
  virtual void resize_forward(const Tensor& x, Tensor& y, ResizeMode mode) = 0;
  virtual void resize_backward(const Tensor& grad_y, Tensor& grad_x, ResizeMode mode,
                               Write write) = 0;

  // ---- concat along axis 1. xs[i]: (N, C_i, ...) -> y: (N, sum C_i, ...)
  virtual void concat_channels(const std::vector<Tensor>& xs, Tensor& y) = 0;
  // grad_xs[i] (+)= the matching channel range of grad_y; undefined entries are skipped.
  virtual void concat_channels_backward(const Tensor& grad_y, std::vector<Tensor>& grad_xs,
                                        Write write) = 0;

  // ---- elementwise (same shapes) and buffer arithmetic (whole flat buffers)
  virtual void fill(Tensor& y, double value) = 0;
  virtual void copy(const Tensor& x, Tensor& y) = 0;
  // y = a + b  /  y (+)= a * b
  virtual void add(const Tensor& a, const Tensor& b, Tensor& y) = 0;
  virtual void mul(const Tensor& a, const Tensor& b, Tensor& y, Write write) = 0;
  // y = alpha * x + beta * y   (beta = 0 ignores what y held, NaN included)
  virtual void axpby(double alpha, const Tensor& x, double beta, Tensor& y) = 0;
  // sum of a[i] * b[i], accumulated in double, returned to the host
  virtual double dot(const Tensor& a, const Tensor& b) = 0;
  // sum of x[i], accumulated in double, returned to the host
  virtual double sum(const Tensor& x) = 0;
  // count of elements that are NaN or infinite
  virtual std::int64_t count_nonfinite(const Tensor& x) = 0;

  // ---- softmax over the last axis of x: (N, K)
  virtual void softmax_forward(const Tensor& x, Tensor& y) = 0;
  virtual void softmax_backward(const Tensor& y, const Tensor& grad_y, Tensor& grad_x,
                                Write write) = 0;
  virtual void log_softmax_forward(const Tensor& x, Tensor& y) = 0;
  virtual void log_softmax_backward(const Tensor& y, const Tensor& grad_y, Tensor& grad_x,
                                    Write write) = 0;

  // ---- losses, means over the batch; loss: shape {}; grad_loss: shape {} (the upstream scalar)
  // logits: (N, K), labels: (N) int32 in [0, K). Label smoothing s: target = (1-s)·onehot + s/K.
  virtual void cross_entropy_forward(const Tensor& logits, const Tensor& labels, Tensor& loss,
                                     double label_smoothing) = 0;
  virtual void cross_entropy_backward(const Tensor& logits, const Tensor& labels,
                                      const Tensor& grad_loss, Tensor& grad_logits,
                                      double label_smoothing, Write write) = 0;
  // T² · mean_n KL(softmax(teacher/T) ‖ softmax(student/T)); student, teacher: (N, K).
  virtual void kl_div_forward(const Tensor& student, const Tensor& teacher, Tensor& loss,
                              double temperature) = 0;
  // Either gradient may be undefined (not wanted).
  virtual void kl_div_backward(const Tensor& student, const Tensor& teacher,
                               const Tensor& grad_loss, Tensor& grad_student, Tensor& grad_teacher,
                               double temperature, Write write) = 0;
  // mean over all elements of (a - b)²
  virtual void mse_forward(const Tensor& a, const Tensor& b, Tensor& loss) = 0;
  virtual void mse_backward(const Tensor& a, const Tensor& b, const Tensor& grad_loss,
                            Tensor& grad_a, Tensor& grad_b, Write write) = 0;

  // ---- training augmentation (AugmentParams in params.h) of a batch gathered from a whole set.
  // pixels: (N, C, H, W) uint8; draws: (B, AugmentDrawColumn::count) int32;
  // table: (C, 256) float32; out: (B, C, H, W) float32. The CPU backend throws for a source index
  // outside [0, N); the CUDA backend cannot throw from a kernel and writes NaN for that sample
  // instead.
  virtual void augment_images(const Tensor& pixels, const Tensor& draws, const Tensor& table,
                              Tensor& out, const AugmentParams& params) = 0;

  // ---- optimizers over whole flat buffers (PyTorch semantics)
  virtual void sgd_update(Tensor& param, const Tensor& grad, Tensor& momentum_buffer,
                          const SgdParams& params) = 0;
  virtual void adam_update(Tensor& param, const Tensor& grad, Tensor& exp_avg, Tensor& exp_avg_sq,
                           const AdamParams& params) = 0;

  virtual void synchronize() = 0;

  // ---- recorded work (runtime.cuda_graph). Runs `work` once, as a call would, and returns a
  // graph whose replay() does the same device work again. `work` runs inside a CaptureRegion:
  // it may not synchronize, return device values to the host or copy between the host and the
  // device (core/capture.h says why), and it must give the same ops on the same shapes every
  // time. Memory `work` allocates and frees stays reserved for the graph until the graph is
  // destroyed, so a replay never writes memory handed to anything else.
  // CUDA: a stream capture into a CUDA graph, launched once here and at every replay.
  // CPU: nothing to launch or save; replay() calls `work` again (it must outlive the graph).
  virtual std::unique_ptr<DeviceGraph> capture_graph(const std::function<void()>& work) = 0;
};

namespace backend {

// Registers the runtimes and backends compiled into this build (the CUDA one when MD_CUDA and a
// GPU is present). Idempotent; called by main() and the test mains.
void init();
// The backend of a device; throws md::Error for a device this build or machine lacks.
Backend& get(Device device);
inline Backend& of(const Tensor& tensor) {
  return get(tensor.device());
}
// Number of CUDA devices usable by this process (0 without a CUDA build or a GPU).
int cuda_device_count();
// Number of CPU threads the CPU backend uses (OpenMP and BLAS); 0 = all cores.
void set_cpu_threads(int threads);
int cpu_threads();

// How convolutions and linear layers compute (runtime.precision), process-wide, from the next op
// on. Fp32: float32 arithmetic. Tf32: CUDA tensor cores may round float32 inputs to TF32 (about
// 3e-4 relative); the CPU computes Fp32. Bf16: the operands (x, weight, grad_y) are rounded to
// bfloat16, products are summed in float32, and a convolution's result is rounded to bfloat16
// (cuDNN's bf16 tensors); linear results and every other op stay float32, and so do the
// weights, their gradients' storage and the batch norm statistics (mixed precision with float32
// master weights). Both backends compute this function: the CUDA one on bf16 tensor cores in
// NHWC, the CPU one by rounding float32 values. Float64 tensors are never rounded.
enum class MathPrecision { Fp32, Tf32, Bf16 };
// Fastest lets the CUDA backend pick non-deterministic cuDNN algorithms; Deterministic does not
// (runtime.deterministic). The CPU backend is always deterministic.
enum class AlgorithmDeterminism { Fastest, Deterministic };
struct ComputeOptions {
  MathPrecision precision = MathPrecision::Fp32;
  AlgorithmDeterminism determinism = AlgorithmDeterminism::Fastest;
};
void set_compute_options(const ComputeOptions& options);
ComputeOptions compute_options();
const char* math_precision_name(MathPrecision precision);
// Sets the precision for the life of the scope, then restores the options found.
class PrecisionScope {
 public:
  explicit PrecisionScope(MathPrecision precision);
  ~PrecisionScope();
  PrecisionScope(const PrecisionScope&) = delete;
  PrecisionScope& operator=(const PrecisionScope&) = delete;

 private:
  ComputeOptions previous_;
};

}  // namespace backend
}  // namespace md
