#include "train/learner.h"

#include <cmath>

#include "autograd/functions.h"
#include "backend/backend.h"

namespace md::train {

using autograd::Variable;

Learner::Learner(const LearnerSpec& spec, Collective& collective)
    : spec_(spec), collective_(collective), backend_(backend::get(spec.device)) {
  const models::AuxHeads aux =
      spec.loss.method == MethodKind::Baseline ? models::AuxHeads::None : models::AuxHeads::Byot;
  student_ = std::make_unique<models::Student>(spec.model, aux);
  model_ = nn::ModelBuffers::allocate(student_->layout(), DType::Float32, spec.device);
  Rng init_rng(spec.seed, /*stream=*/1);
  model_.initialize(student_->layout(), init_rng);
  collective_.broadcast(model_.parameters);
  optimizer_ = std::make_unique<SgdOptimizer>(model_.parameters, spec.sgd);
  if (spec.loss.method != MethodKind::MetaDistiller) return;
  generator_ = std::make_unique<models::LabelGenerator>(models::LabelGeneratorSpec{
      .stage_channels = student_->network().stage_channels(),
      .width = spec.meta.generator_width,
      .num_classes = spec.model.num_classes,
      .resize = ResizeMode::Nearest});
  generator_buffers_ = nn::ModelBuffers::allocate(generator_->layout(), DType::Float32, spec.device);
  Rng generator_rng(spec.seed, /*stream=*/2);
  generator_buffers_.initialize(generator_->layout(), generator_rng);
  collective_.broadcast(generator_buffers_.parameters);
  if (spec.meta.optimizer == GeneratorOptimizer::Adam) {
    generator_adam_ = std::make_unique<AdamOptimizer>(
        generator_buffers_.parameters, AdamParams{.learning_rate = spec.meta.learning_rate});
  } else {
    generator_sgd_ = std::make_unique<SgdOptimizer>(
        generator_buffers_.parameters,
        SgdParams{.learning_rate = spec.meta.learning_rate, .momentum = 0.9});
  }
  virtual_parameters_ = Tensor::empty(model_.parameters.shape(), DType::Float32, spec.device);
  meta_gradients_ = Tensor::empty(model_.parameters.shape(), DType::Float32, spec.device);
}

StepReport Learner::step(const Tensor& images, const Tensor& labels, double learning_rate,
                         const MetaBatchSource& meta_batch) {
  StepReport report;
  backend_.fill(model_.gradients, 0.0);
  autograd::Tape tape;
  autograd::Tape generator_tape;
  models::StudentOutput output;
  std::vector<Variable> targets;
  std::vector<Variable> teachers;
  {
    autograd::TapeScope scope(tape);
    nn::ForwardContext context{&student_->layout(), model_.parameters, model_.gradients,
                               model_.buffers, nn::Mode::Train, RunningStatsUpdate::Update};
    output = student_->forward(context, Variable(images));
    if (spec_.loss.method == MethodKind::Byot) {
      for (std::size_t s = 0; s + 1 < output.logits.size(); ++s) {
        teachers.push_back(output.logits.back().detach());
      }
    } else if (generator_) {
      std::vector<Variable> stage_features;
      for (const Variable& feature : output.stage_features) stage_features.push_back(feature.detach());
      autograd::TapeScope generator_scope(generator_tape);
      nn::ForwardContext generator_context{&generator_->layout(), generator_buffers_.parameters,
                                           generator_buffers_.gradients, generator_buffers_.buffers,
                                           nn::Mode::Train, RunningStatsUpdate::Skip};
      targets = generator_->forward(generator_context, stage_features);
      for (const Variable& target : targets) teachers.push_back(target.detach());
    }
    report.terms = student_loss(spec_.loss, output, labels, teachers);
  }
  tape.backward(report.terms.total);
  report.loss = report.terms.total.value();
  collective_.average(model_.gradients);
  if (generator_ && steps_ % spec_.meta.every == 0) {
    meta_step(images, targets, generator_tape, learning_rate, meta_batch, report);
  }
  optimizer_->step(model_.parameters, model_.gradients, learning_rate);
  ++steps_;
  return report;
}

// The meta step of DESIGN.md §1: θ' = θ − η·g; v = ∇θ' L_meta(θ'); ε = ε₀/‖v‖; the student's
// logits at θ ± ε·v (no running-stat updates); the upstream gradient of G's targets
// −η·[∂L/∂u(z(θ+)) − ∂L/∂u(z(θ−))]/(2ε); one backward through G; one generator step.
void Learner::meta_step(const Tensor& images, const std::vector<Variable>& targets,
                        autograd::Tape& generator_tape, double learning_rate,
                        const MetaBatchSource& meta_batch, StepReport& report) {
  report.meta_step = true;
  const auto [meta_images, meta_labels] = meta_batch();
  const double eta = learning_rate;

  // θ' = θ − η·g, g the (averaged) gradient of this step.
  backend_.copy(model_.parameters, virtual_parameters_);
  backend_.axpby(-eta, model_.gradients, 1.0, virtual_parameters_);
  backend_.fill(meta_gradients_, 0.0);
  {
    autograd::Tape tape;
    autograd::TapeScope scope(tape);
    nn::ForwardContext context{&student_->layout(), virtual_parameters_, meta_gradients_,
                               model_.buffers, nn::Mode::Train, RunningStatsUpdate::Skip};
    models::StudentOutput output = student_->forward(context, Variable(meta_images));
    std::vector<Variable> losses;
    for (const Variable& logits : output.logits) {
      losses.push_back(autograd::cross_entropy(logits, meta_labels));
    }
    Variable total = autograd::weighted_sum(losses, std::vector<double>(losses.size(), 1.0));
    tape.backward(total);
    report.meta_loss = total.value().item();
  }
  collective_.average(meta_gradients_);
  report.v_norm = std::sqrt(backend_.dot(meta_gradients_, meta_gradients_));
  if (!(report.v_norm > 0.0) || !std::isfinite(report.v_norm)) return;
  const double epsilon = spec_.meta.epsilon / report.v_norm;
  report.epsilon = epsilon;

  // α·∂KL/∂u_s at the student's logits for θ + sign·ε·v, with G's inputs kept at θ.
  const Tensor alpha = Tensor::full({}, spec_.loss.alpha, DType::Float32, spec_.device);
  auto target_gradients = [&](double sign) {
    backend_.copy(model_.parameters, virtual_parameters_);
    backend_.axpby(sign * epsilon, meta_gradients_, 1.0, virtual_parameters_);
    autograd::NoGrad no_grad;
    nn::ForwardContext context{&student_->layout(), virtual_parameters_, Tensor(), model_.buffers,
                               nn::Mode::Train, RunningStatsUpdate::Skip};
    models::StudentOutput output = student_->forward(context, Variable(images));
    std::vector<Tensor> gradients;
    for (std::size_t s = 0; s < targets.size(); ++s) {
      Tensor grad_target = Tensor::empty(targets[s].shape(), DType::Float32, spec_.device);
      Tensor no_student_gradient;
      backend_.kl_div_backward(output.logits[s].value(), targets[s].value(), alpha,
                               no_student_gradient, grad_target, spec_.loss.temperature,
                               Write::Overwrite);
      gradients.push_back(grad_target);
    }
    return gradients;
  };
  std::vector<Tensor> plus = target_gradients(+1.0);
  const std::vector<Tensor> minus = target_gradients(-1.0);
  std::vector<std::pair<Variable, Tensor>> roots;
  for (std::size_t s = 0; s < targets.size(); ++s) {
    // plus ← −η·(plus − minus)/(2ε)
    backend_.axpby(eta / (2.0 * epsilon), minus[s], -eta / (2.0 * epsilon), plus[s]);
    roots.emplace_back(targets[s], plus[s]);
  }
  backend_.fill(generator_buffers_.gradients, 0.0);
  generator_tape.backward(roots);
  collective_.average(generator_buffers_.gradients);
  report.generator_grad_norm =
      std::sqrt(backend_.dot(generator_buffers_.gradients, generator_buffers_.gradients));
  if (generator_adam_) {
    generator_adam_->step(generator_buffers_.parameters, generator_buffers_.gradients);
  } else {
    generator_sgd_->step(generator_buffers_.parameters, generator_buffers_.gradients,
                         spec_.meta.learning_rate);
  }
}

models::StudentOutput Learner::evaluate(const Tensor& images) const {
  autograd::NoGrad no_grad;
  nn::ForwardContext context{&student_->layout(), model_.parameters, Tensor(), model_.buffers,
                             nn::Mode::Eval, RunningStatsUpdate::Skip};
  return student_->forward(context, Variable(images));
}

}  // namespace md::train
