// Trial configuration (DESIGN.md §6 "Trial config (YAML)"): the typed, validated form of a
// trial's YAML file plus `--set key.path=value` overrides, its canonical YAML text (stored in
// every trial log, and the input of the trial id), and an opaque YAML tree for the sweep layer.
// Every user mistake is an md::InputError naming the source, the full key path and, where
// known, the line or the override that caused it. yaml-cpp stays private to config.cpp: no type
// of it appears here, so nothing above io needs its headers. This file knows nothing about
// models, data or training: names like model.arch are passed on unchecked beyond their syntax.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace md::io {

enum class DatasetName { Cifar100, Idx, Imagenet };
enum class MethodName { Baseline, Byot, MetaDistiller };
enum class MetaData { NextBatch, Holdout };
enum class MetaOptimizer { Sgd, Adam };
enum class GeneratorResolution { Deepest, Stage };
enum class MetaDifference { Central, Forward };
enum class MetaUpdateOrder { StudentFirst, GeneratorFirst };
// method.deepest_ce: one | one_minus_alpha; method.hint_reduction: mean | sum;
// method.aux.width: input_quarter | last_stage_quarter | N (AuxWidthConfig).
enum class DeepestCe { One, OneMinusAlpha };
enum class HintReduction { Mean, Sum };
enum class AuxWidthRule { InputQuarter, LastStageQuarter, Fixed };
enum class ScheduleName { Multistep, Cosine };
// runtime.precision: how convolutions and linear layers compute (backend::MathPrecision).
enum class Precision { Fp32, Tf32, Bf16 };
// runtime.data_on_device: auto | true | false (see RuntimeConfig).
enum class DataOnDevice { Auto, On, Off };

// The YAML spelling of each enum value: cifar100, idx, imagenet, baseline, byot, metadistiller,
// next_batch, holdout, sgd, adam, multistep, cosine, fp32, bf16; auto, true, false; one,
// one_minus_alpha; mean, sum; input_quarter, last_stage_quarter (Fixed has no name: it is N).
std::string_view to_string(DatasetName value);
std::string_view to_string(MethodName value);
std::string_view to_string(MetaData value);
std::string_view to_string(MetaOptimizer value);
std::string_view to_string(GeneratorResolution value);
std::string_view to_string(MetaDifference value);
std::string_view to_string(MetaUpdateOrder value);
std::string_view to_string(DeepestCe value);
std::string_view to_string(HintReduction value);
std::string_view to_string(AuxWidthRule value);
std::string_view to_string(ScheduleName value);
std::string_view to_string(Precision value);
std::string_view to_string(DataOnDevice value);

// dataset: name and root are required. The four file keys exist only for name idx (an error
// otherwise); they are relative to root unless absolute, `.gz` or raw, and default to the
// Fashion-MNIST names train-images-idx3-ubyte.gz, train-labels-idx1-ubyte.gz,
// t10k-images-idx3-ubyte.gz, t10k-labels-idx1-ubyte.gz. For cifar100 and imagenet they are empty.
// The imagenet keys (root = a `metadistill pack-imagenet` output) exist only for name imagenet:
// crop_size (RandomResizedCrop and center-crop side), resize_size (validation: shorter side
// resized to it before the center crop), min_scale (RandomResizedCrop's smallest area fraction),
// local_copy (stage the shards on node-local storage first: $SLURM_TMPDIR, else $TMPDIR, else
// /tmp; not part of the trial id, like runtime.device).
struct DatasetConfig {
  DatasetName name = DatasetName::Cifar100;
  std::string root;
  std::string train_images;
  std::string train_labels;
  std::string test_images;
  std::string test_labels;
  int crop_size = 224;
  int resize_size = 256;
  double min_scale = 0.08;
  bool local_copy = false;
  // cifar100 and idx only. train_count: train on the first N training images (0: all).
  // validation_count: hold N of those out (a split fixed for every seed) and evaluate on them
  // instead of the test set, which is then never read (0: evaluate on the test set).
  std::int64_t train_count = 0;
  std::int64_t validation_count = 0;
  bool operator==(const DatasetConfig&) const = default;
};

struct ModelConfig {
  std::string arch = "resnet18_cifar";
  int num_classes = 0;    // 0: taken from the data set
  int in_channels = 0;    // 0: taken from the data set
  std::string init_from;  // checkpoint to fine-tune from; empty: none (existence not checked here)
  bool operator==(const ModelConfig&) const = default;
};

// method.meta.optimizer: the generator's optimizer, {name: sgd | adam, lr: 0.001}.
struct MetaOptimizerConfig {
  MetaOptimizer name = MetaOptimizer::Adam;
  double lr = 0.001;
  bool operator==(const MetaOptimizerConfig&) const = default;
};

// method.meta: used by metadistiller only; accepted (and checked) with every method so that one
// base config serves a sweep over method.name.
struct MetaConfig {
  int every = 1;          // update the generator every `every` student steps
  double epsilon = 0.01;  // finite-difference step ε₀ (ε = ε₀/‖v‖)
  MetaData data = MetaData::NextBatch;
  double holdout_fraction = 0.1;  // of the training set, when data is holdout
  MetaOptimizerConfig optimizer;
  int generator_width = 128;
  // deepest: every stage map is average-pooled to the deepest stage's grid before the top-down
  // sum and the 3x3 smoothing (whose outputs are globally pooled anyway); stage: each level is
  // smoothed at its own stage's resolution (the costlier original pyramid).
  GeneratorResolution generator_resolution = GeneratorResolution::Deepest;
  // central: (θ+ − θ−)/2ε, error O(ε²); forward: (θ+ − θ)/ε, reusing the step's logits at θ (one
  // student forward fewer per meta step), error O(ε).
  MetaDifference difference = MetaDifference::Central;
  // λ of the generator's label anchor: G minimizes F(φ) + λ·Σ_s CE(u_s, y). Without it (0) the
  // one-step meta objective, linear in the targets, drives them to one-hot targets of one class
  // and the shallow heads collapse (docs/method.md).
  double label_weight = 1.0;
  // The control arm: G initialized as usual and never updated (no meta passes).
  bool frozen = false;
  // student_first: the student steps with G's targets at φ, then G is updated; generator_first
  // (DARTS, Meta-Weight-Net): G is updated first and the student steps with the new targets.
  MetaUpdateOrder update_order = MetaUpdateOrder::StudentFirst;
  bool operator==(const MetaConfig&) const = default;
};

// method.aux: the auxiliary (BYOT) branch of every shallow stage. width: its bottleneck width,
// input_quarter = max(8, C_s/4) with C_s the stage's own width (the default, the behaviour before
// the key existed), last_stage_quarter = C_last/4 (the public BYOT code: 128 for every resnet18
// head), or an integer N >= 1 for every head. `channels` is N for Fixed, 0 otherwise.
struct AuxWidthConfig {
  AuxWidthRule rule = AuxWidthRule::InputQuarter;
  int channels = 0;
  bool operator==(const AuxWidthConfig&) const = default;
};

struct AuxConfig {
  AuxWidthConfig width;
  bool operator==(const AuxConfig&) const = default;
};

// The defaults of kd_temperature_squared, deepest_ce, hint_reduction and aux are the behaviour
// from before they existed; docs/byot_reference.md lists the public BYOT code's values. They
// enter the trial id only away from their defaults.
struct MethodConfig {
  MethodName name = MethodName::Baseline;
  double temperature = 3.0;
  double alpha = 0.3;
  double hint = 0.0;  // BYOT feature-hint weight β
  // The KD term is α·T²·KL (true) or α·KL (false); the meta-gradient weights ∂KL/∂u the same way.
  bool kd_temperature_squared = true;
  DeepestCe deepest_ce = DeepestCe::One;  // the deepest head's CE weight: 1 or 1 − α
  // The hint D(h_s, h_S): mean of the squared differences over the batch's N×W elements, or
  // their sum (BYOT's feature_loss_function, whose size grows with the batch).
  HintReduction hint_reduction = HintReduction::Mean;
  AuxConfig aux;
  MetaConfig meta;
  bool operator==(const MethodConfig&) const = default;
};

struct ScheduleConfig {
  ScheduleName name = ScheduleName::Multistep;
  std::vector<int> milestones = {100, 150};  // epochs, strictly increasing (multistep)
  double gamma = 0.1;                        // multistep decay factor
  int warmup_epochs = 0;                     // linear warm-up before either schedule
  bool operator==(const ScheduleConfig&) const = default;
};

struct OptimConfig {
  int epochs = 200;
  int batch_size = 128;  // per trial (split over its ranks)
  double lr = 0.1;
  double momentum = 0.9;
  bool nesterov = false;
  double weight_decay = 5e-4;
  double label_smoothing = 0.0;
  ScheduleConfig schedule;
  bool operator==(const OptimConfig&) const = default;
};

struct AugmentConfig {
  int random_crop = 4;  // padding of the random crop; 0: no crop
  bool flip = true;     // random horizontal flip
  int cutout = 0;       // Cutout square side; 0: none
  bool operator==(const AugmentConfig&) const = default;
};

struct RuntimeConfig {
  std::string device = "auto";  // auto | cpu | cuda | cuda:N
  // Training batches assembled on the device from a device-resident copy of an in-memory set
  // (cifar100, idx): true, false, or auto (true on a CUDA device for cifar100 and idx). The
  // batches are bit-identical either way; not part of the trial id, like device.
  DataOnDevice data_on_device = DataOnDevice::Auto;
  // Baseline and BYOT steps recorded once as a CUDA graph and replayed (train::StepCapture).
  // Results are the same either way; not part of the trial id, like device.
  bool cuda_graph = false;
  Precision precision = Precision::Fp32;
  int threads = 0;  // CPU threads; 0: the library default
  std::uint64_t seed = 0;
  bool deterministic = false;
  int ranks_per_trial = 1;
  int log_every = 50;                  // steps between /train rows
  int checkpoint_every_epochs = 1;     // 0: checkpoint only when interrupted and at the end
  std::int64_t max_train_batches = 0;  // per epoch; 0: all (short runs and tests)
  std::int64_t max_eval_batches = 0;   // per evaluation; 0: all
  bool operator==(const RuntimeConfig&) const = default;
};

struct TrialConfig {
  DatasetConfig dataset;
  ModelConfig model;
  MethodConfig method;
  OptimConfig optim;
  AugmentConfig augment;
  RuntimeConfig runtime;
  // Where the config came from, for messages: a file name, "<inline>", a sweep entry. Not part
  // of the configuration: ignored by operator==, to_yaml and trial_id.
  std::string source;

  // Equal configurations (every key), whatever their source.
  bool operator==(const TrialConfig& other) const;
};

// Reads a trial config file, applies the overrides ("key.path=value", the value parsed as YAML:
// a scalar, or a flow sequence/mapping such as optim.schedule.milestones=[30,60]) to the YAML
// tree in order, validates, and fills the defaults. InputError on a missing file, a YAML syntax
// error (with line and column), an override without '=', an unknown key at any level (listing
// the allowed keys), a wrong type, an out-of-range or unknown enum value (listing the allowed
// values), or a missing dataset.name/dataset.root. Overrides are checked exactly like file keys;
// their messages name the override instead of a line.
TrialConfig load_trial_config(const std::string& path,
                              const std::vector<std::string>& overrides = {});
// The same for YAML text; source_name ("<inline>", a file name) prefixes every message.
TrialConfig parse_trial_config(const std::string& yaml_text, const std::string& source_name,
                               const std::vector<std::string>& overrides = {});

// The resolved config as canonical YAML: every key, defaults included, in the fixed order of
// DESIGN.md §6, block style (flow only for milestones). Numbers are printed exactly (shortest
// round-trip form, floats always with a '.'), so parse_trial_config(to_yaml(c)) == c.
std::string to_yaml(const TrialConfig& config);

// A trial's stable id: 16 lowercase hex digits of the 64-bit FNV-1a hash of to_yaml(config)
// after these keys, which do not change a trial's result, are reset to their defaults:
// runtime.device, runtime.threads, runtime.log_every, runtime.checkpoint_every_epochs (and
// runtime.data_on_device and runtime.cuda_graph, which the hashed text leaves out, so ids from
// before them stay). The same resolved config always gives the same id, whatever the key order
// or spelling of its input.
std::string trial_id(const TrialConfig& config);

// The text a YAML reader (yaml-cpp, PyYAML) reads back as exactly this double: the shortest
// round-trip form, with a '.' ("3.0", "0.1", "5.0e-04"). Finite values only.
std::string format_yaml_number(double value);

class ConfigTree;

// Validates a trial config tree and fills the defaults, with the same checks and messages as
// parse_trial_config. source_name names the origin in messages and in TrialConfig::source;
// empty: the tree's own source name. Key paths in messages are prefixed by the tree's path
// when it is not a document root (e.g. "base.optim.lr" for a sweep's inline base config).
TrialConfig resolve(const ConfigTree& tree, const std::string& source_name = {});

// A YAML document (or a part of one) as a value: copies are deep and independent. Used for trial
// configs and by the sweep layer (base config, grid values, overrides per trial). Every node
// remembers where it came from (its line and column in the source, or the override that set
// it), so messages about it point there. Accessors throw InputError naming the source and the
// node's key path when the node is not of the kind asked for.
class ConfigTree {
 public:
  enum class Kind { Null, Scalar, Sequence, Mapping };

  // A missing or unreadable file, or a YAML syntax error, duplicate key, non-scalar key or more
  // than one document: InputError.
  static ConfigTree from_file(const std::string& path);
  static ConfigTree from_text(const std::string& text, const std::string& source_name);

  ConfigTree(const ConfigTree& other);
  ConfigTree& operator=(const ConfigTree& other);
  ConfigTree(ConfigTree&& other) noexcept;
  ConfigTree& operator=(ConfigTree&& other) noexcept;
  ~ConfigTree();

  ConfigTree clone() const { return *this; }

  const std::string& source_name() const;
  // Key path of this node in its document ("" for the root, "grid", "base.optim", "x[2]").
  const std::string& path() const;
  Kind kind() const;

  // Mappings. Keys are single keys and may contain dots (sweep grid keys do).
  std::vector<std::string> keys() const;  // in document order
  bool contains(const std::string& key) const;
  ConfigTree child(const std::string& key) const;  // InputError when absent
  // Sequences.
  std::size_t size() const;
  ConfigTree element(std::size_t index) const;
  // Scalars: the text as written (quotes removed).
  const std::string& scalar() const;
  // True for a quoted ('5', "5") or string-tagged scalar, which never reads as a number or bool.
  bool is_quoted() const;

  // Throws InputError "<source>: <path>: <message> (line L, column C | from <override>)".
  [[noreturn]] void fail(const std::string& message) const;

  // Sets the node at a dotted key path (relative to this node, which must be a mapping or null)
  // to a YAML value, creating the mappings on the way. `origin` says where the value came from
  // in messages ("--set optim.lr=0.2", "sweep.yaml grid model.arch"); empty: "--set path=value"
  // for a text value, "set path" for a tree. The path is not checked against the trial schema
  // here (resolve does that). InputError when the path is malformed, passes through a scalar or
  // sequence, or the value is not valid YAML.
  void set(const std::string& key_path, const std::string& yaml_value,
           const std::string& origin = {});
  void set(const std::string& key_path, const ConfigTree& value, const std::string& origin = {});
  // Applies "key.path=value" (the `--set` argument); InputError without '=' or with an empty key.
  void apply_override(const std::string& assignment);

  // Block-style YAML that from_text reads back as the same tree (comments and anchors are not
  // kept; quoted scalars stay quoted).
  std::string to_text() const;

  struct Impl;

 private:
  explicit ConfigTree(std::unique_ptr<Impl> impl);
  friend TrialConfig resolve(const ConfigTree& tree, const std::string& source_name);
  std::unique_ptr<Impl> impl_;
};

}  // namespace md::io
