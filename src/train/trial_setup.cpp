// The config → spec mapping of a trial (see trial_setup.h).
#include "train/trial_setup.h"

#include <algorithm>
#include <thread>

#include "backend/backend.h"
#include "core/error.h"
#include "core/logging.h"
#include "io/config_keys.h"

namespace md::train {
namespace {

MethodKind method_kind(io::MethodName name) {
  switch (name) {
    case io::MethodName::Baseline:
      return MethodKind::Baseline;
    case io::MethodName::Byot:
      return MethodKind::Byot;
    case io::MethodName::MetaDistiller:
      return MethodKind::MetaDistiller;
  }
  return MethodKind::Baseline;
}

models::AuxWidth aux_width(const io::AuxWidthConfig& width) {
  switch (width.rule) {
    case io::AuxWidthRule::InputQuarter:
      return {.rule = models::AuxWidthRule::InputQuarter};
    case io::AuxWidthRule::LastStageQuarter:
      return {.rule = models::AuxWidthRule::LastStageQuarter};
    case io::AuxWidthRule::Fixed:
      return {.rule = models::AuxWidthRule::Fixed, .channels = width.channels};
  }
  return {};
}

backend::MathPrecision math_precision(io::Precision precision) {
  switch (precision) {
    case io::Precision::Fp32:
      return backend::MathPrecision::Fp32;
    case io::Precision::Tf32:
      return backend::MathPrecision::Tf32;
    case io::Precision::Bf16:
      return backend::MathPrecision::Bf16;
  }
  return backend::MathPrecision::Fp32;
}

MetaSpec meta_spec(const io::MetaConfig& meta) {
  return MetaSpec{
      .every = meta.every,
      .epsilon = meta.epsilon,
      .optimizer = meta.optimizer.name == io::MetaOptimizer::Adam ? GeneratorOptimizer::Adam
                                                                  : GeneratorOptimizer::Sgd,
      .learning_rate = meta.optimizer.lr,
      .generator_width = meta.generator_width,
      .generator_resolution = meta.generator_resolution == io::GeneratorResolution::Stage
                                  ? models::GeneratorResolution::Stage
                                  : models::GeneratorResolution::Deepest,
      .difference = meta.difference == io::MetaDifference::Forward ? FiniteDifference::Forward
                                                                   : FiniteDifference::Central,
      .label_weight = meta.label_weight,
      .frozen = meta.frozen,
      .update_order = meta.update_order == io::MetaUpdateOrder::GeneratorFirst
                          ? UpdateOrder::GeneratorFirst
                          : UpdateOrder::StudentFirst};
}

// The training batches of this rank: its share of optim.batch_size, shuffled, the last partial
// batch dropped.
data::LoaderSpec train_loader_spec(const io::TrialConfig& config,
                                   const LoaderPlacement& placement) {
  const int world = placement.world;
  MD_INPUT_CHECK(config.optim.batch_size % world == 0, config.source, ": ",
                 io::key_path::optim_batch_size, " ", config.optim.batch_size,
                 " is not divisible by the ", world, " ranks of the trial");
  data::LoaderSpec spec;
  spec.batch_size = config.optim.batch_size / world;
  spec.shuffle = data::Shuffle::On;
  spec.seed = config.runtime.seed;
  spec.remainder = data::Remainder::Drop;
  spec.rank = placement.rank;
  spec.world_size = world;
  // In-memory sets need little work per sample; JPEG decoding needs every thread the rank has.
  const int threads = config.runtime.threads > 0
                          ? config.runtime.threads
                          : static_cast<int>(std::max(1U, std::thread::hardware_concurrency()));
  spec.threads = config.dataset.name == io::DatasetName::Imagenet
                     ? threads
                     : std::max(1, config.runtime.threads / 2);
  return spec;
}

// MetaDistiller's meta batches: the training spec in another order, from the held-out split
// when there is one (no larger than its share of it).
data::LoaderSpec meta_loader_spec(const io::TrialConfig& config, const TrialData& data,
                                  const data::LoaderSpec& train_spec, int world) {
  data::LoaderSpec spec = train_spec;
  spec.seed = config.runtime.seed + 0x9e3779b9ULL;  // an order independent of the training one
  if (data.meta_holdout != nullptr)
    spec.batch_size = std::min<std::int64_t>(spec.batch_size, data.meta_holdout->count() / world);
  MD_INPUT_CHECK(spec.batch_size > 0, config.source, ": ",
                 io::key_path::method_meta_holdout_fraction, " leaves no meta batch");
  return spec;
}

// The test batches: in order, at most 256 per rank, the last partial batch kept.
data::LoaderSpec test_loader_spec(const io::TrialConfig& config, const data::LoaderSpec& train_spec,
                                  const LoaderPlacement& placement) {
  data::LoaderSpec spec;
  spec.batch_size = std::max<std::int64_t>(1, std::min<std::int64_t>(256, config.optim.batch_size));
  spec.shuffle = data::Shuffle::Off;
  spec.remainder = data::Remainder::Keep;
  spec.rank = placement.rank;
  spec.world_size = placement.world;
  spec.threads = train_spec.threads;
  return spec;
}

// The in-memory training set when runtime.data_on_device asks for device-resident batches
// (auto: on a CUDA device for cifar100 and idx), else null.
const data::ImageSetSource* device_resident_train_source(const io::TrialConfig& config,
                                                         const TrialData& data, Device device) {
  const auto* in_memory = dynamic_cast<const data::ImageSetSource*>(data.train.get());
  switch (config.runtime.data_on_device) {
    case io::DataOnDevice::Off:
      return nullptr;
    case io::DataOnDevice::On:
      MD_INPUT_CHECK(in_memory != nullptr, config.source, ": ",
                     io::key_path::runtime_data_on_device,
                     ": true needs an in-memory dataset (cifar100 or idx), not ",
                     io::to_string(config.dataset.name));
      return in_memory;
    case io::DataOnDevice::Auto:
      return device.is_cuda() ? in_memory : nullptr;
  }
  return nullptr;
}

}  // namespace

LossSpec loss_spec(const io::MethodConfig& method, double label_smoothing, int ranks) {
  const bool summed_hint = method.hint_reduction == io::HintReduction::Sum;
  return LossSpec{.method = method_kind(method.name),
                  .temperature = method.temperature,
                  .alpha = method.alpha,
                  .hint = summed_hint ? method.hint * static_cast<double>(ranks) : method.hint,
                  .label_smoothing = label_smoothing,
                  .kd_temperature_squared = method.kd_temperature_squared,
                  .deepest_ce = method.deepest_ce == io::DeepestCe::OneMinusAlpha
                                    ? DeepestCe::OneMinusAlpha
                                    : DeepestCe::One,
                  .hint_reduction = summed_hint ? HintReduction::Sum : HintReduction::Mean};
}

ScheduleSpec schedule_spec(const io::OptimConfig& optim) {
  return ScheduleSpec{.kind = optim.schedule.name == io::ScheduleName::Cosine
                                  ? ScheduleKind::Cosine
                                  : ScheduleKind::Multistep,
                      .base_lr = optim.lr,
                      .epochs = optim.epochs,
                      .milestones = optim.schedule.milestones,
                      .gamma = optim.schedule.gamma,
                      .warmup_epochs = optim.schedule.warmup_epochs};
}

void apply_compute_options(const io::RuntimeConfig& runtime) {
  if (runtime.threads > 0) backend::set_cpu_threads(runtime.threads);
  backend::set_compute_options(backend::ComputeOptions{
      .precision = math_precision(runtime.precision),
      .determinism = runtime.deterministic ? backend::AlgorithmDeterminism::Deterministic
                                           : backend::AlgorithmDeterminism::Fastest});
}

models::ModelSpec model_spec(const io::TrialConfig& config, const TrialData& data) {
  models::ModelSpec spec;
  spec.arch = config.model.arch;
  spec.num_classes = config.model.num_classes > 0 ? config.model.num_classes : data.num_classes;
  spec.in_channels = config.model.in_channels > 0 ? config.model.in_channels : data.channels;
  spec.aux_width = aux_width(config.method.aux.width);
  MD_INPUT_CHECK(spec.in_channels == data.channels, config.source, ": ",
                 io::key_path::model_in_channels, " is ", spec.in_channels, " but the data has ",
                 data.channels, " channels");
  MD_INPUT_CHECK(spec.num_classes >= data.num_classes, config.source, ": ",
                 io::key_path::model_num_classes, " is ", spec.num_classes,
                 " but the data has labels up to ", data.num_classes - 1);
  return spec;
}

LearnerSpec learner_spec(const io::TrialConfig& config, const models::ModelSpec& model,
                         const LossSpec& loss, Device device) {
  LearnerSpec spec;
  spec.model = model;
  spec.loss = loss;
  spec.sgd = SgdParams{.learning_rate = config.optim.lr,
                       .momentum = config.optim.momentum,
                       .weight_decay = config.optim.weight_decay,
                       .nesterov = config.optim.nesterov};
  spec.meta = meta_spec(config.method.meta);
  spec.seed = config.runtime.seed;
  spec.device = device;
  if (config.runtime.cuda_graph) {
    spec.capture = StepCapture::Graph;
    if (loss.method == MethodKind::MetaDistiller) {
      log_warning(config.source, ": ", io::key_path::runtime_cuda_graph,
                  ": metadistiller steps run op by op (the meta step reads values on the host); "
                  "only baseline and byot steps are replayed");
    }
  }
  return spec;
}

TrialLoaders make_trial_loaders(const io::TrialConfig& config, const TrialData& data,
                                const LoaderPlacement& placement, bool meta_batches) {
  TrialLoaders loaders;
  const data::LoaderSpec train_spec = train_loader_spec(config, placement);
  if (const data::ImageSetSource* resident =
          device_resident_train_source(config, data, placement.device)) {
    loaders.train_on_device =
        std::make_unique<DeviceBatches>(*resident, train_spec, placement.device);
    loaders.batches_per_epoch = loaders.train_on_device->batches_per_epoch();
  } else {
    loaders.train = std::make_unique<data::BatchLoader>(*data.train, train_spec);
    loaders.batches_per_epoch = loaders.train->batches_per_epoch();
  }
  if (config.runtime.max_train_batches > 0) {
    loaders.batches_per_epoch =
        std::min(loaders.batches_per_epoch, config.runtime.max_train_batches);
  }
  MD_INPUT_CHECK(loaders.batches_per_epoch > 0, config.source, ": ", io::key_path::optim_batch_size,
                 " ", config.optim.batch_size, " is larger than the training set (",
                 data.train->count(), " images)");
  if (meta_batches) {
    loaders.meta = std::make_unique<data::BatchLoader>(
        data.meta_holdout != nullptr ? *data.meta_holdout : *data.train,
        meta_loader_spec(config, data, train_spec, placement.world));
    loaders.meta->start_epoch(0);
  }
  loaders.test = std::make_unique<data::BatchLoader>(
      *data.test, test_loader_spec(config, train_spec, placement));
  return loaders;
}

}  // namespace md::train
