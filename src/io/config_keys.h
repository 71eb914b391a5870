// The key tables: every trial-config key and every sweep-file key declared once, with its type,
// default, allowed values, trial-id rule, the condition under which it exists and a one-line
// doc. config.cpp reads, validates, fills defaults, applies `--set` overrides, writes the
// canonical YAML and hashes the trial id from the trial table; the report takes its default
// grouping exclusions from it; `metadistill config` prints it (JSON schema, Markdown for
// docs/config.md, the default trial YAML). A row binds to its member of TrialConfig by accessor
// functions. Cross-key rules that are not one key's business (dataset.root required unless four
// absolute idx paths, validation_count < train_count, resize_size >= crop_size, nesterov needs
// momentum) stay small explicit functions in config.cpp; `note` only documents them here.
// Adding a key: add one row in config_keys.cpp (and its member in config.h); a new key's id rule
// must be IdRule::NonDefault so that the ids of existing trials stay. No yaml-cpp type here.
#pragma once

#include <cstdint>
#include <functional>
#include <limits>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "io/config.h"

namespace md::io {

// The dotted paths that code outside the table names (in messages, as the replicate key, when
// reading a log's config): their rows take the path from here, so each path is spelled once
// (tools/check_key_paths.py checks that no other string literal of src/ or analysis/ spells one).
namespace key_path {
inline constexpr std::string_view dataset_name{"dataset.name"};
inline constexpr std::string_view dataset_root{"dataset.root"};
inline constexpr std::string_view dataset_train_count{"dataset.train_count"};
inline constexpr std::string_view dataset_validation_count{"dataset.validation_count"};
inline constexpr std::string_view dataset_crop_size{"dataset.crop_size"};
inline constexpr std::string_view model_arch{"model.arch"};
inline constexpr std::string_view model_num_classes{"model.num_classes"};
inline constexpr std::string_view model_in_channels{"model.in_channels"};
inline constexpr std::string_view method_name{"method.name"};
inline constexpr std::string_view method_meta_data{"method.meta.data"};
inline constexpr std::string_view method_meta_holdout_fraction{"method.meta.holdout_fraction"};
inline constexpr std::string_view method_meta_label_weight{"method.meta.label_weight"};
inline constexpr std::string_view optim_lr{"optim.lr"};
inline constexpr std::string_view optim_epochs{"optim.epochs"};
inline constexpr std::string_view optim_batch_size{"optim.batch_size"};
inline constexpr std::string_view runtime_seed{"runtime.seed"};
inline constexpr std::string_view runtime_device{"runtime.device"};
inline constexpr std::string_view runtime_cuda_graph{"runtime.cuda_graph"};
inline constexpr std::string_view runtime_ranks_per_trial{"runtime.ranks_per_trial"};
inline constexpr std::string_view runtime_data_on_device{"runtime.data_on_device"};
inline constexpr std::string_view augment_random_crop{"augment.random_crop"};
inline constexpr std::string_view augment_cutout{"augment.cutout"};
}  // namespace key_path

// How a key is written and read. Choice: one of `choices`; ChoiceOrInteger: one of `choices` or
// an integer >= min (method.aux.width); IntegerList: integers >= min, strictly increasing.
enum class KeyType { String, Integer, Uint64, Float, Bool, Choice, ChoiceOrInteger, IntegerList };
// Extra rule for String keys: any string (null reads as ""), non-empty, or a device name.
enum class StringRule { Any, NonEmpty, Device };
// What the trial id hashes of a key: always; only when away from its default (every key added
// after ids were pinned); its default whatever its value (reset); nothing (left out of the
// hashed text: keys that were added later and never change a result).
enum class IdRule { Always, NonDefault, Reset, LeftOut };
// When a key exists (may be written, and is written by to_yaml): always, or only for some
// dataset.name values.
enum class KeyCondition { Always, IdxOnly, ImagenetOnly, NotImagenet };

// A key's value, independent of its member's C++ type: integers as int64 (uint64 for Uint64),
// choices (and ChoiceOrInteger, "16") by their YAML spelling.
using KeyValue =
    std::variant<bool, std::int64_t, std::uint64_t, double, std::string, std::vector<int>>;

// A bound on a number: value > min or >= min, and value < max or <= max.
struct Range {
  double min = -std::numeric_limits<double>::infinity();
  bool min_open = false;
  double max = std::numeric_limits<double>::infinity();
  bool max_open = false;

  bool contains(double value) const;
  bool bounded() const;          // not (-inf, inf)
  std::string describe() const;  // "> 0", ">= 0", "in [0, 1)"
};

struct KeyBinding {
  std::function<KeyValue(const TrialConfig&)> get;
  std::function<void(TrialConfig&, const KeyValue&)> set;
};

struct ConfigKey {
  std::string_view path{};  // dotted, e.g. "method.meta.optimizer.lr"
  KeyType type = KeyType::String;
  // Empty: required (dataset.name, dataset.root). For IdxOnly keys the default in that
  // condition (the struct's own default is then "").
  std::optional<KeyValue> default_value{};
  IdRule id_rule = IdRule::Always;
  KeyCondition condition = KeyCondition::Always;
  StringRule string_rule = StringRule::Any;
  std::int64_t min = std::numeric_limits<std::int64_t>::min();  // Integer, IntegerList
  std::int64_t max = std::numeric_limits<int>::max();
  Range range{};                            // Float
  std::vector<std::string_view> choices{};  // Choice, ChoiceOrInteger
  bool omit_when_empty = false;             // written only when not "" (dataset.root)
  bool replicate = false;   // the replicate key (the seed): what a report's group averages over
  std::string_view note{};  // a cross-key rule, for the docs ("needs ...")
  std::string_view doc{};
  KeyBinding binding{};
};

// Every trial-config key, in canonical (to_yaml) order.
const std::vector<ConfigKey>& trial_config_keys();
// The row of a dotted path; nullptr when there is none.
const ConfigKey* find_trial_config_key(std::string_view path);
// The replicate key's row (the one with `replicate`: runtime.seed).
const ConfigKey& replicate_key();
// The keys whose values never change a trial's result (IdRule Reset and LeftOut), in table order.
std::vector<std::string> keys_outside_trial_id();
// Whether `key` exists for this config (its condition on dataset.name holds).
bool key_exists(const ConfigKey& key, const TrialConfig& config);
// "dataset.name idx", "dataset.name imagenet", "dataset.name cifar100 or idx"; "" for Always.
std::string_view condition_text(KeyCondition condition);

// A key of a sweep file (src/sweep/spec.cpp), for messages and docs.
struct SweepKey {
  std::string_view path;      // "name", "random.n"
  std::string_view type;      // as the docs spell it: "string or mapping", "int"
  std::string_view default_;  // as the docs spell it: "the file's stem", "required", "0"
  std::string_view doc;
};
const std::vector<SweepKey>& sweep_spec_keys();
// The distinct first segments below `parent` ("" for the top level) of dotted `paths`, in
// their order: the keys the mapping at `parent` allows, of either table.
std::vector<std::string_view> child_segments(const std::vector<std::string_view>& paths,
                                             std::string_view parent);
// The keys directly under `parent` ("" for the top level, "random"), in table order.
std::vector<std::string_view> sweep_spec_child_keys(std::string_view parent);

// The YAML text of a value as to_yaml writes it ("0.1", "[100, 150]", "\"\"").
std::string key_value_text(const ConfigKey& key, const KeyValue& value);
std::string_view to_string(KeyType type);    // "string", "int", "choice or int", ...
std::string_view id_rule_name(IdRule rule);  // "yes", "non_default", "no"

// `metadistill config`: the tables as a JSON array (one object per key: scope "trial" or
// "sweep", path, type, default, in_trial_id, doc, and choices, range, exists_when, required,
// note where any); the Markdown key tables of docs/config.md, each between
// "<!-- BEGIN GENERATED keys:SECTION -->" and "<!-- END GENERATED keys:SECTION -->" lines;
// the full default trial config as YAML (an idx Fashion-MNIST dataset, commented).
std::string config_schema_json();
std::string config_markdown();
std::string default_trial_yaml();

}  // namespace md::io
