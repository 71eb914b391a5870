// The key table (src/io/config_keys.*): it lists exactly the keys to_yaml writes, its defaults
// are the structs' defaults, each key's id rule is what trial_id does with it, the sweep table
// gives the sweep file's keys, and the default config printed by `metadistill config
// --defaults` reads back as itself. (The JSON and the generated docs are checked by
// tools/config_generated.py, registered beside this test.)
#include <gtest/gtest.h>

#include <algorithm>
#include <set>
#include <string>
#include <vector>

#include "io/config.h"
#include "io/config_keys.h"

namespace md::io {
namespace {

// The dotted paths of the leaves (non-mappings) of a YAML tree.
void collect_leaves(const ConfigTree& node, const std::string& prefix,
                    std::vector<std::string>& leaves) {
  if (node.kind() != ConfigTree::Kind::Mapping) {
    leaves.push_back(prefix);
    return;
  }
  for (const std::string& key : node.keys()) {
    collect_leaves(node.child(key), prefix.empty() ? key : prefix + "." + key, leaves);
  }
}

std::vector<std::string> written_paths(const TrialConfig& config) {
  std::vector<std::string> leaves;
  collect_leaves(ConfigTree::from_text(to_yaml(config), "<to_yaml>"), "", leaves);
  return leaves;
}

// One minimal config per dataset kind (and the rootless idx form).
std::vector<TrialConfig> minimal_configs() {
  return {
      parse_trial_config("dataset: {name: cifar100, root: /d}\n", "<cifar100>"),
      parse_trial_config("dataset: {name: idx, root: /d}\n", "<idx>"),
      parse_trial_config("dataset: {name: imagenet, root: /d}\n", "<imagenet>"),
      parse_trial_config("dataset: {name: idx, train_images: /a, train_labels: /b, "
                         "test_images: /c, test_labels: /e}\n",
                         "<idx rootless>"),
  };
}

// A config in which `key` exists.
TrialConfig config_for(const ConfigKey& key) {
  const std::vector<TrialConfig> configs = minimal_configs();
  for (const TrialConfig& config : configs) {
    if (key_exists(key, config)) return config;
  }
  ADD_FAILURE() << key.path << " exists in no config";
  return configs.front();
}

// A valid value of `key` other than its current one in `config`.
KeyValue other_value(const ConfigKey& key, const TrialConfig& config) {
  const KeyValue current = key.binding.get(config);
  switch (key.type) {
    case KeyType::Bool:
      return !std::get<bool>(current);
    case KeyType::Integer:
      return std::get<std::int64_t>(current) + 1;
    case KeyType::Uint64:
      return std::get<std::uint64_t>(current) + 1;
    case KeyType::Float: {
      const double value = std::get<double>(current);
      return value != 0.0 ? value * 0.5 : 0.5;
    }
    case KeyType::Choice:
    case KeyType::ChoiceOrInteger:
      for (std::string_view choice : key.choices) {
        if (choice != std::get<std::string>(current)) return std::string(choice);
      }
      return std::string("7");
    case KeyType::String:
      if (key.string_rule == StringRule::Device) return std::string("cpu");
      return std::get<std::string>(current) + "_other";
    case KeyType::IntegerList:
      return std::vector<int>{10, 20, 30};
  }
  return current;
}

TEST(ConfigKeys, PathsAreUniqueAndOrderedBySection) {
  std::set<std::string> seen;
  std::vector<std::string> sections;
  for (const ConfigKey& key : trial_config_keys()) {
    EXPECT_TRUE(seen.insert(std::string(key.path)).second) << key.path;
    const std::string section(key.path.substr(0, key.path.find('.')));
    if (sections.empty() || sections.back() != section) sections.push_back(section);
    EXPECT_FALSE(key.doc.empty()) << key.path;
  }
  EXPECT_EQ(sections, (std::vector<std::string>{"dataset", "model", "method", "optim", "augment",
                                                "runtime"}));
}

TEST(ConfigKeys, TableListsExactlyTheKeysToYamlWrites) {
  std::set<std::string> written_anywhere;
  for (const TrialConfig& config : minimal_configs()) {
    std::vector<std::string> expected;
    for (const ConfigKey& key : trial_config_keys()) {
      if (!key_exists(key, config)) continue;
      if (key.omit_when_empty && std::get<std::string>(key.binding.get(config)).empty()) continue;
      expected.emplace_back(key.path);
    }
    const std::vector<std::string> written = written_paths(config);
    EXPECT_EQ(written, expected) << config.source;  // the same keys, in the same order
    written_anywhere.insert(written.begin(), written.end());
  }
  std::set<std::string> table;
  for (const ConfigKey& key : trial_config_keys()) table.emplace(key.path);
  EXPECT_EQ(written_anywhere, table);
}

TEST(ConfigKeys, DefaultsAreTheStructDefaults) {
  const TrialConfig struct_defaults;
  for (const ConfigKey& key : trial_config_keys()) {
    if (!key.default_value) {
      EXPECT_TRUE(key.path == "dataset.name" || key.path == "dataset.root") << key.path;
      continue;
    }
    // The default a config gets when the key is left out...
    EXPECT_EQ(key.binding.get(config_for(key)), *key.default_value) << key.path;
    // ... is the struct's own, except for the idx file names (empty for other data sets).
    if (key.condition != KeyCondition::IdxOnly) {
      EXPECT_EQ(key.binding.get(struct_defaults), *key.default_value) << key.path;
    }
  }
}

TEST(ConfigKeys, ChoicesHoldTheDefaultAndTheSpellings) {
  EXPECT_EQ(find_trial_config_key("dataset.name")->choices,
            (std::vector<std::string_view>{"cifar100", "idx", "imagenet"}));
  EXPECT_EQ(find_trial_config_key("runtime.data_on_device")->choices,
            (std::vector<std::string_view>{"auto", "true", "false"}));
  EXPECT_EQ(find_trial_config_key("no.such.key"), nullptr);
  for (const ConfigKey& key : trial_config_keys()) {
    if (key.type != KeyType::Choice || !key.default_value) continue;
    const std::string& value = std::get<std::string>(*key.default_value);
    EXPECT_NE(std::find(key.choices.begin(), key.choices.end(), value), key.choices.end())
        << key.path;
  }
}

// Changing one key changes the trial id exactly when the table says the id hashes it; every
// changed config writes and reads back as itself.
TEST(ConfigKeys, IdRulesAreWhatTrialIdDoes) {
  for (const ConfigKey& key : trial_config_keys()) {
    if (key.path == "dataset.name") continue;  // other keys exist then
    const TrialConfig base = config_for(key);
    TrialConfig changed = base;
    key.binding.set(changed, other_value(key, base));
    ASSERT_NE(key.binding.get(changed), key.binding.get(base)) << key.path;
    const bool hashed = key.id_rule == IdRule::Always || key.id_rule == IdRule::NonDefault;
    EXPECT_EQ(trial_id(changed) != trial_id(base), hashed) << key.path;
    EXPECT_EQ(parse_trial_config(to_yaml(changed), "<changed>"), changed) << key.path;
  }
}

TEST(ConfigKeys, KeysOutsideTheTrialId) {
  EXPECT_EQ(
      keys_outside_trial_id(),
      (std::vector<std::string>{"dataset.local_copy", "runtime.device", "runtime.data_on_device",
                                "runtime.cuda_graph", "runtime.threads", "runtime.log_every",
                                "runtime.checkpoint_every_epochs"}));
}

TEST(ConfigKeys, SweepTableGivesTheSweepFileKeys) {
  EXPECT_EQ(sweep_spec_child_keys(""),
            (std::vector<std::string_view>{"name", "base", "cases", "grid", "random", "early_stop",
                                           "budget"}));
  EXPECT_EQ(sweep_spec_child_keys("random"), (std::vector<std::string_view>{"n", "seed", "space"}));
  EXPECT_EQ(
      sweep_spec_child_keys("early_stop"),
      (std::vector<std::string_view>{"method", "metric", "rungs", "reduction", "by", "score"}));
  EXPECT_EQ(sweep_spec_child_keys("budget"),
            (std::vector<std::string_view>{"gpu_hours", "epochs"}));
  for (const SweepKey& key : sweep_spec_keys()) EXPECT_FALSE(key.doc.empty()) << key.path;
}

TEST(ConfigKeys, DefaultConfigReadsBackAsItself) {
  const std::string text = default_trial_yaml();
  const TrialConfig config = parse_trial_config(text, "<defaults>");
  std::string body = text;
  while (body.rfind('#', 0) == 0) body.erase(0, body.find('\n') + 1);
  EXPECT_EQ(to_yaml(config), body);
  EXPECT_EQ(config.dataset.name, DatasetName::Idx);
  TrialConfig expected;
  expected.dataset = config.dataset;
  EXPECT_EQ(config, expected);  // every other key at the struct's default
}

TEST(ConfigKeys, SchemaAndMarkdownNameEveryKey) {
  const std::string schema = config_schema_json();
  const std::string markdown = config_markdown();
  for (const ConfigKey& key : trial_config_keys()) {
    EXPECT_NE(schema.find("\"path\": \"" + std::string(key.path) + "\""), std::string::npos)
        << key.path;
    EXPECT_NE(markdown.find("| `" + std::string(key.path) + "` |"), std::string::npos) << key.path;
  }
  for (const SweepKey& key : sweep_spec_keys()) {
    EXPECT_NE(schema.find("\"scope\": \"sweep\", \"path\": \"" + std::string(key.path) + "\""),
              std::string::npos)
        << key.path;
  }
}

}  // namespace
}  // namespace md::io
