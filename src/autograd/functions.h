// Differentiable functions over Variables: each calls the backend's forward and records the
// matching backward on the current tape (see variable.h). One file per op family in this
// folder, forward and backward side by side. Shapes as in backend/backend.h.
#pragma once

#include <vector>

#include "autograd/variable.h"
#include "backend/params.h"

namespace md::autograd {

// x: (N, C, H, W), weight: (O, C/groups, K, K), bias: (O) or undefined -> (N, O, Ho, Wo)
Variable conv2d(const Variable& x, const Variable& weight, const Variable& bias,
                const Conv2dParams& params);
// x: (N, In), weight: (Out, In), bias: (Out) or undefined -> (N, Out)
Variable linear(const Variable& x, const Variable& weight, const Variable& bias);

enum class BatchNormMode { Train, Eval };
// x: (N, C, H, W) or (N, C); gamma, beta: (C); running_mean/var: (C) buffers, updated in Train
// mode only when update == Update. Eval mode uses the running statistics.
Variable batch_norm(const Variable& x, const Variable& gamma, const Variable& beta,
                    Tensor& running_mean, Tensor& running_var, BatchNormMode mode,
                    RunningStatsUpdate update, const BatchNormParams& params);

// relu(batch_norm(x) + residual), or relu(batch_norm(x)) when residual is undefined, as one
// op: equal to the three in a row, bit for bit, but the tape keeps only x and the result (the
// unfused chain also keeps the normalized and the summed tensors). Eval mode with gradients
// wanted runs the unfused chain.
Variable batch_norm_add_relu(const Variable& x, const Variable& gamma, const Variable& beta,
                             const Variable& residual, Tensor& running_mean, Tensor& running_var,
                             BatchNormMode mode, RunningStatsUpdate update,
                             const BatchNormParams& params);

Variable relu(const Variable& x);
Variable sigmoid(const Variable& x);

// x: (N, C, H, W)
Variable max_pool2d(const Variable& x, const Pool2dParams& params);
Variable avg_pool2d(const Variable& x, const Pool2dParams& params);
Variable global_avg_pool(const Variable& x);  // -> (N, C)
Variable resize(const Variable& x, std::int64_t out_height, std::int64_t out_width,
                ResizeMode mode);
Variable concat_channels(const std::vector<Variable>& xs);

Variable add(const Variable& a, const Variable& b);  // same shapes
Variable mul(const Variable& a, const Variable& b);  // same shapes
Variable scale(const Variable& x, double factor);
// sum_i weights[i] * terms[i], terms of equal shape (e.g. scalar losses)
Variable weighted_sum(const std::vector<Variable>& terms, const std::vector<double>& weights);
Variable reshape(const Variable& x, const Shape& shape);  // a view: same storage
Variable flatten(const Variable& x);                      // (N, ...) -> (N, prod(...))

Variable softmax(const Variable& x);      // over the last axis of (N, K)
Variable log_softmax(const Variable& x);  // over the last axis of (N, K)

// Means over the batch, scalar results (shape {}).
// logits: (N, K); labels: (N) int32 tensor on the same device.
Variable cross_entropy(const Variable& logits, const Tensor& labels, double label_smoothing = 0.0);
// T² · mean_n KL(softmax(teacher/T) ‖ softmax(student/T)); gradients flow to both arguments
// (detach the teacher for a fixed target).
Variable kl_div(const Variable& student, const Variable& teacher, double temperature);
Variable mse(const Variable& a, const Variable& b);  // mean of (a - b)²

}  // namespace md::autograd
