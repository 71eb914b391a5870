#include "train/optimizer.h"

#include "backend/backend.h"

namespace md::train {

SgdOptimizer::SgdOptimizer(const Tensor& parameters, const SgdParams& params)
    : params_(params),
      momentum_buffer_(Tensor::zeros(parameters.shape(), parameters.dtype(), parameters.device())) {
}

void SgdOptimizer::step(Tensor& parameters, const Tensor& gradients, double learning_rate) {
  SgdParams params = params_;
  params.learning_rate = learning_rate;
  backend::of(parameters).sgd_update(parameters, gradients, momentum_buffer_, params);
}

AdamOptimizer::AdamOptimizer(const Tensor& parameters, const AdamParams& params)
    : params_(params),
      exp_avg_(Tensor::zeros(parameters.shape(), parameters.dtype(), parameters.device())),
      exp_avg_sq_(Tensor::zeros(parameters.shape(), parameters.dtype(), parameters.device())) {}

void AdamOptimizer::step(Tensor& parameters, const Tensor& gradients) {
  AdamParams params = params_;
  params.step = ++steps_;
  backend::of(parameters).adam_update(parameters, gradients, exp_avg_, exp_avg_sq_, params);
}

}  // namespace md::train
