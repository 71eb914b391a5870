// The CPU backend: the reference implementation of the op interface (float32 and float64).
// Convolutions are im2col + OpenBLAS GEMM; loops are OpenMP-parallel over the batch or the
// elements. Each op family is one file in this folder, forward and backward together.
#pragma once

#include "backend/backend.h"

namespace md::cpu {

class CpuBackend final : public Backend {
 public:
  Device device() const override { return Device::cpu(); }

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

  void synchronize() override { check_not_capturing("synchronizing with the device"); }
  std::unique_ptr<DeviceGraph> capture_graph(const std::function<void()>& work) override;

 private:
  // The float32 / float64 arithmetic of the convolution and linear ops; the public ones add the
  // operand and result rounding of MathPrecision::Bf16 around them (bf16_math.cpp).
  void conv2d_forward_exact(const Tensor& x, const Tensor& weight, Tensor& y,
                            const Conv2dParams& params);
  void conv2d_backward_data_exact(const Tensor& grad_y, const Tensor& weight, Tensor& grad_x,
                                  const Conv2dParams& params, Write write);
  void conv2d_backward_filter_exact(const Tensor& x, const Tensor& grad_y, Tensor& grad_weight,
                                    const Conv2dParams& params, Write write);
  void linear_forward_exact(const Tensor& x, const Tensor& weight, const Tensor& bias, Tensor& y);
  void linear_backward_exact(const Tensor& x, const Tensor& weight, const Tensor& grad_y,
                             Tensor& grad_x, Tensor& grad_weight, Tensor& grad_bias, Write write);
};

CpuBackend& instance();

}  // namespace md::cpu
