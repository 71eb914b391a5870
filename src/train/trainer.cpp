#include "train/trainer.h"

#include <unistd.h>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <memory>
#include <optional>
#include <thread>

#include "autograd/functions.h"
#include "backend/backend.h"
#include "core/interrupt.h"
#include "core/logging.h"
#include "data/loader.h"
#include "io/checkpoint.h"
#include "io/trial_log.h"
#include "models/label_generator.h"
#include "models/student.h"
#include "train/device_batches.h"
#include "train/evaluation.h"
#include "train/learner.h"
#include "train/losses.h"
#include "train/progress.h"
#include "train/schedule.h"
#include "train/target_stats.h"
#include "train/trial_checkpoint.h"
#include "train/trial_data.h"
#include "train/trial_setup.h"
#include "train/trial_stop.h"
#include "train/weights.h"

namespace md::train {
namespace {

using autograd::Variable;
using Clock = std::chrono::steady_clock;
namespace fs = std::filesystem;

double seconds_since(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

class TrialRunner {
 public:
  TrialRunner(const io::TrialConfig& config, const TrialContext& context)
      : config_(config),
        context_(context),
        collective_(context.collective != nullptr ? context.collective : &single_rank_),
        backend_(backend::get(context.device)),
        stop_(*collective_),
        progress_(collective_->rank() == 0, context.progress, context.label, config.optim.epochs,
                  start_) {
    id_ = io::trial_id(config);
    log_path_ = (fs::path(context.out_dir) / (id_ + ".h5")).string();
    checkpoint_path_ = (fs::path(context.out_dir) / (id_ + ".ckpt.h5")).string();
    writer_ = collective_->rank() == 0;
    loss_spec_ = loss_spec(config.method, config.optim.label_smoothing, collective_->size());
    schedule_ = schedule_spec(config.optim);
  }

  TrialResult run();

 private:
  void build();
  void resume();
  void open_log(bool resuming);
  void save_checkpoint();
  void load_initial_weights(const std::string& path);
  void train_epoch();
  void train_step(const data::Batch& batch, double learning_rate);
  data::Batch next_meta_batch();
  std::map<std::string, double> evaluate();
  void write_log_row(double learning_rate, double images_per_second);
  void report_progress(double images_per_second, bool final_line);
  bool use_generator() const { return loss_spec_.method == MethodKind::MetaDistiller; }
  const models::Student& student() const { return learner_->student(); }

  io::TrialConfig config_;
  TrialContext context_;
  Collective single_rank_;
  Collective* collective_;
  Backend& backend_;
  StopRule stop_;
  bool writer_ = true;
  std::string id_, log_path_, checkpoint_path_;
  LossSpec loss_spec_;
  ScheduleSpec schedule_;

  std::unique_ptr<TrialData> data_;
  std::unique_ptr<Learner> learner_;
  TrialLoaders loaders_;
  std::optional<io::TrialLog> log_;

  int epoch_ = 0;                    // the epoch being (or next to be) trained
  std::int64_t batch_in_epoch_ = 0;  // the next batch of that epoch
  std::int64_t meta_epoch_ = 0;
  double wall_before_ = 0.0;  // wall seconds of earlier runs of this trial
  Clock::time_point start_ = Clock::now();
  ProgressPrinter progress_;

  // Running sums since the last log row (device scalars, read at log time only).
  Tensor loss_sum_;
  std::int64_t loss_count_ = 0;
  Tensor epoch_loss_sum_;
  std::int64_t epoch_loss_count_ = 0;
  double ce_last_ = 0.0, kd_last_ = 0.0, hint_last_ = 0.0;
  double meta_loss_last_ = NAN, v_norm_last_ = NAN, epsilon_last_ = NAN,
         generator_grad_norm_last_ = NAN;
  // MetaDistiller: the generator targets' statistics of the last log row's batch, and their
  // mean over this epoch's log rows.
  std::map<std::string, double> target_row_;
  TargetStatisticsMean epoch_targets_;
  std::int64_t images_since_log_ = 0;
  Clock::time_point log_clock_ = Clock::now();
  double last_images_per_second_ = 0.0;
  double last_test_accuracy_ = NAN;
  double last_loss_ = NAN;
  std::map<std::string, std::vector<double>> epoch_history_;
  models::ModelSpec model_spec_;
};

}  // namespace

Device resolve_device(const std::string& device_text, int local_rank) {
  if (device_text == "auto") {
    int count = backend::cuda_device_count();
    return count > 0 ? Device::cuda(local_rank % count) : Device::cpu();
  }
  Device device = Device::parse(device_text);
  if (device.is_cuda() && device_text == "cuda") {
    int count = backend::cuda_device_count();
    if (count == 0)
      throw InputError("runtime.device: cuda requested but no CUDA device is available");
    device.index = local_rank % count;
  }
  return device;
}

namespace {

void TrialRunner::build() {
  apply_compute_options(config_.runtime);
  data_ = load_trial_data(config_);
  model_spec_ = model_spec(config_, *data_);
  learner_ = std::make_unique<Learner>(
      learner_spec(config_, model_spec_, loss_spec_, context_.device), *collective_);
  if (!config_.model.init_from.empty()) load_initial_weights(config_.model.init_from);
  loaders_ = make_trial_loaders(
      config_, *data_,
      LoaderPlacement{
          .rank = collective_->rank(), .world = collective_->size(), .device = context_.device},
      use_generator());

  loss_sum_ = Tensor::zeros({}, DType::Float32, context_.device);
  epoch_loss_sum_ = Tensor::zeros({}, DType::Float32, context_.device);
}

void TrialRunner::resume() {
  const std::optional<TrialPosition> position =
      load_trial_checkpoint(checkpoint_path_, id_, *learner_, loaders_.meta.get());
  if (position) {
    if (use_generator()) meta_epoch_ = position->meta_epoch;
    epoch_ = position->epoch;
    batch_in_epoch_ = position->batch_in_epoch;
    wall_before_ = position->wall_seconds;
    if (position->losses) {
      backend_.fill(loss_sum_, position->losses->interval_sum);
      loss_count_ = position->losses->interval_count;
      backend_.fill(epoch_loss_sum_, position->losses->epoch_sum);
      epoch_loss_count_ = position->losses->epoch_count;
    }
    epoch_targets_.restore(position->target_sums);
    log_info("resuming trial ", id_, " at epoch ", epoch_, " batch ", batch_in_epoch_, " (step ",
             learner_->steps(), ")");
  }
  open_log(position.has_value());
}

void TrialRunner::open_log(bool resuming) {
  if (!writer_) return;
  if (resuming && fs::exists(log_path_)) {
    io::TrialLogContents contents = io::read_trial_log(log_path_);
    for (const auto& [metric, values] : contents.tables["epoch"]) {
      const auto keep = std::min<std::size_t>(values.size(), static_cast<std::size_t>(epoch_));
      epoch_history_[metric].assign(values.begin(),
                                    values.begin() + static_cast<std::ptrdiff_t>(keep));
    }
    log_.emplace(io::TrialLog::open(log_path_, io::OpenMode::Resume, {}));
    // Rows written after the checkpoint are replayed by this run: cut them.
    log_->truncate_rows("epoch", epoch_);
    log_->truncate_rows("train", learner_->steps() / std::max(1, config_.runtime.log_every));
  } else {
    const io::TrialLogHeader header{.trial_id = id_,
                                    .sweep = context_.sweep_name,
                                    .config = io::to_yaml(config_),
                                    .device_name = context_.device.str(),
                                    .ranks = collective_->size()};
    log_.emplace(
        io::TrialLog::open(log_path_, io::OpenMode::Create,
                           io::trial_log_root_attributes(header, io::TrialStatus::Running)));
  }
  io::record_status(*log_, io::TrialStatus::Running);
}

void TrialRunner::load_initial_weights(const std::string& path) {
  io::CheckpointData data = io::read_checkpoint(path);
  load_student(data, path, student(), learner_->model(), WeightGroups::BackboneOnly);
  log_info("initialized ", config_.model.arch, " from ", path);
}

void TrialRunner::save_checkpoint() {
  if (!writer_) return;
  const TrialPosition position{
      .epoch = epoch_,
      .batch_in_epoch = batch_in_epoch_,
      .meta_epoch = meta_epoch_,
      .meta_position = loaders_.meta ? loaders_.meta->position() : std::int64_t{0},
      .wall_seconds = wall_before_ + seconds_since(start_),
      .losses = RunningLossSums{.interval_sum = loss_sum_.item(),
                                .interval_count = loss_count_,
                                .epoch_sum = epoch_loss_sum_.item(),
                                .epoch_count = epoch_loss_count_},
      .target_sums = epoch_targets_.sums()};
  save_trial_checkpoint(
      checkpoint_path_,
      CheckpointIdentity{
          .trial_id = id_, .config_yaml = io::to_yaml(config_), .model = model_spec_},
      *learner_, position);
}

data::Batch TrialRunner::next_meta_batch() {
  data::Batch batch;
  if (!loaders_.meta->next(batch)) {
    loaders_.meta->start_epoch(++meta_epoch_);
    MD_CHECK(loaders_.meta->next(batch), "the meta loader has no batches");
  }
  return batch;
}

void TrialRunner::train_step(const data::Batch& host_batch, double learning_rate) {
  const Tensor images = host_batch.images.to(context_.device);
  const Tensor labels = host_batch.labels.to(context_.device);
  StepReport report = learner_->step(images, labels, learning_rate, [this] {
    const data::Batch batch = next_meta_batch();
    return std::make_pair(batch.images.to(context_.device), batch.labels.to(context_.device));
  });
  backend_.axpby(1.0, report.loss, 1.0, loss_sum_);
  backend_.axpby(1.0, report.loss, 1.0, epoch_loss_sum_);
  ++loss_count_;
  ++epoch_loss_count_;
  if (learner_->steps() % std::max(1, config_.runtime.log_every) == 0) {
    ce_last_ = LossTerms::value(report.terms.ce);
    kd_last_ = LossTerms::value(report.terms.kd);
    hint_last_ = LossTerms::value(report.terms.hint);
    if (!report.targets.empty()) {
      const TargetStatistics statistics = target_statistics(report.targets, report.deepest_logits,
                                                            labels, config_.method.temperature);
      target_row_ = target_statistics_row(statistics);
      epoch_targets_.add(statistics);
    }
  }
  if (report.meta_step) {
    meta_loss_last_ = report.meta_loss;
    v_norm_last_ = report.v_norm;
    epsilon_last_ = report.epsilon;
    generator_grad_norm_last_ = report.generator_grad_norm;
  }
}

void TrialRunner::write_log_row(double learning_rate, double images_per_second) {
  const double loss = loss_count_ > 0 ? loss_sum_.item() / static_cast<double>(loss_count_) : NAN;
  last_loss_ = loss;
  backend_.fill(loss_sum_, 0.0);
  loss_count_ = 0;
  stop_.observe_loss(loss);
  if (!writer_) return;
  std::map<std::string, double> row{
      {"step", static_cast<double>(learner_->steps())},
      {"epoch", epoch_ + static_cast<double>(batch_in_epoch_) /
                             static_cast<double>(loaders_.batches_per_epoch)},
      {"lr", learning_rate},
      {"loss", loss},
      {"loss_ce", ce_last_},
      {"loss_kd", kd_last_},
      {"loss_hint", hint_last_},
      {"images_per_s", images_per_second},
  };
  if (use_generator()) {
    row["loss_meta"] = meta_loss_last_;
    row["meta_v_norm"] = v_norm_last_;
    row["meta_epsilon"] = epsilon_last_;
    row["generator_grad_norm"] = generator_grad_norm_last_;
    row.insert(target_row_.begin(), target_row_.end());
  }
  log_->append("train", row);
}

void TrialRunner::report_progress(double images_per_second, bool final_line) {
  progress_.report(ProgressState{.epoch = epoch_,
                                 .batch_in_epoch = batch_in_epoch_,
                                 .batches_per_epoch = loaders_.batches_per_epoch,
                                 .loss = last_loss_,
                                 .images_per_second = images_per_second,
                                 .test_accuracy = last_test_accuracy_},
                   final_line);
}

// Top-1 and (with more than 5 classes) top-5 accuracy of every head and of the ensemble, by the
// tie rule of train/evaluation.h, and the final head's test loss.
std::map<std::string, double> TrialRunner::evaluate() {
  autograd::NoGrad no_grad;
  AccuracyCounts counts(student().num_heads());
  double loss_sum = 0.0;
  loaders_.test->start_epoch(0);
  data::Batch batch;
  std::int64_t batches = 0;
  while (loaders_.test->next(batch)) {
    if (config_.runtime.max_eval_batches > 0 && batches >= config_.runtime.max_eval_batches) break;
    ++batches;
    const Tensor labels = batch.labels;
    const auto n = labels.numel();
    if (n == 0) continue;  // a rank's empty part of the last global batch
    models::StudentOutput output = learner_->evaluate(batch.images.to(context_.device));
    Variable final_loss = autograd::cross_entropy(output.logits.back(), labels.to(context_.device));
    loss_sum += final_loss.value().item() * static_cast<double>(n);
    std::vector<Tensor> logits;
    for (const Variable& head : output.logits) logits.push_back(head.value());
    count_hits(counts, logits, labels);
  }
  counts.count = collective_->sum(counts.count);
  loss_sum = collective_->sum(loss_sum);
  for (double& hits : counts.top1) hits = collective_->sum(hits);
  for (double& hits : counts.top5) hits = collective_->sum(hits);
  std::map<std::string, double> metrics = accuracy_metrics(counts, model_spec_.num_classes);
  metrics["test_loss"] = loss_sum / counts.count;
  return metrics;
}

void TrialRunner::train_epoch() {
  if (loaders_.train_on_device) {
    loaders_.train_on_device->start_epoch(epoch_, batch_in_epoch_);
  } else {
    loaders_.train->start_epoch(epoch_, batch_in_epoch_);
  }
  const auto next_train_batch = [this](data::Batch& next) {
    return loaders_.train_on_device ? loaders_.train_on_device->next(next)
                                    : loaders_.train->next(next);
  };
  data::Batch batch;
  log_clock_ = Clock::now();
  images_since_log_ = 0;
  while (batch_in_epoch_ < loaders_.batches_per_epoch && next_train_batch(batch)) {
    if (stop_.interrupt_requested()) {
      save_checkpoint();
      throw interruption(id_, epoch_, batch_in_epoch_, checkpoint_path_);
    }
    const double lr = learning_rate(schedule_, epoch_, batch_in_epoch_, loaders_.batches_per_epoch);
    train_step(batch, lr);
    ++batch_in_epoch_;
    images_since_log_ += batch.labels.numel() * collective_->size();
    if (learner_->steps() % std::max(1, config_.runtime.log_every) == 0) {
      const double seconds = seconds_since(log_clock_);
      last_images_per_second_ = static_cast<double>(images_since_log_) / std::max(seconds, 1e-9);
      write_log_row(lr, last_images_per_second_);
      report_progress(last_images_per_second_, false);
      images_since_log_ = 0;
      log_clock_ = Clock::now();
      if (stop_.diverged_on_any_rank()) return;
    }
  }
}

TrialResult TrialRunner::run() {
  TrialResult result;
  result.trial_id = id_;
  result.log_path = log_path_;
  fs::create_directories(context_.out_dir);
  build();
  resume();
  const int end_epoch = context_.stop_epoch > 0
                            ? std::min(context_.stop_epoch, config_.optim.epochs)
                            : config_.optim.epochs;
  try {
    while (epoch_ < end_epoch) {
      const auto epoch_start = Clock::now();
      train_epoch();
      if (!stop_.diverged()) {
        const double train_loss =
            epoch_loss_count_ > 0 ? epoch_loss_sum_.item() / static_cast<double>(epoch_loss_count_)
                                  : NAN;
        stop_.observe_loss(train_loss);
        if (!stop_.diverged_on_any_rank()) {
          std::map<std::string, double> row = evaluate();
          row["epoch"] = epoch_ + 1;
          row["train_loss"] = train_loss;
          row["wall_s"] = seconds_since(epoch_start);
          if (!epoch_targets_.empty()) {
            const std::map<std::string, double> means = epoch_targets_.means();
            row.insert(means.begin(), means.end());
          }
          epoch_targets_.clear();
          last_test_accuracy_ = row["test_acc_final"];
          // The epoch's closing line, while epoch_ and batch_in_epoch_ still name its end.
          report_progress(last_images_per_second_, true);
          backend_.fill(epoch_loss_sum_, 0.0);
          epoch_loss_count_ = 0;
          ++epoch_;
          batch_in_epoch_ = 0;
          for (const auto& [metric, value] : row) epoch_history_[metric].push_back(value);
          if (writer_) {
            log_->append("epoch", row);
            log_->flush();
          }
          if (config_.runtime.checkpoint_every_epochs > 0 &&
              (epoch_ % config_.runtime.checkpoint_every_epochs == 0 ||
               epoch_ == config_.optim.epochs)) {
            save_checkpoint();
          }
        }
      }
      if (stop_.diverged()) {
        result.status = io::TrialStatus::Diverged;
        result.error = divergence_error(learner_->steps());
        if (writer_) io::record_status(*log_, io::TrialStatus::Diverged, result.error);
        log_warning("trial ", id_, " diverged: ", result.error);
        return result;
      }
    }
    if (end_epoch < config_.optim.epochs) {
      // An ASHA rung: a checkpoint at the epoch boundary, which a promotion resumes from.
      save_checkpoint();
      result.status = io::TrialStatus::Stopped;
      if (writer_) io::record_status(*log_, io::TrialStatus::Stopped);
      log_info("trial ", id_, " stopped at epoch ", epoch_, " (an ASHA rung)");
      return result;
    }
  } catch (const Interrupted& interrupted) {
    if (writer_) io::record_status(*log_, io::TrialStatus::Interrupted, interrupted.what());
    throw;
  } catch (const std::exception& error) {
    if (writer_) io::record_status(*log_, io::TrialStatus::Failed, error.what());
    throw;
  }
  // Final summary from the epoch history (restored from the log when resumed).
  const double skipped_samples = collective_->sum(static_cast<double>(
      (loaders_.train ? loaders_.train->skipped_samples() : 0) + loaders_.test->skipped_samples()));
  if (writer_) {
    std::map<std::string, double> final_values;
    for (const auto& [metric, values] : epoch_history_) {
      if ((metric.rfind("test_acc_", 0) != 0 && metric.rfind("test_top5_", 0) != 0) ||
          values.empty())
        continue;
      final_values["last_" + metric.substr(5)] = values.back();
      double best = values.front();
      for (double value : values) best = std::max(best, value);
      final_values["best_" + metric.substr(5)] = best;
    }
    const double wall = wall_before_ + seconds_since(start_);
    final_values["total_wall_s"] = wall;
    final_values["gpu_hours"] =
        context_.device.is_cuda() ? wall * collective_->size() / 3600.0 : 0.0;
    final_values["epochs"] = epoch_;
    final_values["steps"] = static_cast<double>(learner_->steps());
    final_values["skipped_samples"] =
        skipped_samples;  // unrenderable (corrupt) images, all ranks, this run
    log_->set_final(final_values);
    io::record_status(*log_, io::TrialStatus::Complete);
    result.final_values = final_values;
  }
  result.status = io::TrialStatus::Complete;
  return result;
}

}  // namespace

TrialResult run_trial(const io::TrialConfig& config, const TrialContext& context) {
  TrialRunner runner(config, context);
  return runner.run();
}

}  // namespace md::train
