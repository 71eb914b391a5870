#include "train/learner.h"

#include <array>
#include <chrono>
#include <cmath>
#include <ctime>

#include "autograd/functions.h"
#include "backend/backend.h"
#include "core/error.h"
#include "core/logging.h"
#include "io/config_keys.h"

namespace md::train {

using autograd::Variable;

std::vector<std::pair<const char*, double>> PassTimes::passes() const {
  return {{"student_forward", student_forward},
          {"generator_forward", generator_forward},
          {"student_backward", student_backward},
          {"virtual_step", virtual_step},
          {"meta_forward", meta_forward},
          {"meta_backward", meta_backward},
          {"perturbed_forwards", perturbed_forwards},
          {"generator_backward", generator_backward},
          {"optimizer", optimizer},
          {"graph_replay", graph_replay}};
}

PassClock::PassClock(Backend& backend, PassTiming timing, PassTimes* times)
    : backend_(&backend), timing_(times != nullptr ? timing : PassTiming::Off), times_(times) {
  if (timing_ != PassTiming::Off) last_ = now();
}

double PassClock::now() const {
  if (timing_ == PassTiming::ProcessCpuClock) {
    timespec cpu{};
    MD_CHECK(clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &cpu) == 0,
             "clock_gettime(CLOCK_PROCESS_CPUTIME_ID) failed");
    return static_cast<double>(cpu.tv_sec) + 1e-9 * static_cast<double>(cpu.tv_nsec);
  }
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

void PassClock::lap(double PassTimes::*pass) {
  if (timing_ == PassTiming::Off) return;
  backend_->synchronize();
  const double time = now();
  times_->*pass += time - last_;
  times_->total += time - last_;
  last_ = time;
}

namespace {

void lap(PassClock* clock, double PassTimes::*pass) {
  if (clock != nullptr) clock->lap(pass);
}

// The CE, KD and hint term lists of a LossTerms, in the order a captured step's outputs hold
// them (after the total).
template <typename Terms>
auto term_lists(Terms& terms) {
  return std::array{&terms.ce, &terms.kd, &terms.hint};
}

}  // namespace

double meta_loss_at_virtual_step(Backend& backend, Collective& collective,
                                 const StudentLogits& student, const MetaGradientInputs& inputs,
                                 MetaScratch& scratch) {
  // θ' = θ − η·g
  backend.copy(inputs.parameters, scratch.virtual_parameters);
  backend.axpby(-inputs.learning_rate, inputs.gradients, 1.0, scratch.virtual_parameters);
  backend.fill(scratch.meta_gradients, 0.0);
  lap(inputs.clock, &PassTimes::virtual_step);
  double meta_loss = NAN;
  {
    autograd::Tape tape;
    autograd::TapeScope scope(tape);
    const std::vector<Variable> logits = student(scratch.virtual_parameters, scratch.meta_gradients,
                                                 inputs.meta_images, models::StudentHeads::All);
    std::vector<Variable> losses;
    for (const Variable& head_logits : logits) {
      losses.push_back(autograd::cross_entropy(head_logits, inputs.meta_labels));
    }
    Variable total = autograd::weighted_sum(losses, std::vector<double>(losses.size(), 1.0));
    lap(inputs.clock, &PassTimes::meta_forward);
    tape.backward(total);
    meta_loss = total.value().item();
  }
  collective.average(scratch.meta_gradients);
  lap(inputs.clock, &PassTimes::meta_backward);
  return meta_loss;
}

MetaGradientResult finite_difference_meta_gradient(Backend& backend, Collective& collective,
                                                   const StudentLogits& student,
                                                   const MetaGradientInputs& inputs,
                                                   MetaScratch& scratch) {
  MD_CHECK(inputs.generator_tape != nullptr, "finite_difference_meta_gradient: no generator tape");
  MetaGradientResult result;
  result.meta_loss = meta_loss_at_virtual_step(backend, collective, student, inputs, scratch);
  result.v_norm = std::sqrt(backend.dot(scratch.meta_gradients, scratch.meta_gradients));
  lap(inputs.clock, &PassTimes::meta_backward);
  if (!(result.v_norm > 0.0) || !std::isfinite(result.v_norm)) return result;
  const double epsilon = inputs.epsilon / result.v_norm;
  result.epsilon = epsilon;

  // α·∂KL/∂u_s at the student's logits, with G's inputs kept at θ.
  const DType dtype = inputs.parameters.dtype();
  const Device device = inputs.parameters.device();
  const Tensor alpha = Tensor::full({}, inputs.alpha, dtype, device);
  // logits: the shallow heads' (N, K) first, one per target; a final head after them is unused.
  auto target_gradients = [&](const std::vector<Variable>& logits, std::size_t expected_heads) {
    MD_CHECK(logits.size() == expected_heads, "the student gives ", logits.size(),
             " head logits where ", expected_heads, " are expected for ", inputs.targets.size(),
             " generator targets");
    std::vector<Tensor> gradients;
    for (std::size_t s = 0; s < inputs.targets.size(); ++s) {
      Tensor grad_target = Tensor::empty(inputs.targets[s].shape(), dtype, device);
      Tensor no_student_gradient;
      backend.kl_div_backward(logits[s].value(), inputs.targets[s].value(), alpha,
                              no_student_gradient, grad_target, inputs.temperature,
                              Write::Overwrite);
      gradients.push_back(grad_target);
    }
    return gradients;
  };
  // The shallow heads' logits at θ + step·v, without a tape or running-stat updates, always in
  // float32 arithmetic: ε·v moves a weight by less than bfloat16 (2^-8) or TF32 (2^-11) resolve,
  // so a reduced runtime.precision would difference rounding noise.
  const bool reduced_precision =
      backend::compute_options().precision != backend::MathPrecision::Fp32;
  auto perturbed_logits = [&](double step) {
    backend.copy(inputs.parameters, scratch.virtual_parameters);
    backend.axpby(step, scratch.meta_gradients, 1.0, scratch.virtual_parameters);
    autograd::NoGrad no_grad;
    backend::PrecisionScope exact(backend::MathPrecision::Fp32);
    return student(scratch.virtual_parameters, Tensor(), inputs.images,
                   models::StudentHeads::Auxiliary);
  };
  const std::size_t shallow_heads = inputs.targets.size();
  std::vector<Tensor> plus = target_gradients(perturbed_logits(+epsilon), shallow_heads);
  std::vector<Tensor> base;
  double span = 0.0;  // the distance between the two points differenced
  if (inputs.difference == FiniteDifference::Central) {
    base = target_gradients(perturbed_logits(-epsilon), shallow_heads);
    span = 2.0 * epsilon;
  } else if (reduced_precision) {
    // The step's logits at θ came from reduced-precision arithmetic: recompute them in float32.
    base = target_gradients(perturbed_logits(0.0), shallow_heads);
    span = epsilon;
  } else {
    MD_CHECK(!inputs.logits_at_parameters.empty(),
             "finite_difference_meta_gradient: a forward difference needs the logits at θ");
    base = target_gradients(inputs.logits_at_parameters, shallow_heads + 1);
    span = epsilon;
  }
  lap(inputs.clock, &PassTimes::perturbed_forwards);
  const double eta = inputs.learning_rate;
  std::vector<std::pair<Variable, Tensor>> roots;
  for (std::size_t s = 0; s < inputs.targets.size(); ++s) {
    // plus ← −η·(plus − base)/span
    backend.axpby(eta / span, base[s], -eta / span, plus[s]);
    if (inputs.label_weight != 0.0) {
      const Tensor weight = Tensor::full({}, inputs.label_weight, dtype, device);
      backend.cross_entropy_backward(inputs.targets[s].value(), inputs.labels, weight, plus[s], 0.0,
                                     Write::Accumulate);
    }
    roots.emplace_back(inputs.targets[s], plus[s]);
  }
  inputs.generator_tape->backward(roots);
  result.computed = true;
  return result;
}

Learner::Learner(const LearnerSpec& spec, Collective& collective)
    : spec_(spec), collective_(collective), backend_(backend::get(spec.device)) {
  const models::AuxHeads aux =
      spec.loss.method == MethodKind::Baseline ? models::AuxHeads::None : models::AuxHeads::Byot;
  // An InputError here is an architecture models/ does not know (the class and channel counts
  // are checked against the data before): name the config key.
  try {
    student_ = std::make_unique<models::Student>(spec.model, aux);
  } catch (const InputError& error) {
    throw InputError(detail::concat(io::key_path::model_arch, ": ", error.what()));
  }
  model_ = nn::ModelBuffers::allocate(student_->layout(), spec.dtype, spec.device);
  Rng init_rng(spec.seed, /*stream=*/1);
  model_.initialize(student_->layout(), init_rng);
  collective_.broadcast(model_.parameters);
  optimizer_ = std::make_unique<SgdOptimizer>(model_.parameters, spec.sgd);
  if (spec.loss.method != MethodKind::MetaDistiller) return;
  generator_ = std::make_unique<models::LabelGenerator>(
      models::LabelGeneratorSpec{.stage_channels = student_->network().stage_channels(),
                                 .width = spec.meta.generator_width,
                                 .num_classes = spec.model.num_classes,
                                 .resize = ResizeMode::Nearest,
                                 .resolution = spec.meta.generator_resolution});
  generator_buffers_ = nn::ModelBuffers::allocate(generator_->layout(), spec.dtype, spec.device);
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
  scratch_.virtual_parameters = Tensor::empty(model_.parameters.shape(), spec.dtype, spec.device);
  scratch_.meta_gradients = Tensor::empty(model_.parameters.shape(), spec.dtype, spec.device);
  student_logits_ = [this](const Tensor& parameters, const Tensor& gradients, const Tensor& images,
                           models::StudentHeads heads) {
    nn::ForwardContext context{&student_->layout(), parameters,      gradients,
                               model_.buffers,      nn::Mode::Train, RunningStatsUpdate::Skip};
    return student_->forward(context, Variable(images), heads).logits;
  };
}

void Learner::forward_backward(const Tensor& images, const Tensor& labels,
                               RunningStatsUpdate stats_update, StudentPass& pass,
                               PassClock& clock) {
  forward_backward_local(images, labels, stats_update, pass, clock);
  collective_.average(model_.gradients);
  clock.lap(&PassTimes::student_backward);
}

void Learner::forward_backward_local(const Tensor& images, const Tensor& labels,
                                     RunningStatsUpdate stats_update, StudentPass& pass,
                                     PassClock& clock) {
  backend_.fill(model_.gradients, 0.0);
  std::vector<Variable> teachers;
  {
    autograd::TapeScope scope(pass.tape);
    nn::ForwardContext context{&student_->layout(), model_.parameters, model_.gradients,
                               model_.buffers,      nn::Mode::Train,   stats_update};
    pass.output = student_->forward(context, Variable(images));
    clock.lap(&PassTimes::student_forward);
    if (spec_.loss.method == MethodKind::Byot) {
      for (std::size_t s = 0; s + 1 < pass.output.logits.size(); ++s) {
        teachers.push_back(pass.output.logits.back().detach());
      }
    } else if (generator_) {
      std::vector<Variable> stage_features;
      for (const Variable& feature : pass.output.stage_features)
        stage_features.push_back(feature.detach());
      autograd::TapeScope generator_scope(pass.generator_tape);
      nn::ForwardContext generator_context{&generator_->layout(),
                                           generator_buffers_.parameters,
                                           generator_buffers_.gradients,
                                           generator_buffers_.buffers,
                                           nn::Mode::Train,
                                           RunningStatsUpdate::Skip};
      pass.targets = generator_->forward(generator_context, stage_features);
      for (const Variable& target : pass.targets) teachers.push_back(target.detach());
      clock.lap(&PassTimes::generator_forward);
    }
    pass.terms = student_loss(spec_.loss, pass.output, labels, teachers);
    clock.lap(&PassTimes::student_forward);
  }
  pass.tape.backward(pass.terms.total);
}

StepReport Learner::step(const Tensor& images, const Tensor& labels, double learning_rate,
                         const MetaBatchSource& meta_batch) {
  StepReport report;
  PassClock clock(backend_, pass_timing_, &report.times);
  if (uses_capture(images, labels)) {
    captured_step(images, labels, report, clock);
  } else {
    const bool meta_due = generator_ && !spec_.meta.frozen && steps_ % spec_.meta.every == 0;
    const bool generator_first = meta_due && spec_.meta.update_order == UpdateOrder::GeneratorFirst;
    if (generator_first) {
      // The look-ahead at φ_t, then G's update; the student's step below sees φ_{t+1}.
      StudentPass look_ahead;
      forward_backward(images, labels, RunningStatsUpdate::Skip, look_ahead, clock);
      meta_step(look_ahead, images, labels, learning_rate, meta_batch, report, clock);
    }
    StudentPass pass;
    forward_backward(images, labels, RunningStatsUpdate::Update, pass, clock);
    report.terms = pass.terms;
    report.loss = pass.terms.total.value();
    for (const Variable& target : pass.targets) report.targets.push_back(target.value());
    if (generator_) report.deepest_logits = pass.output.logits.back().value();
    if (meta_due && !generator_first) {
      meta_step(pass, images, labels, learning_rate, meta_batch, report, clock);
    }
    if (spec_.capture == StepCapture::Graph && !capture_warm()) {
      // Only the layout and weights: the values would hold on to the step's tape.
      const auto from = term_lists(pass.terms);
      const auto to = term_lists(warm_terms_);
      for (std::size_t list = 0; list < from.size(); ++list) {
        for (const LossTerms::Weighted& term : *from[list]) {
          to[list]->push_back({Variable(), term.weight});
        }
      }
    }
  }
  optimizer_->step(model_.parameters, model_.gradients, learning_rate);
  clock.lap(&PassTimes::optimizer);
  ++steps_;
  return report;
}

bool Learner::uses_capture(const Tensor& images, const Tensor& labels) const {
  if (spec_.capture != StepCapture::Graph || generator_ || !capture_warm()) return false;
  return !captured_ ||
         (images.same_shape(captured_->images) && labels.same_shape(captured_->labels) &&
          images.dtype() == captured_->images.dtype() &&
          labels.dtype() == captured_->labels.dtype());
}

void Learner::captured_step(const Tensor& images, const Tensor& labels, StepReport& report,
                            PassClock& clock) {
  const bool moved = captured_ && (captured_->parameters != model_.parameters.raw_data() ||
                                   captured_->gradients != model_.gradients.raw_data() ||
                                   captured_->buffers != model_.buffers.raw_data());
  if (moved) captured_.reset();  // the graph would write where the model no longer is
  if (captured_) {
    backend_.copy(images, captured_->images);
    backend_.copy(labels, captured_->labels);
    captured_->graph->replay();
  } else {
    auto recorded = std::make_unique<CapturedStep>();
    recorded->images = Tensor::empty(images.shape(), images.dtype(), images.device());
    recorded->labels = Tensor::empty(labels.shape(), labels.dtype(), labels.device());
    std::size_t terms = 1;  // the total
    for (const auto* list : term_lists(warm_terms_)) terms += list->size();
    recorded->outputs =
        Tensor::empty({static_cast<std::int64_t>(terms)}, spec_.dtype, spec_.device);
    recorded->parameters = model_.parameters.raw_data();
    recorded->gradients = model_.gradients.raw_data();
    recorded->buffers = model_.buffers.raw_data();
    backend_.copy(images, recorded->images);
    backend_.copy(labels, recorded->labels);
    captured_ = std::move(recorded);
    try {
      captured_->graph = backend_.capture_graph([this] { captured_forward_backward(); });
    } catch (const std::exception& error) {
      captured_.reset();
      throw Error(detail::concat(io::key_path::runtime_cuda_graph,
                                 ": recording the training step on ", spec_.device.str(),
                                 " failed (set ", io::key_path::runtime_cuda_graph,
                                 ": false to run it op by op): ", error.what()));
    }
    log_info(io::key_path::runtime_cuda_graph,
             ": recorded the forward, loss and backward of a batch of ", shape_str(images.shape()),
             " on ", spec_.device.str(), "; steps with batches of that shape replay it");
  }
  collective_.average(model_.gradients);
  clock.lap(&PassTimes::graph_replay);
  const Tensor values = captured_->outputs.clone();  // the next replay overwrites outputs
  report.terms = captured_terms(values);
  report.loss = report.terms.total.value();
}

void Learner::captured_forward_backward() {
  StudentPass pass;
  PassClock untimed(backend_, PassTiming::Off, nullptr);
  forward_backward_local(captured_->images, captured_->labels, RunningStatsUpdate::Update, pass,
                         untimed);
  std::int64_t slot = 0;
  auto put = [&](const Variable& value) {
    MD_CHECK(slot < captured_->outputs.numel(), "captured step: more loss terms than at warm-up");
    Tensor out = captured_->outputs.slice_flat(slot++, {});
    backend_.copy(value.value(), out);
  };
  put(pass.terms.total);
  for (const auto* list : term_lists(pass.terms)) {
    for (const LossTerms::Weighted& term : *list) put(term.term);
  }
  MD_CHECK(slot == captured_->outputs.numel(), "captured step: fewer loss terms than at warm-up");
}

LossTerms Learner::captured_terms(const Tensor& values) const {
  std::int64_t slot = 0;
  auto next = [&] { return Variable(values.slice_flat(slot++, {})); };
  LossTerms terms;
  terms.total = next();
  const auto warm = term_lists(warm_terms_);
  const auto out = term_lists(terms);
  for (std::size_t list = 0; list < warm.size(); ++list) {
    for (const LossTerms::Weighted& term : *warm[list]) out[list]->push_back({next(), term.weight});
  }
  return terms;
}

MetaGradientInputs Learner::meta_inputs(StudentPass& pass, const Tensor& images,
                                        const Tensor& labels, double learning_rate,
                                        const Tensor& meta_images,
                                        const Tensor& meta_labels) const {
  return MetaGradientInputs{.parameters = model_.parameters,
                            .gradients = model_.gradients,
                            .learning_rate = learning_rate,
                            .images = images,
                            .meta_images = meta_images,
                            .meta_labels = meta_labels,
                            .targets = pass.targets,
                            .generator_tape = &pass.generator_tape,
                            .alpha = spec_.loss.kd_weight(),
                            .temperature = spec_.loss.temperature,
                            .epsilon = spec_.meta.epsilon,
                            .difference = spec_.meta.difference,
                            .logits_at_parameters = pass.output.logits,
                            .labels = labels,
                            .label_weight = spec_.meta.label_weight};
}

MetaGradientResult Learner::generator_gradient(const MetaGradientInputs& inputs) {
  backend_.fill(generator_buffers_.gradients, 0.0);
  MetaGradientResult result =
      finite_difference_meta_gradient(backend_, collective_, student_logits_, inputs, scratch_);
  if (result.computed) collective_.average(generator_buffers_.gradients);
  lap(inputs.clock, &PassTimes::generator_backward);
  return result;
}

// The meta step of DESIGN.md §1 (see finite_difference_meta_gradient), then one generator step.
void Learner::meta_step(StudentPass& pass, const Tensor& images, const Tensor& labels,
                        double learning_rate, const MetaBatchSource& meta_batch, StepReport& report,
                        PassClock& clock) {
  report.meta_step = true;
  const auto [meta_images, meta_labels] = meta_batch();
  MetaGradientInputs inputs =
      meta_inputs(pass, images, labels, learning_rate, meta_images, meta_labels);
  inputs.clock = &clock;
  const MetaGradientResult result = generator_gradient(inputs);
  report.meta_loss = result.meta_loss;
  report.v_norm = result.v_norm;
  report.epsilon = result.epsilon;
  if (!result.computed) return;
  report.generator_grad_norm =
      std::sqrt(backend_.dot(generator_buffers_.gradients, generator_buffers_.gradients));
  clock.lap(&PassTimes::generator_backward);
  apply_generator_gradient();
}

void Learner::apply_generator_gradient() {
  if (generator_adam_) {
    generator_adam_->step(generator_buffers_.parameters, generator_buffers_.gradients);
  } else {
    generator_sgd_->step(generator_buffers_.parameters, generator_buffers_.gradients,
                         spec_.meta.learning_rate);
  }
}

MetaGradientResult Learner::generator_step(const Tensor& images, const Tensor& labels,
                                           double learning_rate, const Tensor& meta_images,
                                           const Tensor& meta_labels) {
  const MetaGradientResult result =
      meta_gradient(images, labels, learning_rate, meta_images, meta_labels);
  if (result.computed) apply_generator_gradient();
  return result;
}

MetaGradientResult Learner::meta_gradient(const Tensor& images, const Tensor& labels,
                                          double learning_rate, const Tensor& meta_images,
                                          const Tensor& meta_labels) {
  MD_CHECK(generator_ != nullptr,
           "meta_gradient: the learner has no label generator (method is not metadistiller)");
  StudentPass pass;
  PassClock untimed(backend_, PassTiming::Off, nullptr);
  forward_backward(images, labels, RunningStatsUpdate::Skip, pass, untimed);
  return generator_gradient(
      meta_inputs(pass, images, labels, learning_rate, meta_images, meta_labels));
}

double Learner::meta_objective(const Tensor& images, const Tensor& labels, double learning_rate,
                               const Tensor& meta_images, const Tensor& meta_labels) {
  MD_CHECK(generator_ != nullptr,
           "meta_objective: the learner has no label generator (method is not metadistiller)");
  StudentPass pass;
  PassClock untimed(backend_, PassTiming::Off, nullptr);
  forward_backward(images, labels, RunningStatsUpdate::Skip, pass, untimed);
  return meta_loss_at_virtual_step(
      backend_, collective_, student_logits_,
      meta_inputs(pass, images, labels, learning_rate, meta_images, meta_labels), scratch_);
}

models::StudentOutput Learner::evaluate(const Tensor& images) const {
  autograd::NoGrad no_grad;
  nn::ForwardContext context{&student_->layout(), model_.parameters, Tensor(),
                             model_.buffers,      nn::Mode::Eval,    RunningStatsUpdate::Skip};
  return student_->forward(context, Variable(images));
}

}  // namespace md::train
