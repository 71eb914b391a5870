// Optimizers over one flat parameter buffer and its flat gradient buffer (nn/layout.h): one
// fused backend call per step, whatever the number of parameter tensors. Their state is flat
// buffers too, so checkpoints, the allreduce and replicas handle them as whole tensors.
#pragma once

#include <cstdint>
#include <string>

#include "backend/params.h"
#include "core/tensor.h"

namespace md::train {

class SgdOptimizer {
 public:
  SgdOptimizer(const Tensor& parameters, const SgdParams& params);
  // One step with learning rate `learning_rate` (the schedule's), in place on `parameters`.
  void step(Tensor& parameters, const Tensor& gradients, double learning_rate);
  Tensor& momentum_buffer() { return momentum_buffer_; }
  const SgdParams& params() const { return params_; }

 private:
  SgdParams params_;
  Tensor momentum_buffer_;
};

class AdamOptimizer {
 public:
  AdamOptimizer(const Tensor& parameters, const AdamParams& params);
  void step(Tensor& parameters, const Tensor& gradients);
  Tensor& exp_avg() { return exp_avg_; }
  Tensor& exp_avg_sq() { return exp_avg_sq_; }
  std::int64_t steps() const { return steps_; }
  void set_steps(std::int64_t steps) { steps_ = steps; }

 private:
  AdamParams params_;
  Tensor exp_avg_;
  Tensor exp_avg_sq_;
  std::int64_t steps_ = 0;
};

}  // namespace md::train
