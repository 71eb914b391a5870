// Learner: the state that training changes (student parameters, BN statistics, SGD momentum,
// and for MetaDistiller the label generator and its optimizer) and one optimizer step of each
// method. It sees tensors on its device, never files or data sets: the trial runner feeds it
// batches and saves its buffers; `metadistill bench` feeds it random batches.
#pragma once

#include <functional>
#include <memory>
#include <cmath>
#include <utility>

#include "backend/backend.h"
#include "models/label_generator.h"
#include "models/student.h"
#include "train/collective.h"
#include "train/losses.h"
#include "train/optimizer.h"

namespace md::train {

enum class GeneratorOptimizer { Sgd, Adam };

struct MetaSpec {
  int every = 1;            // a generator step every `every` student steps
  double epsilon = 0.01;    // ε₀: ε = ε₀/‖v‖
  GeneratorOptimizer optimizer = GeneratorOptimizer::Adam;
  double learning_rate = 1e-3;
  int generator_width = 128;
};

struct LearnerSpec {
  models::ModelSpec model;
  LossSpec loss;
  SgdParams sgd;
  MetaSpec meta;
  std::uint64_t seed = 0;
  Device device;
};

// Values of the last step, read from the device only when asked (log rows).
struct StepReport {
  Tensor loss;  // device scalar: the total student loss
  LossTerms terms;
  bool meta_step = false;
  double meta_loss = NAN, v_norm = NAN, epsilon = NAN, generator_grad_norm = NAN;
};

class Learner {
 public:
  using MetaBatchSource = std::function<std::pair<Tensor, Tensor>()>;  // (images, labels) on the device

  Learner(const LearnerSpec& spec, Collective& collective);

  // One optimizer step on images: (N, C, H, W), labels: (N) int32, both on the device.
  // `meta_batch` is called when a meta step is due (MetaDistiller only).
  StepReport step(const Tensor& images, const Tensor& labels, double learning_rate,
                  const MetaBatchSource& meta_batch);
  // Inference with the running statistics; no gradients.
  models::StudentOutput evaluate(const Tensor& images) const;

  const LearnerSpec& spec() const { return spec_; }
  const models::Student& student() const { return *student_; }
  nn::ModelBuffers& model() { return model_; }
  SgdOptimizer& optimizer() { return *optimizer_; }
  bool has_generator() const { return generator_ != nullptr; }
  const models::LabelGenerator& generator() const { return *generator_; }
  nn::ModelBuffers& generator_buffers() { return generator_buffers_; }
  AdamOptimizer* generator_adam() { return generator_adam_.get(); }
  SgdOptimizer* generator_sgd() { return generator_sgd_.get(); }
  std::int64_t steps() const { return steps_; }
  void set_steps(std::int64_t steps) { steps_ = steps; }

 private:
  void meta_step(const Tensor& images, const std::vector<autograd::Variable>& targets,
                 autograd::Tape& generator_tape, double learning_rate, const MetaBatchSource& meta_batch,
                 StepReport& report);

  LearnerSpec spec_;
  Collective& collective_;
  Backend& backend_;
  std::unique_ptr<models::Student> student_;
  nn::ModelBuffers model_;
  std::unique_ptr<SgdOptimizer> optimizer_;
  std::unique_ptr<models::LabelGenerator> generator_;
  nn::ModelBuffers generator_buffers_;
  std::unique_ptr<AdamOptimizer> generator_adam_;
  std::unique_ptr<SgdOptimizer> generator_sgd_;
  Tensor virtual_parameters_;  // θ', then θ+ and θ−
  Tensor meta_gradients_;      // v = ∇θ' L_meta
  std::int64_t steps_ = 0;
};

}  // namespace md::train
