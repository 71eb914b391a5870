// The key tables (see config_keys.h): one row per trial-config key, one per sweep-file key, and
// what is printed from them (the JSON schema, the Markdown of docs/config.md, the default
// config). The enum spellings live here too, since the rows' choices are made of them. The row
// order is the canonical order of to_yaml, and with it part of every trial id: never reorder.
#include "io/config_keys.h"

#include <algorithm>
#include <array>
#include <cmath>
#include <sstream>
#include <type_traits>

#include "core/error.h"

namespace md::io {

namespace {

// ---- enum spellings

template <typename Enum>
struct EnumName {
  std::string_view name;
  Enum value;
};

constexpr std::array<EnumName<DatasetName>, 3> kDatasetNames{{
    {"cifar100", DatasetName::Cifar100},
    {"idx", DatasetName::Idx},
    {"imagenet", DatasetName::Imagenet},
}};
constexpr std::array<EnumName<MethodName>, 3> kMethodNames{{
    {"baseline", MethodName::Baseline},
    {"byot", MethodName::Byot},
    {"metadistiller", MethodName::MetaDistiller},
}};
constexpr std::array<EnumName<MetaData>, 2> kMetaData{{
    {"next_batch", MetaData::NextBatch},
    {"holdout", MetaData::Holdout},
}};
constexpr std::array<EnumName<GeneratorResolution>, 2> kGeneratorResolutions{{
    {"deepest", GeneratorResolution::Deepest},
    {"stage", GeneratorResolution::Stage},
}};
constexpr std::array<EnumName<MetaDifference>, 2> kMetaDifferences{{
    {"central", MetaDifference::Central},
    {"forward", MetaDifference::Forward},
}};
constexpr std::array<EnumName<MetaUpdateOrder>, 2> kMetaUpdateOrders{{
    {"student_first", MetaUpdateOrder::StudentFirst},
    {"generator_first", MetaUpdateOrder::GeneratorFirst},
}};
constexpr std::array<EnumName<DeepestCe>, 2> kDeepestCe{{
    {"one", DeepestCe::One},
    {"one_minus_alpha", DeepestCe::OneMinusAlpha},
}};
constexpr std::array<EnumName<HintReduction>, 2> kHintReductions{{
    {"mean", HintReduction::Mean},
    {"sum", HintReduction::Sum},
}};
// The named rules of method.aux.width; AuxWidthRule::Fixed is written as its integer.
constexpr std::array<EnumName<AuxWidthRule>, 2> kAuxWidthRules{{
    {"input_quarter", AuxWidthRule::InputQuarter},
    {"last_stage_quarter", AuxWidthRule::LastStageQuarter},
}};
constexpr std::array<EnumName<MetaOptimizer>, 2> kMetaOptimizers{{
    {"sgd", MetaOptimizer::Sgd},
    {"adam", MetaOptimizer::Adam},
}};
constexpr std::array<EnumName<ScheduleName>, 2> kScheduleNames{{
    {"multistep", ScheduleName::Multistep},
    {"cosine", ScheduleName::Cosine},
}};
constexpr std::array<EnumName<Precision>, 3> kPrecisions{{
    {"fp32", Precision::Fp32},
    {"tf32", Precision::Tf32},
    {"bf16", Precision::Bf16},
}};
constexpr std::array<EnumName<DataOnDevice>, 3> kDataOnDevice{{
    {"auto", DataOnDevice::Auto},
    {"true", DataOnDevice::On},
    {"false", DataOnDevice::Off},
}};

const auto& names_of(DatasetName) {
  return kDatasetNames;
}
const auto& names_of(MethodName) {
  return kMethodNames;
}
const auto& names_of(MetaData) {
  return kMetaData;
}
const auto& names_of(GeneratorResolution) {
  return kGeneratorResolutions;
}
const auto& names_of(MetaDifference) {
  return kMetaDifferences;
}
const auto& names_of(MetaUpdateOrder) {
  return kMetaUpdateOrders;
}
const auto& names_of(DeepestCe) {
  return kDeepestCe;
}
const auto& names_of(HintReduction) {
  return kHintReductions;
}
const auto& names_of(AuxWidthRule) {
  return kAuxWidthRules;
}
const auto& names_of(MetaOptimizer) {
  return kMetaOptimizers;
}
const auto& names_of(ScheduleName) {
  return kScheduleNames;
}
const auto& names_of(Precision) {
  return kPrecisions;
}
const auto& names_of(DataOnDevice) {
  return kDataOnDevice;
}

template <typename Enum>
std::string_view enum_to_string(Enum value) {
  for (const auto& entry : names_of(value)) {
    if (entry.value == value) return entry.name;
  }
  MD_CHECK(false, "enum value ", static_cast<int>(value), " has no name");
  return {};
}

template <typename Enum>
std::vector<std::string_view> choices_of() {
  std::vector<std::string_view> names;
  for (const auto& entry : names_of(Enum{})) names.push_back(entry.name);
  return names;
}

// ---- bindings: member <-> KeyValue

KeyValue to_value(int value) {
  return std::int64_t{value};
}
KeyValue to_value(std::int64_t value) {
  return value;
}
KeyValue to_value(std::uint64_t value) {
  return value;
}
KeyValue to_value(double value) {
  return value;
}
KeyValue to_value(bool value) {
  return value;
}
KeyValue to_value(const std::string& value) {
  return value;
}
KeyValue to_value(const std::vector<int>& value) {
  return value;
}
KeyValue to_value(const AuxWidthConfig& width) {
  if (width.rule == AuxWidthRule::Fixed) return std::to_string(width.channels);
  return std::string(enum_to_string(width.rule));
}
template <typename Enum, typename = std::enable_if_t<std::is_enum_v<Enum>>>
KeyValue to_value(Enum value) {
  return std::string(enum_to_string(value));
}

void from_value(const KeyValue& value, int& out) {
  out = static_cast<int>(std::get<std::int64_t>(value));
}
void from_value(const KeyValue& value, std::int64_t& out) {
  out = std::get<std::int64_t>(value);
}
void from_value(const KeyValue& value, std::uint64_t& out) {
  out = std::get<std::uint64_t>(value);
}
void from_value(const KeyValue& value, double& out) {
  out = std::get<double>(value);
}
void from_value(const KeyValue& value, bool& out) {
  out = std::get<bool>(value);
}
void from_value(const KeyValue& value, std::string& out) {
  out = std::get<std::string>(value);
}
void from_value(const KeyValue& value, std::vector<int>& out) {
  out = std::get<std::vector<int>>(value);
}
// The reader has checked the text: a rule's name or an integer >= 1.
void from_value(const KeyValue& value, AuxWidthConfig& out) {
  const std::string& text = std::get<std::string>(value);
  for (const auto& entry : kAuxWidthRules) {
    if (entry.name == text) {
      out = AuxWidthConfig{.rule = entry.value};
      return;
    }
  }
  out = AuxWidthConfig{.rule = AuxWidthRule::Fixed, .channels = std::stoi(text)};
}
template <typename Enum, typename = std::enable_if_t<std::is_enum_v<Enum>>>
void from_value(const KeyValue& value, Enum& out) {
  const std::string& text = std::get<std::string>(value);
  for (const auto& entry : names_of(out)) {
    if (entry.name == text) {
      out = entry.value;
      return;
    }
  }
  MD_CHECK(false, "no enum value is named ", text);
}

// `access` is a generic lambda returning the member of a (const or not) TrialConfig.
template <typename Access>
KeyBinding bind(Access access) {
  return KeyBinding{.get = [access](const TrialConfig& config) { return to_value(access(config)); },
                    .set = [access](TrialConfig& config,
                                    const KeyValue& value) { from_value(value, access(config)); }};
}

Range greater_than(double min) {
  return Range{.min = min, .min_open = true};
}
Range at_least(double min) {
  return Range{.min = min};
}

constexpr std::int64_t kInt64Max = std::numeric_limits<std::int64_t>::max();

std::vector<ConfigKey> make_trial_config_keys() {
  using T = KeyType;
  std::vector<ConfigKey> keys = {
      // ---- dataset
      {.path = key_path::dataset_name,
       .type = T::Choice,
       .choices = choices_of<DatasetName>(),
       .doc = "the data set's format ([below](#data-sets))",
       .binding = bind([](auto& c) -> auto& { return c.dataset.name; })},
      {.path = key_path::dataset_root,
       .type = T::String,
       .string_rule = StringRule::NonEmpty,
       .omit_when_empty = true,
       .note = "optional for `idx` when all four files are absolute paths",
       .doc = "its directory; relative idx file names resolve against it",
       .binding = bind([](auto& c) -> auto& { return c.dataset.root; })},
      {.path = "dataset.train_images",
       .type = T::String,
       .default_value = std::string{"train-images-idx3-ubyte.gz"},
       .condition = KeyCondition::IdxOnly,
       .string_rule = StringRule::NonEmpty,
       .doc = "training images, relative to `root` unless absolute, `.gz` or raw",
       .binding = bind([](auto& c) -> auto& { return c.dataset.train_images; })},
      {.path = "dataset.train_labels",
       .type = T::String,
       .default_value = std::string{"train-labels-idx1-ubyte.gz"},
       .condition = KeyCondition::IdxOnly,
       .string_rule = StringRule::NonEmpty,
       .doc = "training labels",
       .binding = bind([](auto& c) -> auto& { return c.dataset.train_labels; })},
      {.path = "dataset.test_images",
       .type = T::String,
       .default_value = std::string{"t10k-images-idx3-ubyte.gz"},
       .condition = KeyCondition::IdxOnly,
       .string_rule = StringRule::NonEmpty,
       .doc = "test images",
       .binding = bind([](auto& c) -> auto& { return c.dataset.test_images; })},
      {.path = "dataset.test_labels",
       .type = T::String,
       .default_value = std::string{"t10k-labels-idx1-ubyte.gz"},
       .condition = KeyCondition::IdxOnly,
       .string_rule = StringRule::NonEmpty,
       .doc = "test labels",
       .binding = bind([](auto& c) -> auto& { return c.dataset.test_labels; })},
      {.path = key_path::dataset_crop_size,
       .type = T::Integer,
       .default_value = std::int64_t{224},
       .condition = KeyCondition::ImagenetOnly,
       .min = 8,
       .doc = "RandomResizedCrop side (training) and center-crop side (validation)",
       .binding = bind([](auto& c) -> auto& { return c.dataset.crop_size; })},
      {.path = "dataset.resize_size",
       .type = T::Integer,
       .default_value = std::int64_t{256},
       .condition = KeyCondition::ImagenetOnly,
       .min = 8,
       .note = "≥ `crop_size`",
       .doc = "validation: the shorter side is resized to it before the center crop",
       .binding = bind([](auto& c) -> auto& { return c.dataset.resize_size; })},
      {.path = "dataset.min_scale",
       .type = T::Float,
       .default_value = 0.08,
       .condition = KeyCondition::ImagenetOnly,
       .range = Range{.min = 0, .min_open = true, .max = 1},
       .doc = "RandomResizedCrop's smallest area fraction",
       .binding = bind([](auto& c) -> auto& { return c.dataset.min_scale; })},
      {.path = "dataset.local_copy",
       .type = T::Bool,
       .default_value = false,
       .id_rule = IdRule::Reset,
       .condition = KeyCondition::ImagenetOnly,
       .doc = "copy the shards to node-local storage first "
              "([docs/cluster.md](cluster.md#staging-on-node-local-storage))",
       .binding = bind([](auto& c) -> auto& { return c.dataset.local_copy; })},
      {.path = key_path::dataset_train_count,
       .type = T::Integer,
       .default_value = std::int64_t{0},
       .id_rule = IdRule::NonDefault,
       .condition = KeyCondition::NotImagenet,
       .min = 0,
       .doc = "train on the first N training images (0: all)",
       .binding = bind([](auto& c) -> auto& { return c.dataset.train_count; })},
      {.path = key_path::dataset_validation_count,
       .type = T::Integer,
       .default_value = std::int64_t{0},
       .id_rule = IdRule::NonDefault,
       .condition = KeyCondition::NotImagenet,
       .min = 0,
       .note = "below `train_count` when that is set",
       .doc = "hold N training images out and evaluate on them instead of the test set (0: the "
              "test set)",
       .binding = bind([](auto& c) -> auto& { return c.dataset.validation_count; })},
      // ---- model
      {.path = key_path::model_arch,
       .type = T::String,
       .default_value = std::string{"resnet18_cifar"},
       .string_rule = StringRule::NonEmpty,
       .note = "a name of the zoo (below)",
       .doc = "the network",
       .binding = bind([](auto& c) -> auto& { return c.model.arch; })},
      {.path = key_path::model_num_classes,
       .type = T::Integer,
       .default_value = std::int64_t{0},
       .min = 0,
       .doc = "classes; 0: from the data set",
       .binding = bind([](auto& c) -> auto& { return c.model.num_classes; })},
      {.path = key_path::model_in_channels,
       .type = T::Integer,
       .default_value = std::int64_t{0},
       .min = 0,
       .doc = "input channels; 0: from the data set",
       .binding = bind([](auto& c) -> auto& { return c.model.in_channels; })},
      {.path = "model.init_from",
       .type = T::String,
       .default_value = std::string{},
       .note = "a checkpoint path",
       .doc = "a checkpoint whose `/model` initializes the backbone (fine-tuning); empty: random "
              "initialization",
       .binding = bind([](auto& c) -> auto& { return c.model.init_from; })},
      // ---- method
      {.path = key_path::method_name,
       .type = T::Choice,
       .default_value = std::string{"baseline"},
       .choices = choices_of<MethodName>(),
       .doc = "`baseline`: cross-entropy on the final head; `byot`: the deepest head teaches "
              "auxiliary heads; `metadistiller`: a label generator teaches them and is trained "
              "by the meta-gradient",
       .binding = bind([](auto& c) -> auto& { return c.method.name; })},
      {.path = "method.temperature",
       .type = T::Float,
       .default_value = 3.0,
       .range = greater_than(0),
       .doc = "distillation temperature T",
       .binding = bind([](auto& c) -> auto& { return c.method.temperature; })},
      {.path = "method.alpha",
       .type = T::Float,
       .default_value = 0.3,
       .range = Range{.min = 0, .max = 1},
       .doc = "weight α of the KD term against cross-entropy on the shallow heads",
       .binding = bind([](auto& c) -> auto& { return c.method.alpha; })},
      {.path = "method.hint",
       .type = T::Float,
       .default_value = 0.0,
       .range = at_least(0),
       .doc = "weight β of the BYOT feature hint",
       .binding = bind([](auto& c) -> auto& { return c.method.hint; })},
      {.path = "method.kd_temperature_squared",
       .type = T::Bool,
       .default_value = true,
       .id_rule = IdRule::NonDefault,
       .doc = "the KD term is α·T²·KL (true) or α·KL (false); the meta-gradient uses the same "
              "weight",
       .binding = bind([](auto& c) -> auto& { return c.method.kd_temperature_squared; })},
      {.path = "method.deepest_ce",
       .type = T::Choice,
       .default_value = std::string{"one"},
       .id_rule = IdRule::NonDefault,
       .choices = choices_of<DeepestCe>(),
       .doc = "the deepest head's cross-entropy weight: 1 or 1 − α",
       .binding = bind([](auto& c) -> auto& { return c.method.deepest_ce; })},
      {.path = "method.hint_reduction",
       .type = T::Choice,
       .default_value = std::string{"mean"},
       .id_rule = IdRule::NonDefault,
       .choices = choices_of<HintReduction>(),
       .doc = "the hint's squared differences averaged over the batch's elements, or summed "
              "(BYOT's form, which grows with the batch)",
       .binding = bind([](auto& c) -> auto& { return c.method.hint_reduction; })},
      {.path = "method.aux.width",
       .type = T::ChoiceOrInteger,
       .default_value = std::string{"input_quarter"},
       .id_rule = IdRule::NonDefault,
       .min = 1,
       .choices = choices_of<AuxWidthRule>(),
       .doc = "the auxiliary branch's bottleneck: max(8, C_s/4) of the stage's own width, "
              "C_last/4 of the last stage's width, or N for every head",
       .binding = bind([](auto& c) -> auto& { return c.method.aux.width; })},
      {.path = "method.meta.every",
       .type = T::Integer,
       .default_value = std::int64_t{1},
       .min = 1,
       .doc = "a generator update every k student steps",
       .binding = bind([](auto& c) -> auto& { return c.method.meta.every; })},
      {.path = "method.meta.epsilon",
       .type = T::Float,
       .default_value = 0.01,
       .range = greater_than(0),
       .doc = "the finite-difference step ε₀ (ε = ε₀/‖v‖)",
       .binding = bind([](auto& c) -> auto& { return c.method.meta.epsilon; })},
      {.path = key_path::method_meta_data,
       .type = T::Choice,
       .default_value = std::string{"next_batch"},
       .choices = choices_of<MetaData>(),
       .doc = "where the meta batch comes from: the meta loader's next batch, or a held-out "
              "split",
       .binding = bind([](auto& c) -> auto& { return c.method.meta.data; })},
      {.path = key_path::method_meta_holdout_fraction,
       .type = T::Float,
       .default_value = 0.1,
       .range = Range{.min = 0, .min_open = true, .max = 1, .max_open = true},
       .doc = "share of the training set held out when `data` is `holdout`",
       .binding = bind([](auto& c) -> auto& { return c.method.meta.holdout_fraction; })},
      {.path = "method.meta.optimizer.name",
       .type = T::Choice,
       .default_value = std::string{"adam"},
       .choices = choices_of<MetaOptimizer>(),
       .doc = "the generator's optimizer (SGD with momentum 0.9)",
       .binding = bind([](auto& c) -> auto& { return c.method.meta.optimizer.name; })},
      {.path = "method.meta.optimizer.lr",
       .type = T::Float,
       .default_value = 0.001,
       .range = greater_than(0),
       .doc = "its learning rate",
       .binding = bind([](auto& c) -> auto& { return c.method.meta.optimizer.lr; })},
      {.path = "method.meta.generator_width",
       .type = T::Integer,
       .default_value = std::int64_t{128},
       .min = 1,
       .doc = "channels of the generator's top-down pyramid",
       .binding = bind([](auto& c) -> auto& { return c.method.meta.generator_width; })},
      {.path = "method.meta.generator_resolution",
       .type = T::Choice,
       .default_value = std::string{"deepest"},
       .choices = choices_of<GeneratorResolution>(),
       .doc = "where the generator fuses and smooths "
              "([below](#the-generator-and-the-meta-gradient))",
       .binding = bind([](auto& c) -> auto& { return c.method.meta.generator_resolution; })},
      {.path = "method.meta.difference",
       .type = T::Choice,
       .default_value = std::string{"central"},
       .choices = choices_of<MetaDifference>(),
       .doc = "finite difference of the meta-gradient",
       .binding = bind([](auto& c) -> auto& { return c.method.meta.difference; })},
      {.path = key_path::method_meta_label_weight,
       .type = T::Float,
       .default_value = 1.0,
       .id_rule = IdRule::NonDefault,
       .range = at_least(0),
       .doc = "λ of the generator's label anchor",
       .binding = bind([](auto& c) -> auto& { return c.method.meta.label_weight; })},
      {.path = "method.meta.frozen",
       .type = T::Bool,
       .default_value = false,
       .id_rule = IdRule::NonDefault,
       .doc = "the control arm: the generator keeps its initialization (no meta passes)",
       .binding = bind([](auto& c) -> auto& { return c.method.meta.frozen; })},
      {.path = "method.meta.update_order",
       .type = T::Choice,
       .default_value = std::string{"student_first"},
       .id_rule = IdRule::NonDefault,
       .choices = choices_of<MetaUpdateOrder>(),
       .doc = "which of student and generator steps first",
       .binding = bind([](auto& c) -> auto& { return c.method.meta.update_order; })},
      // ---- optim
      {.path = key_path::optim_epochs,
       .type = T::Integer,
       .default_value = std::int64_t{200},
       .min = 1,
       .doc = "training epochs",
       .binding = bind([](auto& c) -> auto& { return c.optim.epochs; })},
      {.path = key_path::optim_batch_size,
       .type = T::Integer,
       .default_value = std::int64_t{128},
       .min = 1,
       .doc = "per trial, split over its ranks",
       .binding = bind([](auto& c) -> auto& { return c.optim.batch_size; })},
      {.path = key_path::optim_lr,
       .type = T::Float,
       .default_value = 0.1,
       .range = greater_than(0),
       .doc = "SGD learning rate",
       .binding = bind([](auto& c) -> auto& { return c.optim.lr; })},
      {.path = "optim.momentum",
       .type = T::Float,
       .default_value = 0.9,
       .range = Range{.min = 0, .max = 1, .max_open = true},
       .doc = "SGD momentum",
       .binding = bind([](auto& c) -> auto& { return c.optim.momentum; })},
      {.path = "optim.nesterov",
       .type = T::Bool,
       .default_value = false,
       .note = "needs `momentum` > 0",
       .doc = "Nesterov momentum",
       .binding = bind([](auto& c) -> auto& { return c.optim.nesterov; })},
      {.path = "optim.weight_decay",
       .type = T::Float,
       .default_value = 5e-4,
       .range = at_least(0),
       .doc = "weight decay",
       .binding = bind([](auto& c) -> auto& { return c.optim.weight_decay; })},
      {.path = "optim.label_smoothing",
       .type = T::Float,
       .default_value = 0.0,
       .range = Range{.min = 0, .max = 1, .max_open = true},
       .doc = "applies to every CE term of the student loss, never to the meta objective",
       .binding = bind([](auto& c) -> auto& { return c.optim.label_smoothing; })},
      {.path = "optim.schedule.name",
       .type = T::Choice,
       .default_value = std::string{"multistep"},
       .choices = choices_of<ScheduleName>(),
       .doc = "learning-rate schedule",
       .binding = bind([](auto& c) -> auto& { return c.optim.schedule.name; })},
      {.path = "optim.schedule.milestones",
       .type = T::IntegerList,
       .default_value = std::vector<int>{100, 150},
       .min = 1,
       .doc = "epochs where multistep multiplies the rate by `gamma`",
       .binding = bind([](auto& c) -> auto& { return c.optim.schedule.milestones; })},
      {.path = "optim.schedule.gamma",
       .type = T::Float,
       .default_value = 0.1,
       .range = Range{.min = 0, .min_open = true, .max = 1},
       .doc = "multistep decay factor",
       .binding = bind([](auto& c) -> auto& { return c.optim.schedule.gamma; })},
      {.path = "optim.schedule.warmup_epochs",
       .type = T::Integer,
       .default_value = std::int64_t{0},
       .min = 0,
       .doc = "linear warm-up before either schedule",
       .binding = bind([](auto& c) -> auto& { return c.optim.schedule.warmup_epochs; })},
      // ---- augment
      {.path = key_path::augment_random_crop,
       .type = T::Integer,
       .default_value = std::int64_t{4},
       .min = 0,
       .doc = "padding of the random crop; 0: no crop (cifar100, idx)",
       .binding = bind([](auto& c) -> auto& { return c.augment.random_crop; })},
      {.path = "augment.flip",
       .type = T::Bool,
       .default_value = true,
       .doc = "random horizontal flip",
       .binding = bind([](auto& c) -> auto& { return c.augment.flip; })},
      {.path = key_path::augment_cutout,
       .type = T::Integer,
       .default_value = std::int64_t{0},
       .min = 0,
       .doc = "Cutout square side; 0: none (cifar100, idx)",
       .binding = bind([](auto& c) -> auto& { return c.augment.cutout; })},
      // ---- runtime
      {.path = key_path::runtime_device,
       .type = T::String,
       .default_value = std::string{"auto"},
       .id_rule = IdRule::Reset,
       .string_rule = StringRule::Device,
       .doc = "auto: the GPU of the rank's node-local index, else the CPU",
       .binding = bind([](auto& c) -> auto& { return c.runtime.device; })},
      {.path = key_path::runtime_data_on_device,
       .type = T::Choice,
       .default_value = std::string{"auto"},
       .id_rule = IdRule::LeftOut,
       .choices = choices_of<DataOnDevice>(),
       .doc = "assemble training batches on the device (below)",
       .binding = bind([](auto& c) -> auto& { return c.runtime.data_on_device; })},
      {.path = key_path::runtime_cuda_graph,
       .type = T::Bool,
       .default_value = false,
       .id_rule = IdRule::LeftOut,
       .doc = "record a baseline or byot step once and replay it (below)",
       .binding = bind([](auto& c) -> auto& { return c.runtime.cuda_graph; })},
      {.path = "runtime.precision",
       .type = T::Choice,
       .default_value = std::string{"fp32"},
       .choices = choices_of<Precision>(),
       .doc = "how convolutions and linear layers compute (below)",
       .binding = bind([](auto& c) -> auto& { return c.runtime.precision; })},
      {.path = "runtime.threads",
       .type = T::Integer,
       .default_value = std::int64_t{0},
       .id_rule = IdRule::Reset,
       .min = 0,
       .doc = "CPU threads; 0: the library default",
       .binding = bind([](auto& c) -> auto& { return c.runtime.threads; })},
      {.path = key_path::runtime_seed,
       .type = T::Uint64,
       .default_value = std::uint64_t{0},
       .replicate = true,
       .doc = "initialization, data order and augmentation",
       .binding = bind([](auto& c) -> auto& { return c.runtime.seed; })},
      {.path = "runtime.deterministic",
       .type = T::Bool,
       .default_value = false,
       .doc = "deterministic cuDNN algorithms (the CPU always is)",
       .binding = bind([](auto& c) -> auto& { return c.runtime.deterministic; })},
      {.path = key_path::runtime_ranks_per_trial,
       .type = T::Integer,
       .default_value = std::int64_t{1},
       .min = 1,
       .doc = "data-parallel ranks per trial; the same in every trial of a sweep",
       .binding = bind([](auto& c) -> auto& { return c.runtime.ranks_per_trial; })},
      {.path = "runtime.log_every",
       .type = T::Integer,
       .default_value = std::int64_t{50},
       .id_rule = IdRule::Reset,
       .min = 1,
       .doc = "steps between `/train` rows of the log",
       .binding = bind([](auto& c) -> auto& { return c.runtime.log_every; })},
      {.path = "runtime.checkpoint_every_epochs",
       .type = T::Integer,
       .default_value = std::int64_t{1},
       .id_rule = IdRule::Reset,
       .min = 0,
       .doc = "0: checkpoint only when interrupted and at the end",
       .binding = bind([](auto& c) -> auto& { return c.runtime.checkpoint_every_epochs; })},
      {.path = "runtime.max_train_batches",
       .type = T::Integer,
       .default_value = std::int64_t{0},
       .min = 0,
       .max = kInt64Max,
       .doc = "cap on training batches per epoch, for short runs; 0: all",
       .binding = bind([](auto& c) -> auto& { return c.runtime.max_train_batches; })},
      {.path = "runtime.max_eval_batches",
       .type = T::Integer,
       .default_value = std::int64_t{0},
       .min = 0,
       .max = kInt64Max,
       .doc = "cap on batches per evaluation; 0: all",
       .binding = bind([](auto& c) -> auto& { return c.runtime.max_eval_batches; })},
  };
  return keys;
}

// ---- text

std::string json_string(std::string_view text) {
  std::string out = "\"";
  for (char c : text) {
    switch (c) {
      case '"':
        out += "\\\"";
        break;
      case '\\':
        out += "\\\\";
        break;
      case '\n':
        out += "\\n";
        break;
      default:
        if (static_cast<unsigned char>(c) < 0x20) {
          static constexpr char kHex[] = "0123456789abcdef";
          const auto byte = static_cast<unsigned char>(c);
          out += "\\u00";
          out += kHex[byte >> 4];
          out += kHex[byte & 0xf];
        } else {
          out += c;
        }
    }
  }
  return out + "\"";
}

std::string json_value(const KeyValue& value) {
  struct Visitor {
    std::string operator()(bool v) const { return v ? "true" : "false"; }
    std::string operator()(std::int64_t v) const { return std::to_string(v); }
    std::string operator()(std::uint64_t v) const { return std::to_string(v); }
    std::string operator()(double v) const { return format_yaml_number(v); }
    std::string operator()(const std::string& v) const { return json_string(v); }
    std::string operator()(const std::vector<int>& v) const {
      std::string out = "[";
      for (std::size_t i = 0; i < v.size(); ++i) out += (i > 0 ? ", " : "") + std::to_string(v[i]);
      return out + "]";
    }
  };
  return std::visit(Visitor{}, value);
}

std::string_view condition_markdown(KeyCondition condition) {
  switch (condition) {
    case KeyCondition::Always:
      return "";
    case KeyCondition::IdxOnly:
      return "idx only";
    case KeyCondition::ImagenetOnly:
      return "imagenet only";
    case KeyCondition::NotImagenet:
      return "cifar100 and idx only";
  }
  return "";
}

std::string format_bound(double value) {
  std::ostringstream out;
  out << value;
  return out.str();
}

// The allowed values of a key as plain text (the schema's "range"): "> 0", "in [0, 1)",
// ">= 8"; empty when unbounded.
std::string range_text(const ConfigKey& key) {
  switch (key.type) {
    case KeyType::Float:
      return key.range.bounded() ? key.range.describe() : std::string();
    case KeyType::Integer:
    case KeyType::ChoiceOrInteger:
    case KeyType::IntegerList: {
      const bool has_min = key.min != std::numeric_limits<std::int64_t>::min();
      const bool has_max = key.max != std::numeric_limits<int>::max() && key.max != kInt64Max;
      if (has_min && has_max) return detail::concat("in [", key.min, ", ", key.max, "]");
      if (has_min) return detail::concat(">= ", key.min);
      if (has_max) return detail::concat("<= ", key.max);
      return {};
    }
    default:
      return {};
  }
}

std::string markdown_range(const ConfigKey& key) {
  std::string text = range_text(key);
  if (text.rfind("in ", 0) == 0) text.erase(0, 3);
  for (const auto& [from, to] : {std::pair<std::string_view, std::string_view>{">=", "≥"},
                                 std::pair<std::string_view, std::string_view>{"<=", "≤"}}) {
    const std::size_t at = text.find(from);
    if (at != std::string::npos) text.replace(at, from.size(), to);
  }
  return text;
}

std::string quoted_list(const std::vector<std::string_view>& names) {
  std::string out;
  for (std::string_view name : names) {
    if (!out.empty()) out += ", ";
    out += detail::concat("`", name, "`");
  }
  return out;
}

std::string markdown_allowed(const ConfigKey& key) {
  std::vector<std::string> parts;
  std::string values;
  switch (key.type) {
    case KeyType::Choice:
      values = quoted_list(key.choices);
      break;
    case KeyType::ChoiceOrInteger:
      values = detail::concat(quoted_list(key.choices), ", an integer ", markdown_range(key));
      break;
    case KeyType::IntegerList:
      values = detail::concat("each ", markdown_range(key), ", strictly increasing");
      break;
    case KeyType::String:
      if (key.string_rule == StringRule::NonEmpty) values = "non-empty";
      if (key.string_rule == StringRule::Device) values = "`auto`, `cpu`, `cuda`, `cuda:N`";
      break;
    default:
      values = markdown_range(key);
  }
  if (!values.empty()) parts.push_back(values);
  if (!key.note.empty()) parts.emplace_back(key.note);
  if (key.condition != KeyCondition::Always) parts.emplace_back(condition_markdown(key.condition));
  std::string out;
  for (const std::string& part : parts) out += (out.empty() ? "" : "; ") + part;
  return out;
}

std::string markdown_default(const ConfigKey& key) {
  if (!key.default_value) return "required";
  const std::string text = key_value_text(key, *key.default_value);
  if (key.type == KeyType::String || key.type == KeyType::Choice ||
      key.type == KeyType::ChoiceOrInteger) {
    return detail::concat("`", text, "`");
  }
  return text;
}

std::string_view markdown_id_rule(IdRule rule) {
  return rule == IdRule::NonDefault ? "non-default" : id_rule_name(rule);
}

std::string_view top_level(std::string_view path) {
  return path.substr(0, path.find('.'));
}

}  // namespace

// ---- enum names

std::string_view to_string(DatasetName value) {
  return enum_to_string(value);
}
std::string_view to_string(MethodName value) {
  return enum_to_string(value);
}
std::string_view to_string(MetaData value) {
  return enum_to_string(value);
}
std::string_view to_string(GeneratorResolution value) {
  return enum_to_string(value);
}
std::string_view to_string(MetaDifference value) {
  return enum_to_string(value);
}
std::string_view to_string(MetaUpdateOrder value) {
  return enum_to_string(value);
}
std::string_view to_string(DeepestCe value) {
  return enum_to_string(value);
}
std::string_view to_string(HintReduction value) {
  return enum_to_string(value);
}
std::string_view to_string(AuxWidthRule value) {
  if (value == AuxWidthRule::Fixed) return "N";
  return enum_to_string(value);
}
std::string_view to_string(MetaOptimizer value) {
  return enum_to_string(value);
}
std::string_view to_string(ScheduleName value) {
  return enum_to_string(value);
}
std::string_view to_string(Precision value) {
  return enum_to_string(value);
}
std::string_view to_string(DataOnDevice value) {
  return enum_to_string(value);
}

// ---- Range

bool Range::contains(double value) const {
  const bool above = min_open ? value > min : value >= min;
  const bool below = max_open ? value < max : value <= max;
  return above && below;
}

bool Range::bounded() const {
  return !std::isinf(min) || !std::isinf(max);
}

std::string Range::describe() const {
  if (std::isinf(max)) return detail::concat(min_open ? "> " : ">= ", format_bound(min));
  return detail::concat("in ", min_open ? "(" : "[", format_bound(min), ", ", format_bound(max),
                        max_open ? ")" : "]");
}

// ---- the tables

const std::vector<ConfigKey>& trial_config_keys() {
  static const std::vector<ConfigKey> keys = make_trial_config_keys();
  return keys;
}

const ConfigKey* find_trial_config_key(std::string_view path) {
  for (const ConfigKey& key : trial_config_keys()) {
    if (key.path == path) return &key;
  }
  return nullptr;
}

const ConfigKey& replicate_key() {
  static const ConfigKey& found = []() -> const ConfigKey& {
    const auto& keys = trial_config_keys();
    const auto row =
        std::find_if(keys.begin(), keys.end(), [](const ConfigKey& key) { return key.replicate; });
    MD_CHECK(row != keys.end(), "the trial key table has no replicate key");
    return *row;
  }();
  return found;
}

std::vector<std::string> keys_outside_trial_id() {
  std::vector<std::string> paths;
  for (const ConfigKey& key : trial_config_keys()) {
    if (key.id_rule == IdRule::Reset || key.id_rule == IdRule::LeftOut) {
      paths.emplace_back(key.path);
    }
  }
  return paths;
}

std::string_view condition_text(KeyCondition condition) {
  switch (condition) {
    case KeyCondition::Always:
      return "";
    case KeyCondition::IdxOnly:
      return "dataset.name idx";
    case KeyCondition::ImagenetOnly:
      return "dataset.name imagenet";
    case KeyCondition::NotImagenet:
      return "dataset.name cifar100 or idx";
  }
  return "";
}

bool key_exists(const ConfigKey& key, const TrialConfig& config) {
  switch (key.condition) {
    case KeyCondition::Always:
      return true;
    case KeyCondition::IdxOnly:
      return config.dataset.name == DatasetName::Idx;
    case KeyCondition::ImagenetOnly:
      return config.dataset.name == DatasetName::Imagenet;
    case KeyCondition::NotImagenet:
      return config.dataset.name != DatasetName::Imagenet;
  }
  return false;
}

const std::vector<SweepKey>& sweep_spec_keys() {
  static const std::vector<SweepKey> keys = {
      {"name", "string", "the file's stem",
       "the sweep's name, recorded in every trial log (`sweep` attribute)"},
      {"base", "string or mapping", "required",
       "a trial config file, relative to the sweep file, or an inline trial config"},
      {"cases", "list of mappings", "none",
       "arms that set several keys together: a non-empty list of `{key.path: value, ...}`, "
       "crossed with the grid (the cases varying slowest); a key may not be in both"},
      {"grid", "mapping", "none",
       "trial key path → non-empty list of values; the cartesian product in the order written, "
       "the first key varying slowest"},
      {"random", "mapping", "none",
       "a seeded random search: `n` samples of the keys of `space`, the same n for every grid "
       "point"},
      {"random.n", "int ≥ 1", "required with `random`",
       "the number of samples; grid × random: the same n samples for every grid point"},
      {"random.seed", "int ≥ 0", "0", "seed of the samples' generator"},
      {"random.space", "mapping", "required with `random`",
       "trial key path → one distribution: `{uniform: [low, high]}`, `{log_uniform: [low, "
       "high]}` (low > 0), `{choice: [v1, v2, ...]}`; sample j draws every key in the order "
       "written"},
      {"early_stop", "mapping", "none",
       "stop unpromising trials early by asynchronous successive halving (ASHA); "
       "[docs/cluster.md](cluster.md#early-stopping-asha)"},
      {"early_stop.method", "string", "required with `early_stop`", "`asha`"},
      {"early_stop.metric", "string", "acc_final",
       "the /epoch accuracy a rung ranks by: `acc_final`, `acc_ensemble` or `acc_head<s>`"},
      {"early_stop.rungs", "list of int", "required with `early_stop`",
       "the epochs at which trials are ranked, strictly increasing, each ≤ every trial's "
       "`optim.epochs`"},
      {"early_stop.reduction", "int ≥ 2", "3",
       "the top floor(n / reduction) of the n units that reached a rung go on"},
      {"early_stop.by", "string",
       "config when the grid or the cases set `runtime.seed`, else trial",
       "`config`: all seeds of a configuration go on or stop together on their score; `trial`: "
       "each trial alone"},
      {"early_stop.score", "string", "mean",
       "`by: config`: `mean` of the seeds, or `lower_bound` of its 95% t interval"},
      {"budget", "mapping", "none",
       "with `early_stop`: no promotion or new trial starts once this much was spent"},
      {"budget.gpu_hours", "number > 0", "none", "GPU-hours (wall time × ranks on GPUs)"},
      {"budget.epochs", "number > 0", "none", "trial-epochs trained (for CPU runs)"},
  };
  return keys;
}

std::vector<std::string_view> child_segments(const std::vector<std::string_view>& paths,
                                             std::string_view parent) {
  std::vector<std::string_view> children;
  for (std::string_view rest : paths) {
    if (!parent.empty()) {
      if (rest.size() <= parent.size() || rest.substr(0, parent.size()) != parent ||
          rest[parent.size()] != '.') {
        continue;
      }
      rest.remove_prefix(parent.size() + 1);
    }
    const std::string_view child = rest.substr(0, rest.find('.'));
    if (std::find(children.begin(), children.end(), child) == children.end()) {
      children.push_back(child);
    }
  }
  return children;
}

std::vector<std::string_view> sweep_spec_child_keys(std::string_view parent) {
  std::vector<std::string_view> paths;
  for (const SweepKey& key : sweep_spec_keys()) paths.push_back(key.path);
  return child_segments(paths, parent);
}

// ---- printing

std::string key_value_text(const ConfigKey& key, const KeyValue& value) {
  struct Visitor {
    const ConfigKey& key;
    std::string operator()(bool v) const { return v ? "true" : "false"; }
    std::string operator()(std::int64_t v) const { return std::to_string(v); }
    std::string operator()(std::uint64_t v) const { return std::to_string(v); }
    std::string operator()(double v) const { return format_yaml_number(v); }
    std::string operator()(const std::string& v) const {
      if (key.type == KeyType::String && v.empty()) return "\"\"";
      return v;
    }
    std::string operator()(const std::vector<int>& v) const {
      std::string out = "[";
      for (std::size_t i = 0; i < v.size(); ++i) out += (i > 0 ? ", " : "") + std::to_string(v[i]);
      return out + "]";
    }
  };
  return std::visit(Visitor{key}, value);
}

std::string_view to_string(KeyType type) {
  switch (type) {
    case KeyType::String:
      return "string";
    case KeyType::Integer:
      return "int";
    case KeyType::Uint64:
      return "uint64";
    case KeyType::Float:
      return "float";
    case KeyType::Bool:
      return "bool";
    case KeyType::Choice:
      return "choice";
    case KeyType::ChoiceOrInteger:
      return "choice or int";
    case KeyType::IntegerList:
      return "list of int";
  }
  return "?";
}

std::string_view id_rule_name(IdRule rule) {
  switch (rule) {
    case IdRule::Always:
      return "yes";
    case IdRule::NonDefault:
      return "non_default";
    case IdRule::Reset:
    case IdRule::LeftOut:
      return "no";
  }
  return "?";
}

std::string config_schema_json() {
  std::string out = "[\n";
  bool first = true;
  const auto open = [&] {
    out += first ? "  {" : ",\n  {";
    first = false;
  };
  for (const ConfigKey& key : trial_config_keys()) {
    open();
    out += detail::concat("\"scope\": \"trial\", \"path\": ", json_string(key.path),
                          ", \"type\": ", json_string(to_string(key.type)), ", \"default\": ",
                          key.default_value ? json_value(*key.default_value) : "null");
    if (!key.default_value) out += ", \"required\": true";
    out += detail::concat(", \"in_trial_id\": ", json_string(id_rule_name(key.id_rule)));
    if (key.id_rule == IdRule::Reset || key.id_rule == IdRule::LeftOut) {
      out += detail::concat(
          ", \"id_rule\": ",
          json_string(key.id_rule == IdRule::Reset ? "reset to default" : "left out of the text"));
    }
    if (!key.choices.empty()) {
      out += ", \"choices\": [";
      for (std::size_t i = 0; i < key.choices.size(); ++i) {
        out += (i > 0 ? ", " : "") + json_string(key.choices[i]);
      }
      out += "]";
    }
    if (const std::string range = range_text(key); !range.empty()) {
      out += ", \"range\": " + json_string(range);
    }
    if (key.condition != KeyCondition::Always) {
      out += ", \"exists_when\": " + json_string(condition_text(key.condition));
    }
    if (key.replicate) out += ", \"replicate\": true";
    if (!key.note.empty()) out += ", \"note\": " + json_string(key.note);
    out += ", \"doc\": " + json_string(key.doc) + "}";
  }
  for (const SweepKey& key : sweep_spec_keys()) {
    open();
    out += detail::concat("\"scope\": \"sweep\", \"path\": ", json_string(key.path),
                          ", \"type\": ", json_string(key.type),
                          ", \"default\": null, \"default_text\": ", json_string(key.default_),
                          ", \"in_trial_id\": \"no\", \"doc\": ", json_string(key.doc), "}");
  }
  return out + "\n]\n";
}

std::string config_markdown() {
  std::string out;
  std::string_view section;
  const auto close = [&] {
    if (!section.empty()) out += detail::concat("<!-- END GENERATED keys:", section, " -->\n");
  };
  for (const ConfigKey& key : trial_config_keys()) {
    if (top_level(key.path) != section) {
      close();
      section = top_level(key.path);
      out += detail::concat("<!-- BEGIN GENERATED keys:", section,
                            " (metadistill config --markdown) -->\n",
                            "| key | type | default | allowed | in id | description |\n",
                            "| --- | --- | --- | --- | --- | --- |\n");
    }
    out += detail::concat("| `", key.path, "` | ", to_string(key.type), " | ",
                          markdown_default(key), " | ", markdown_allowed(key), " | ",
                          markdown_id_rule(key.id_rule), " | ", key.doc, " |\n");
  }
  close();
  out +=
      "<!-- BEGIN GENERATED keys:sweep (metadistill config --markdown) -->\n"
      "| key | type | default | description |\n"
      "| --- | --- | --- | --- |\n";
  for (const SweepKey& key : sweep_spec_keys()) {
    out += detail::concat("| `", key.path, "` | ", key.type, " | ", key.default_, " | ", key.doc,
                          " |\n");
  }
  out += "<!-- END GENERATED keys:sweep -->\n";
  return out;
}

std::string default_trial_yaml() {
  const TrialConfig config = parse_trial_config(
      "dataset: {name: idx, root: /usr/share/datasets/fashion-mnist}\n", "<defaults>");
  return "# Every key of a trial config at its default (metadistill config --defaults).\n"
         "# dataset.name and dataset.root have no default: shown here is Fashion-MNIST as\n"
         "# Debian's dataset-fashion-mnist installs it. The four file keys exist for idx only;\n"
         "# cifar100 and imagenet have their own dataset keys (docs/config.md).\n" +
         to_yaml(config);
}

}  // namespace md::io
