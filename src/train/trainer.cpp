#include "train/trainer.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <filesystem>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "backend/backend.h"
#include "core/error.h"
#include "core/logging.h"
#include "data/loader.h"
#include "io/checkpoint.h"
#include "io/config_keys.h"
#include "io/trial_log.h"
#include "models/student.h"
#include "train/learner.h"
#include "train/progress.h"
#include "train/schedule.h"
#include "train/trial_checkpoint.h"
#include "train/trial_data.h"
#include "train/trial_metrics.h"
#include "train/trial_setup.h"
#include "train/trial_stop.h"
#include "train/weights.h"

namespace md::train {
namespace {

using Clock = std::chrono::steady_clock;
namespace fs = std::filesystem;

double seconds_since(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

// One trial's run: build it from its config (train/trial_setup.h), resume it from its checkpoint
// (train/trial_checkpoint.h), train and evaluate epoch by epoch until its end, a stop epoch, an
// interrupt or divergence (train/trial_stop.h), and finish its log.
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
  // One epoch's training and, unless the trial diverged (then false), its /epoch row.
  bool run_epoch();
  void train_epoch();
  void train_step(const data::Batch& batch, double learning_rate);
  void after_log_step(double learning_rate);
  void write_log_row(double learning_rate, double images_per_second);
  void finish_epoch(double train_loss, Clock::time_point epoch_start);
  void report_progress(double images_per_second, bool final_line);
  data::Batch next_meta_batch();
  TrialResult finish_diverged(TrialResult result);
  TrialResult finish_stopped(TrialResult result);
  TrialResult finish_complete(TrialResult result);
  bool use_generator() const { return loss_spec_.method == MethodKind::MetaDistiller; }
  bool log_step() const { return learner_->steps() % std::max(1, config_.runtime.log_every) == 0; }

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
  models::ModelSpec model_spec_;

  std::unique_ptr<TrialData> data_;
  std::unique_ptr<Learner> learner_;
  TrialLoaders loaders_;
  std::optional<io::TrialLog> log_;
  std::optional<TrainingFigures> figures_;

  int epoch_ = 0;                    // the epoch being (or next to be) trained
  std::int64_t batch_in_epoch_ = 0;  // the next batch of that epoch
  std::int64_t meta_epoch_ = 0;
  double wall_before_ = 0.0;  // wall seconds of earlier runs of this trial
  Clock::time_point start_ = Clock::now();
  ProgressPrinter progress_;

  std::int64_t images_since_log_ = 0;
  Clock::time_point log_clock_ = Clock::now();
  double last_images_per_second_ = 0.0;
  double last_test_accuracy_ = NAN;
  double last_loss_ = NAN;
  std::map<std::string, std::vector<double>> epoch_history_;
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
      throw InputError(detail::concat(io::key_path::runtime_device,
                                      ": cuda requested but no CUDA device is available"));
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
  figures_.emplace(backend_, context_.device);
}

void TrialRunner::resume() {
  const std::optional<TrialPosition> position =
      load_trial_checkpoint(checkpoint_path_, id_, *learner_, loaders_.meta.get());
  if (position) {
    if (use_generator()) meta_epoch_ = position->meta_epoch;
    epoch_ = position->epoch;
    batch_in_epoch_ = position->batch_in_epoch;
    wall_before_ = position->wall_seconds;
    figures_->restore(*position);
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
  load_student(data, path, learner_->student(), learner_->model(), WeightGroups::BackboneOnly);
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
      .losses = figures_->loss_sums(),
      .target_sums = figures_->target_sums()};
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
  figures_->add_step(report, log_step(), labels, config_.method.temperature);
}

void TrialRunner::write_log_row(double learning_rate, double images_per_second) {
  const double loss = figures_->take_interval_loss();
  last_loss_ = loss;
  stop_.observe_loss(loss);
  if (!writer_) return;
  const TrainRowPosition position{
      .step = learner_->steps(),
      .epoch = epoch_ + static_cast<double>(batch_in_epoch_) /
                            static_cast<double>(loaders_.batches_per_epoch),
      .learning_rate = learning_rate,
      .images_per_second = images_per_second};
  log_->append("train", figures_->train_row(position, loss, use_generator()));
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

// A log step's /train row and progress line, and a new throughput interval.
void TrialRunner::after_log_step(double learning_rate) {
  const double seconds = seconds_since(log_clock_);
  last_images_per_second_ = static_cast<double>(images_since_log_) / std::max(seconds, 1e-9);
  write_log_row(learning_rate, last_images_per_second_);
  report_progress(last_images_per_second_, false);
  images_since_log_ = 0;
  log_clock_ = Clock::now();
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
    if (log_step()) {
      after_log_step(lr);
      if (stop_.diverged_on_any_rank()) return;
    }
  }
}

// The /epoch row of the epoch just trained: its test evaluation, train loss, wall time and the
// generator targets' means; then the next epoch's position and, when due, a checkpoint.
void TrialRunner::finish_epoch(double train_loss, Clock::time_point epoch_start) {
  std::map<std::string, double> row =
      evaluate_test_set(*learner_, *loaders_.test, *collective_,
                        TestPass{.max_batches = config_.runtime.max_eval_batches,
                                 .num_classes = model_spec_.num_classes,
                                 .device = context_.device});
  row["epoch"] = epoch_ + 1;
  row["train_loss"] = train_loss;
  row["wall_s"] = seconds_since(epoch_start);
  figures_->take_epoch_target_means(row);
  last_test_accuracy_ = row["test_acc_final"];
  // The epoch's closing line, while epoch_ and batch_in_epoch_ still name its end.
  report_progress(last_images_per_second_, true);
  figures_->restart_epoch_loss();
  ++epoch_;
  batch_in_epoch_ = 0;
  for (const auto& [metric, value] : row) epoch_history_[metric].push_back(value);
  if (writer_) {
    log_->append("epoch", row);
    log_->flush();
  }
  if (config_.runtime.checkpoint_every_epochs > 0 &&
      (epoch_ % config_.runtime.checkpoint_every_epochs == 0 || epoch_ == config_.optim.epochs)) {
    save_checkpoint();
  }
}

bool TrialRunner::run_epoch() {
  const auto epoch_start = Clock::now();
  train_epoch();
  if (stop_.diverged()) return false;
  const double train_loss = figures_->epoch_loss();
  stop_.observe_loss(train_loss);
  if (stop_.diverged_on_any_rank()) return false;
  finish_epoch(train_loss, epoch_start);
  return true;
}

TrialResult TrialRunner::finish_diverged(TrialResult result) {
  result.status = io::TrialStatus::Diverged;
  result.error = divergence_error(learner_->steps());
  if (writer_) io::record_status(*log_, io::TrialStatus::Diverged, result.error);
  log_warning("trial ", id_, " diverged: ", result.error);
  return result;
}

// An ASHA rung: a checkpoint at the epoch boundary, which a promotion resumes from.
TrialResult TrialRunner::finish_stopped(TrialResult result) {
  save_checkpoint();
  result.status = io::TrialStatus::Stopped;
  if (writer_) io::record_status(*log_, io::TrialStatus::Stopped);
  log_info("trial ", id_, " stopped at epoch ", epoch_, " (an ASHA rung)");
  return result;
}

// The final summary from the epoch history (restored from the log when resumed).
TrialResult TrialRunner::finish_complete(TrialResult result) {
  const double skipped_samples = collective_->sum(static_cast<double>(
      (loaders_.train ? loaders_.train->skipped_samples() : 0) + loaders_.test->skipped_samples()));
  if (writer_) {
    std::map<std::string, double> final_values = final_accuracies(epoch_history_);
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
      if (!run_epoch()) return finish_diverged(std::move(result));
    }
    if (end_epoch < config_.optim.epochs) return finish_stopped(std::move(result));
  } catch (const Interrupted& interrupted) {
    if (writer_) io::record_status(*log_, io::TrialStatus::Interrupted, interrupted.what());
    throw;
  } catch (const std::exception& error) {
    if (writer_) io::record_status(*log_, io::TrialStatus::Failed, error.what());
    throw;
  }
  return finish_complete(std::move(result));
}

}  // namespace

TrialResult run_trial(const io::TrialConfig& config, const TrialContext& context) {
  TrialRunner runner(config, context);
  return runner.run();
}

}  // namespace md::train
