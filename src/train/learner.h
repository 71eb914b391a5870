// Learner: the state that training changes (student parameters, BN statistics, SGD momentum,
// and for MetaDistiller the label generator and its optimizer) and one optimizer step of each
// method. It sees tensors on its device, never files or data sets: the trial runner feeds it
// batches and saves its buffers; `metadistill bench` feeds it random batches.
#pragma once

#include <cmath>
#include <functional>
#include <memory>
#include <utility>
#include <vector>

#include "backend/backend.h"
#include "models/label_generator.h"
#include "models/student.h"
#include "train/collective.h"
#include "train/losses.h"
#include "train/optimizer.h"

namespace md::train {

enum class GeneratorOptimizer { Sgd, Adam };

// How the meta-gradient differentiates ∂L/∂u along v (DESIGN.md §1):
// - Central: [∂L/∂u(z(θ+εv)) − ∂L/∂u(z(θ−εv))]/(2ε); error O(ε²); two extra forwards.
// - Forward: [∂L/∂u(z(θ+εv)) − ∂L/∂u(z(θ))]/ε, z(θ) being the logits the step already computed;
//   error O(ε); one extra forward.
// Each extra forward runs only the shallow heads and the stages under them (StudentHeads::
// Auxiliary): about 2/3 of a student forward on resnet20, 3/4 on resnet18_cifar.
enum class FiniteDifference { Central, Forward };

// When a MetaDistiller step updates the generator (method.meta.update_order):
// - StudentFirst: the student steps with the targets of G at φ_t; then φ_{t+1} = φ_t − lr·∇F.
// - GeneratorFirst (DARTS, Meta-Weight-Net): the meta-gradient at φ_t is computed from a
//   look-ahead pass (no running-stat updates), G is updated, and the student then steps with the
//   targets of G at φ_{t+1}: one student forward and backward more per meta step.
enum class UpdateOrder { StudentFirst, GeneratorFirst };

struct MetaSpec {
  int every = 1;          // a generator step every `every` student steps
  double epsilon = 0.01;  // ε₀: ε = ε₀/‖v‖
  GeneratorOptimizer optimizer = GeneratorOptimizer::Adam;
  double learning_rate = 1e-3;
  int generator_width = 128;
  models::GeneratorResolution generator_resolution = models::GeneratorResolution::Deepest;
  FiniteDifference difference = FiniteDifference::Central;
  // λ of the label anchor: G's gradient is that of F(φ) + λ·Σ_s CE(u_s, y) (see
  // MetaGradientInputs::label_weight).
  double label_weight = 1.0;
  bool frozen = false;  // the control arm: G is never updated (no meta passes)
  UpdateOrder update_order = UpdateOrder::StudentFirst;
};

// How a baseline or BYOT step runs its forward, loss and backward (runtime.cuda_graph):
// - Eager: op by op from the host, every step.
// - Graph: recorded once (Backend::capture_graph) after one eager warm-up step, then replayed
//   with the batch copied into the recorded input tensors. On a GPU one graph launch replaces
//   the step's hundreds of kernel launches; on the CPU a replay runs the same code again (the
//   captured path is checked everywhere, nothing is gained). The gradient average over the
//   ranks and the optimizer stay outside the graph (the learning rate changes between steps).
//   Results equal the eager step's. A batch of another shape (a short last batch) runs eagerly.
//   MetaDistiller steps always run eagerly: their meta step reads ‖v‖ on the host.
enum class StepCapture { Eager, Graph };

struct LearnerSpec {
  models::ModelSpec model;
  LossSpec loss;
  SgdParams sgd;
  MetaSpec meta;
  std::uint64_t seed = 0;
  StepCapture capture = StepCapture::Eager;
  Device device;
  DType dtype =
      DType::Float32;  // of every buffer and of the batches (Float64: the meta-gradient tests)
};

// The student as the meta-gradient sees it: its head logits for `images` on any flat parameter
// buffer of its layout, in training mode (batch statistics) WITHOUT running-stat updates. With
// `gradients` defined and grad mode on, a backward of the logits accumulates there.
// images: (N, C, H, W) -> per head (N, K): StudentHeads::All, every head, the last the final
// head; StudentHeads::Auxiliary, the shallow heads only (the θ± forwards: only the shallow heads
// have generator targets, so the backbone may stop after the last of them).
using StudentLogits = std::function<std::vector<autograd::Variable>(
    const Tensor& parameters, const Tensor& gradients, const Tensor& images,
    models::StudentHeads heads)>;

// What the pass times of a step measure: nothing (a normal step), wall-clock seconds, or the
// process's CPU seconds (on a shared CPU machine with one compute thread, the figure that other
// load disturbs least). Timing synchronizes the device after every pass.
enum class PassTiming { Off, WallClock, ProcessCpuClock };

// Seconds spent in each pass of one step (zero unless timed).
struct PassTimes {
  double student_forward = 0.0;     // student and auxiliary heads at θ, and the loss L(θ; φ)
  double generator_forward = 0.0;   // u_s = G_φ(stage features at θ)
  double student_backward = 0.0;    // g = ∇θ L(θ; φ) (and its average over the ranks)
  double virtual_step = 0.0;        // θ' = θ − η·g, v zeroed
  double meta_forward = 0.0;        // the heads at θ' on the meta batch, L_meta(θ')
  double meta_backward = 0.0;       // v = ∇θ' L_meta (average over the ranks, ‖v‖)
  double perturbed_forwards = 0.0;  // the shallow heads' logits at θ ± ε·v (no tape), ∂L/∂u
  double generator_backward = 0.0;  // the meta-gradient through G (average, norm)
  double optimizer = 0.0;           // the generator's and the student's updates
  double graph_replay = 0.0;        // StepCapture::Graph: forward, loss and backward as one replay
  double total = 0.0;               // the whole step

  // (name, seconds) of every pass but the total, in step order.
  std::vector<std::pair<const char*, double>> passes() const;
};

// Adds the time since the previous lap (or since construction) to one PassTimes field, after
// synchronizing the device, and the whole time to `total`. With PassTiming::Off or no PassTimes
// it does nothing, not even synchronize.
class PassClock {
 public:
  PassClock(Backend& backend, PassTiming timing, PassTimes* times);
  void lap(double PassTimes::*pass);

 private:
  double now() const;  // seconds on the chosen clock

  Backend* backend_;
  PassTiming timing_;
  PassTimes* times_;
  double last_ = 0.0;
};

// Scratch buffers of θ's size and dtype, reused by every meta step.
struct MetaScratch {
  Tensor virtual_parameters;  // θ', then θ+ and θ−
  Tensor meta_gradients;      // v = ∇θ' L_meta(θ')
};

// What one finite-difference meta-gradient (DESIGN.md §1) is computed from.
struct MetaGradientInputs {
  Tensor parameters;           // θ (flat)
  Tensor gradients;            // g = ∇θ L(θ; φ), already averaged over the ranks
  double learning_rate = 0.0;  // η of the virtual step θ' = θ − η·g
  Tensor images;               // (N, C, H, W): the batch L was computed on
  Tensor meta_images;          // (M, C, H, W)
  Tensor meta_labels;          // (M) int32
  // u_s: (N, K) per shallow head, outputs of G recorded on `generator_tape` (G's inputs are the
  // detached stage features at θ).
  std::vector<autograd::Variable> targets;
  autograd::Tape* generator_tape = nullptr;
  double alpha =
      0.3;  // weight of the KD term T²·KL of L (LossSpec::kd_weight: α, or α/T² without T²)
  double temperature = 3.0;
  double epsilon = 0.01;  // ε₀: ε = ε₀/‖v‖
  FiniteDifference difference = FiniteDifference::Central;
  // z(θ): per head (N, K) the student's logits for `images` at θ (training mode, batch
  // statistics). Needed by FiniteDifference::Forward only.
  std::vector<autograd::Variable> logits_at_parameters{};
  // λ of the generator's label anchor: λ·Σ_s CE(u_s, labels) joins the meta objective, so the
  // gradient accumulated into G is that of F(φ) + λ·Σ_s CE(u_s, y) (labels: (N) int32, the batch
  // L was computed on). 0: the meta-gradient alone.
  Tensor labels{};
  double label_weight = 0.0;
  PassClock* clock = nullptr;  // laps virtual_step .. generator_backward when given
};

struct MetaGradientResult {
  double meta_loss = NAN;  // L_meta(θ') = Σ_s CE(z_s(θ'; x_m), y_m)
  double v_norm = NAN;     // ‖v‖
  double epsilon = NAN;  // ε = ε₀/‖v‖; NaN when v was zero or not finite (no meta-gradient)
  bool computed = false;  // false: v was zero or not finite and G received no gradient
};

// L_meta(θ') with θ' = θ − η·g in scratch.virtual_parameters, and v = ∇θ' L_meta (averaged over
// the ranks) in scratch.meta_gradients.
double meta_loss_at_virtual_step(Backend& backend, Collective& collective,
                                 const StudentLogits& student, const MetaGradientInputs& inputs,
                                 MetaScratch& scratch);

// The meta-gradient ∇φ L_meta(θ'(φ)) ≈ −η·∇²φθ L·v by central differences: the student's
// shallow heads' logits at θ ± ε·v (StudentHeads::Auxiliary, no running-stat updates; ∂L/∂u_s
// depends only on head s < S, since the final head's loss has no target), upstream gradient
// −η·[∂L/∂u(z(θ+)) − ∂L/∂u(z(θ−))]/(2ε) into one backward of generator_tape
// (FiniteDifference::Forward: −η·[∂L/∂u(z(θ+)) − ∂L/∂u(z(θ))]/ε with z(θ) =
// inputs.logits_at_parameters). The meta-gradient is ACCUMULATED into the gradient buffer of the
// generator forward that recorded the targets (not averaged over ranks); θ is untouched.
MetaGradientResult finite_difference_meta_gradient(Backend& backend, Collective& collective,
                                                   const StudentLogits& student,
                                                   const MetaGradientInputs& inputs,
                                                   MetaScratch& scratch);

// Values of the last step, read from the device only when asked (log rows).
struct StepReport {
  Tensor loss;  // device scalar: the total student loss
  LossTerms terms;
  bool meta_step = false;
  double meta_loss = NAN, v_norm = NAN, epsilon = NAN, generator_grad_norm = NAN;
  PassTimes times;  // all zero unless Learner::set_pass_timing turned timing on
  // MetaDistiller: the generator's targets u_s (N, K) per shallow head and the final head's
  // logits (N, K) of this step, for the trial log's target statistics; empty otherwise.
  std::vector<Tensor> targets;
  Tensor deepest_logits;
};

class Learner {
 public:
  using MetaBatchSource =
      std::function<std::pair<Tensor, Tensor>()>;  // (images, labels) on the device

  Learner(const LearnerSpec& spec, Collective& collective);
  Learner(const Learner&) = delete;  // student_logits_ captures `this`
  Learner& operator=(const Learner&) = delete;

  // One optimizer step on images: (N, C, H, W), labels: (N) int32, both on the device.
  // `meta_batch` is called when a meta step is due (MetaDistiller only).
  StepReport step(const Tensor& images, const Tensor& labels, double learning_rate,
                  const MetaBatchSource& meta_batch);
  // Inference with the running statistics; no gradients.
  models::StudentOutput evaluate(const Tensor& images) const;

  // The pieces of a MetaDistiller step, by the passes step() runs, for tests and diagnostics.
  // Neither takes an optimizer step nor updates running statistics; both overwrite the model's
  // gradient buffer with ∇θ L(θ; φ).
  // The meta-gradient step() would feed the generator's optimizer at the current (θ, φ), left
  // (averaged) in generator_buffers().gradients.
  MetaGradientResult meta_gradient(const Tensor& images, const Tensor& labels, double learning_rate,
                                   const Tensor& meta_images, const Tensor& meta_labels);
  // One generator update at the current θ, as a meta step of step() applies it (the meta-gradient
  // with the label anchor, averaged, then G's optimizer); θ, the running statistics and the
  // student's momentum are left alone (the model's gradient buffer is overwritten).
  MetaGradientResult generator_step(const Tensor& images, const Tensor& labels,
                                    double learning_rate, const Tensor& meta_images,
                                    const Tensor& meta_labels);
  // The bilevel objective F(φ) = L_meta(θ − η·∇θ L(θ; φ)) at the current (θ, φ).
  double meta_objective(const Tensor& images, const Tensor& labels, double learning_rate,
                        const Tensor& meta_images, const Tensor& meta_labels);

  const LearnerSpec& spec() const { return spec_; }
  const models::Student& student() const { return *student_; }
  nn::ModelBuffers& model() { return model_; }
  SgdOptimizer& optimizer() { return *optimizer_; }
  bool has_generator() const { return generator_ != nullptr; }
  const models::LabelGenerator& generator() const { return *generator_; }
  nn::ModelBuffers& generator_buffers() { return generator_buffers_; }
  AdamOptimizer* generator_adam() { return generator_adam_.get(); }
  SgdOptimizer* generator_sgd() { return generator_sgd_.get(); }
  // With timing on, step() synchronizes the device after each pass and reports the time each
  // took in StepReport::times (for benchmarks; it slows a GPU step down).
  void set_pass_timing(PassTiming timing) { pass_timing_ = timing; }
  std::int64_t steps() const { return steps_; }
  void set_steps(std::int64_t steps) { steps_ = steps; }
  // A trial resumed from a checkpoint written before the label anchor existed keeps λ = 0.
  void set_label_weight(double label_weight) { spec_.meta.label_weight = label_weight; }

 private:
  // One forward of the student (and G) on a batch, the loss, and its backward into
  // model_.gradients (averaged over the ranks); G's targets stay on generator_tape.
  struct StudentPass {
    autograd::Tape tape;
    autograd::Tape generator_tape;
    models::StudentOutput output;
    std::vector<autograd::Variable> targets;
    LossTerms terms;
  };
  // forward_backward without the average over the ranks.
  void forward_backward_local(const Tensor& images, const Tensor& labels,
                              RunningStatsUpdate stats_update, StudentPass& pass, PassClock& clock);
  void forward_backward(const Tensor& images, const Tensor& labels, RunningStatsUpdate stats_update,
                        StudentPass& pass, PassClock& clock);
  // The recorded forward, loss and backward of StepCapture::Graph.
  struct CapturedStep {
    Tensor images;  // the recorded inputs, refreshed in place before each replay
    Tensor labels;
    Tensor outputs;  // flat: the total loss, then the CE, KD and hint terms in order
    const void* parameters = nullptr;  // the buffers the graph reads and writes, as recorded
    const void* gradients = nullptr;
    const void* buffers = nullptr;
    std::unique_ptr<DeviceGraph> graph;
  };
  // Whether this batch goes through the captured step: StepCapture::Graph, no generator, the
  // warm-up step done, and the batch of the recorded shape (or none recorded yet).
  bool uses_capture(const Tensor& images, const Tensor& labels) const;
  // The forward, loss and backward by replay (recorded first when there is no graph yet, or
  // the model's buffers moved), then the average over the ranks.
  void captured_step(const Tensor& images, const Tensor& labels, StepReport& report,
                     PassClock& clock);
  void captured_forward_backward();  // the recorded work
  // The terms of the warm-up step with their values from `values` (a copy of outputs).
  LossTerms captured_terms(const Tensor& values) const;
  MetaGradientInputs meta_inputs(StudentPass& pass, const Tensor& images, const Tensor& labels,
                                 double learning_rate, const Tensor& meta_images,
                                 const Tensor& meta_labels) const;
  // The generator's gradient from the meta-gradient, averaged over the ranks; no optimizer step.
  MetaGradientResult generator_gradient(const MetaGradientInputs& inputs);
  void apply_generator_gradient();  // G's optimizer step on generator_buffers_.gradients
  void meta_step(StudentPass& pass, const Tensor& images, const Tensor& labels,
                 double learning_rate, const MetaBatchSource& meta_batch, StepReport& report,
                 PassClock& clock);

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
  StudentLogits student_logits_;
  MetaScratch scratch_;
  std::int64_t steps_ = 0;
  PassTiming pass_timing_ = PassTiming::Off;
  std::unique_ptr<CapturedStep> captured_;
  // The weights of the loss terms of the eager warm-up step (which chose the cuDNN algorithms
  // and made the handles); the captured step's outputs follow their layout. Values undefined.
  // Empty until that step ran (every loss has the final head's CE term).
  LossTerms warm_terms_;
  bool capture_warm() const { return !warm_terms_.ce.empty(); }
};

}  // namespace md::train
