// Sweep spec parsing and expansion (see spec.h). The YAML is read as an io::ConfigTree, so every
// node carries its line for messages; trial configs are validated by io::resolve alone, so the
// sweep accepts exactly the keys `metadistill train --set` accepts. The sweep file's own keys
// are those of io::sweep_spec_keys() (io/config_keys.h), which also documents them.
#include "sweep/spec.h"

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <optional>
#include <sstream>
#include <unordered_set>

#include "core/error.h"
#include "core/rng.h"
#include "io/config_keys.h"

namespace md::sweep {
namespace {

namespace fs = std::filesystem;
using io::ConfigTree;

// One swept key and the values it takes; `origin` names it in messages.
struct Assignment {
  std::string key;
  ConfigTree value;
  std::string origin;
};

double read_number(const ConfigTree& node) {
  if (node.kind() != ConfigTree::Kind::Scalar || node.is_quoted()) node.fail("expected a number");
  const std::string& text = node.scalar();
  char* end = nullptr;
  const double value = std::strtod(text.c_str(), &end);
  if (text.empty() || end != text.c_str() + text.size() || !std::isfinite(value)) {
    node.fail("expected a finite number, got '" + text + "'");
  }
  return value;
}

std::int64_t read_integer(const ConfigTree& node, std::int64_t minimum) {
  const double value = read_number(node);
  if (value != std::floor(value) || value < static_cast<double>(minimum) || value > 1e15) {
    node.fail("expected an integer >= " + std::to_string(minimum));
  }
  return static_cast<std::int64_t>(value);
}

// The keys of the sweep table (io/config_keys.h) directly under `parent`, "a, b, c".
std::string key_list(std::string_view parent) {
  std::string list;
  for (std::string_view key : io::sweep_spec_child_keys(parent)) {
    if (!list.empty()) list += ", ";
    list += key;
  }
  return list;
}

// Every key of the mapping `node` (the sweep file's `parent` section) is in the sweep table.
void check_keys(const ConfigTree& node, std::string_view parent) {
  const std::vector<std::string_view> allowed = io::sweep_spec_child_keys(parent);
  for (const std::string& key : node.keys()) {
    if (std::find(allowed.begin(), allowed.end(), key) == allowed.end()) {
      node.child(key).fail("unknown key '" + key + "' (allowed: " + key_list(parent) + ")");
    }
  }
}

void check_key_path(const ConfigTree& node, const std::string& key) {
  if (key.empty() || key.front() == '.' || key.back() == '.' ||
      key.find("..") != std::string::npos) {
    node.fail("invalid key path '" + key + "'");
  }
}

// One point of an axis: the keys it sets (one for a grid value, several for a case).
using Point = std::vector<Assignment>;
using Axis = std::vector<Point>;

// grid: {key.path: [v1, v2, ...], ...} -> one axis per key, in document order.
std::vector<Axis> read_grid(const ConfigTree& grid, const std::string& source) {
  std::vector<Axis> axes;
  if (grid.kind() != ConfigTree::Kind::Mapping)
    grid.fail("expected a mapping of key paths to lists");
  for (const std::string& key : grid.keys()) {
    const ConfigTree values = grid.child(key);
    check_key_path(values, key);
    if (values.kind() != ConfigTree::Kind::Sequence || values.size() == 0) {
      values.fail("expected a non-empty list of values");
    }
    Axis axis;
    for (std::size_t i = 0; i < values.size(); ++i) {
      axis.push_back({{key, values.element(i), source + " grid " + key}});
    }
    axes.push_back(std::move(axis));
  }
  return axes;
}

// cases: [{key.path: value, ...}, ...] -> one axis whose points set several keys together
// (arms that differ in more than one key). A key may not be set by both cases and the grid.
Axis read_cases(const ConfigTree& cases, const ConfigTree* grid, const std::string& source) {
  if (cases.kind() != ConfigTree::Kind::Sequence || cases.size() == 0) {
    cases.fail("expected a non-empty list of mappings {key.path: value, ...}");
  }
  Axis axis;
  for (std::size_t i = 0; i < cases.size(); ++i) {
    const ConfigTree arm = cases.element(i);
    if (arm.kind() != ConfigTree::Kind::Mapping || arm.keys().empty()) {
      arm.fail("expected a non-empty mapping {key.path: value, ...}");
    }
    Point point;
    for (const std::string& key : arm.keys()) {
      const ConfigTree value = arm.child(key);
      check_key_path(value, key);
      if (grid && grid->kind() == ConfigTree::Kind::Mapping && grid->contains(key)) {
        value.fail("'" + key + "' is also a grid key: set it in the cases or in the grid");
      }
      point.push_back({key, value, source + " cases[" + std::to_string(i) + "] " + key});
    }
    axis.push_back(std::move(point));
  }
  return axis;
}

std::pair<double, double> read_range(const ConfigTree& node, bool positive) {
  if (node.kind() != ConfigTree::Kind::Sequence || node.size() != 2) {
    node.fail("expected [low, high]");
  }
  const double low = read_number(node.element(0));
  const double high = read_number(node.element(1));
  if (!(low <= high)) node.fail("low must not exceed high");
  if (positive && !(low > 0.0)) node.fail("log_uniform needs low > 0");
  return {low, high};
}

// random: {n, seed, space: {key: {uniform: [a, b]} | {log_uniform: [a, b]} | {choice: [...]}}}
// -> n samples; sample j draws every key in document order from one generator seeded by `seed`.
std::vector<std::vector<Assignment>> read_random(const ConfigTree& random,
                                                 const std::string& source) {
  if (random.kind() != ConfigTree::Kind::Mapping)
    random.fail("expected a mapping {n, seed, space}");
  check_keys(random, "random");
  if (!random.contains("n")) random.fail("missing key 'n' (the number of samples)");
  if (!random.contains("space")) random.fail("missing key 'space'");
  const std::int64_t count = read_integer(random.child("n"), 1);
  const std::uint64_t seed = random.contains("seed")
                                 ? static_cast<std::uint64_t>(read_integer(random.child("seed"), 0))
                                 : 0;
  const ConfigTree space = random.child("space");
  if (space.kind() != ConfigTree::Kind::Mapping || space.keys().empty()) {
    space.fail("expected a mapping of key paths to distributions");
  }
  enum class Kind { Uniform, LogUniform, Choice };
  struct Distribution {
    std::string key;
    Kind kind;
    double low = 0.0, high = 0.0;
    ConfigTree choices;
  };
  std::vector<Distribution> distributions;
  for (const std::string& key : space.keys()) {
    const ConfigTree entry = space.child(key);
    check_key_path(entry, key);
    if (entry.kind() != ConfigTree::Kind::Mapping || entry.keys().size() != 1) {
      entry.fail("expected one of {uniform: [a, b]}, {log_uniform: [a, b]}, {choice: [...]}");
    }
    const std::string kind = entry.keys().front();
    const ConfigTree argument = entry.child(kind);
    if (kind == "uniform" || kind == "log_uniform") {
      const auto [low, high] = read_range(argument, kind == "log_uniform");
      distributions.push_back(
          {key, kind == "uniform" ? Kind::Uniform : Kind::LogUniform, low, high, argument});
    } else if (kind == "choice") {
      if (argument.kind() != ConfigTree::Kind::Sequence || argument.size() == 0) {
        argument.fail("expected a non-empty list of choices");
      }
      distributions.push_back({key, Kind::Choice, 0.0, 0.0, argument});
    } else {
      argument.fail("unknown distribution '" + kind + "' (allowed: uniform, log_uniform, choice)");
    }
  }
  Rng rng(seed);
  std::vector<std::vector<Assignment>> samples;
  for (std::int64_t sample = 0; sample < count; ++sample) {
    std::vector<Assignment> draws;
    for (const Distribution& distribution : distributions) {
      const std::string origin = source + " random " + distribution.key;
      if (distribution.kind == Kind::Choice) {
        const auto pick = rng.below(distribution.choices.size());
        draws.push_back({distribution.key, distribution.choices.element(pick), origin});
        continue;
      }
      const double value =
          distribution.kind == Kind::Uniform
              ? rng.uniform(distribution.low, distribution.high)
              : std::exp(rng.uniform(std::log(distribution.low), std::log(distribution.high)));
      draws.push_back(
          {distribution.key, ConfigTree::from_text(io::format_yaml_number(value), origin), origin});
    }
    samples.push_back(std::move(draws));
  }
  return samples;
}

// early_stop: {method: asha, metric, rungs: [e1, e2, ...], reduction, by: config|trial, score}.
// Rungs are checked against every trial's optim.epochs; `by` defaults to config when the grid
// or the cases set the seed (axes_set_seed).
EarlyStopSpec read_early_stop(const ConfigTree& node, const std::vector<SweepTrial>& trials,
                              bool axes_set_seed) {
  if (node.kind() != ConfigTree::Kind::Mapping) node.fail("expected a mapping {method: asha, ...}");
  check_keys(node, "early_stop");
  EarlyStopSpec spec;
  spec.by = axes_set_seed ? EarlyStopUnit::Config : EarlyStopUnit::Trial;
  if (!node.contains("method")) node.fail("missing key 'method' (allowed: asha)");
  const ConfigTree method = node.child("method");
  if (method.kind() != ConfigTree::Kind::Scalar || method.scalar() != "asha") {
    method.fail("unknown early-stopping method (allowed: asha)");
  }
  if (node.contains("metric")) {
    const ConfigTree metric = node.child("metric");
    if (metric.kind() != ConfigTree::Kind::Scalar || !epoch_column_of_metric(metric.scalar())) {
      metric.fail("unknown metric (allowed: acc_final, acc_ensemble, acc_head<s>, e.g. acc_head0)");
    }
    spec.metric = metric.scalar();
  }
  if (!node.contains("rungs")) node.fail("missing key 'rungs' (the epochs of the rungs)");
  const ConfigTree rungs = node.child("rungs");
  if (rungs.kind() != ConfigTree::Kind::Sequence || rungs.size() == 0) {
    rungs.fail("expected a non-empty list of epochs");
  }
  for (std::size_t i = 0; i < rungs.size(); ++i) {
    const auto epoch = read_integer(rungs.element(i), 1);
    if (!spec.rungs.empty() && epoch <= spec.rungs.back()) {
      rungs.fail("rungs must increase strictly");
    }
    spec.rungs.push_back(static_cast<int>(epoch));
  }
  std::size_t ending_at_last_rung = 0;
  for (const SweepTrial& trial : trials) {
    if (spec.rungs.back() > trial.config.optim.epochs) {
      rungs.fail(detail::concat("rung ", spec.rungs.back(), " is beyond ",
                                io::key_path::optim_epochs, " ", trial.config.optim.epochs,
                                " of trial ", trial.index));
    }
    if (spec.rungs.back() == trial.config.optim.epochs) ++ending_at_last_rung;
  }
  // The last rung is the end of every trial or of none (the rungs are the same for all units).
  if (ending_at_last_rung != 0 && ending_at_last_rung != trials.size()) {
    rungs.fail(detail::concat("the last rung ", spec.rungs.back(), " equals ",
                              io::key_path::optim_epochs,
                              " of some trials only: make it below every trial's ",
                              io::key_path::optim_epochs, ", or equal to all"));
  }
  if (node.contains("reduction")) {
    spec.reduction = static_cast<int>(read_integer(node.child("reduction"), 2));
  }
  if (node.contains("by")) {
    const ConfigTree by = node.child("by");
    if (by.kind() == ConfigTree::Kind::Scalar && by.scalar() == "config") {
      spec.by = EarlyStopUnit::Config;
    } else if (by.kind() == ConfigTree::Kind::Scalar && by.scalar() == "trial") {
      spec.by = EarlyStopUnit::Trial;
    } else {
      by.fail("expected config or trial");
    }
  }
  if (node.contains("score")) {
    const ConfigTree score = node.child("score");
    if (score.kind() == ConfigTree::Kind::Scalar && score.scalar() == "mean") {
      spec.score = EarlyStopScore::Mean;
    } else if (score.kind() == ConfigTree::Kind::Scalar && score.scalar() == "lower_bound") {
      spec.score = EarlyStopScore::LowerBound;
    } else {
      score.fail("expected mean or lower_bound");
    }
  }
  return spec;
}

// budget: {gpu_hours: H, epochs: E}, each > 0.
BudgetSpec read_budget(const ConfigTree& node) {
  if (node.kind() != ConfigTree::Kind::Mapping || node.keys().empty()) {
    node.fail("expected a mapping {gpu_hours: H} or {epochs: E}");
  }
  check_keys(node, "budget");
  BudgetSpec budget;
  for (const std::string& key : node.keys()) {
    const double value = read_number(node.child(key));
    if (!(value > 0.0)) node.child(key).fail("expected a number > 0");
    (key == "gpu_hours" ? budget.gpu_hours : budget.epochs) = value;
  }
  return budget;
}

bool needs_quotes(const std::string& text) {
  if (text.empty()) return true;
  static const std::string kSpecial = " \t:#,[]{}&*!|>'\"%@`";
  if (text.find_first_of(kSpecial) != std::string::npos) return true;
  return text.front() == '-' && text.size() > 1 && text[1] == ' ';
}

// Advances `position` to the next grid point, the last key varying fastest; false after the last.
bool next_grid_point(std::vector<std::size_t>& position, const std::vector<Axis>& axes) {
  for (std::size_t axis = axes.size(); axis-- > 0;) {
    if (++position[axis] < axes[axis].size()) return true;
    position[axis] = 0;
  }
  return false;
}

}  // namespace

std::string flow_text(const ConfigTree& value) {
  switch (value.kind()) {
    case ConfigTree::Kind::Null:
      return "null";
    case ConfigTree::Kind::Scalar: {
      const std::string& text = value.scalar();
      if (!value.is_quoted() && !needs_quotes(text)) return text;
      std::string quoted = "'";
      for (char c : text) {
        if (c == '\'') quoted += '\'';
        quoted += c;
      }
      return quoted + "'";
    }
    case ConfigTree::Kind::Sequence: {
      std::string text = "[";
      for (std::size_t i = 0; i < value.size(); ++i) {
        if (i > 0) text += ", ";
        text += flow_text(value.element(i));
      }
      return text + "]";
    }
    case ConfigTree::Kind::Mapping: {
      std::string text = "{";
      bool first = true;
      for (const std::string& key : value.keys()) {
        if (!first) text += ", ";
        first = false;
        text += key + ": " + flow_text(value.child(key));
      }
      return text + "}";
    }
  }
  return "null";
}

SweepSpec parse_sweep(const std::string& yaml_text, const std::string& source_name,
                      const std::string& base_directory) {
  const ConfigTree document = ConfigTree::from_text(yaml_text, source_name);
  if (document.kind() != ConfigTree::Kind::Mapping) {
    document.fail("expected a mapping with keys " + key_list(""));
  }
  check_keys(document, "");
  SweepSpec spec;
  spec.source = source_name;
  spec.name = fs::path(source_name).stem().string();
  if (document.contains("name")) {
    const ConfigTree name = document.child("name");
    if (name.kind() != ConfigTree::Kind::Scalar || name.scalar().empty()) {
      name.fail("expected a sweep name");
    }
    spec.name = name.scalar();
  }
  if (!document.contains("base")) {
    document.fail("missing key 'base' (a trial config file, or an inline trial config)");
  }
  const ConfigTree base_node = document.child("base");
  ConfigTree base = base_node;
  if (base_node.kind() == ConfigTree::Kind::Scalar) {
    fs::path base_path = base_node.scalar();
    if (base_path.is_relative()) base_path = fs::path(base_directory) / base_path;
    if (!fs::exists(base_path)) {
      base_node.fail("base config file " + base_path.string() + " does not exist");
    }
    base = ConfigTree::from_file(base_path.string());
  } else if (base_node.kind() != ConfigTree::Kind::Mapping) {
    base_node.fail("expected a trial config file name or an inline trial config mapping");
  }

  // The axes: the cases first (varying slowest), then the grid's keys.
  std::vector<Axis> axes;
  std::optional<ConfigTree> grid;
  if (document.contains("grid")) grid = document.child("grid");
  if (document.contains("cases")) {
    axes.push_back(read_cases(document.child("cases"), grid ? &*grid : nullptr, source_name));
  }
  if (grid) {
    for (Axis& axis : read_grid(*grid, source_name)) axes.push_back(std::move(axis));
  }
  const auto samples = document.contains("random")
                           ? read_random(document.child("random"), source_name)
                           : std::vector<std::vector<Assignment>>{{}};

  std::unordered_set<std::string> seen_ids;
  std::vector<std::size_t> position(axes.size(), 0);
  bool first_trial = true;
  while (true) {
    for (const std::vector<Assignment>& sample : samples) {
      std::vector<const Assignment*> assignments;
      for (std::size_t axis = 0; axis < axes.size(); ++axis) {
        for (const Assignment& assignment : axes[axis][position[axis]]) {
          assignments.push_back(&assignment);
        }
      }
      for (const Assignment& draw : sample) assignments.push_back(&draw);
      ConfigTree tree = base;
      SweepTrial trial;
      for (const Assignment* assignment : assignments) {
        tree.set(assignment->key, assignment->value, assignment->origin);
        trial.overrides.push_back(assignment->key + "=" + flow_text(assignment->value));
      }
      trial.config = io::resolve(tree, tree.source_name());
      trial.id = io::trial_id(trial.config);
      if (first_trial) spec.ranks_per_trial = trial.config.runtime.ranks_per_trial;
      first_trial = false;
      if (trial.config.runtime.ranks_per_trial != spec.ranks_per_trial) {
        std::string where;
        for (const std::string& assignment : trial.overrides) where += " " + assignment;
        throw InputError(detail::concat(
            source_name, ": ", io::key_path::runtime_ranks_per_trial,
            " must be the same in every trial of a sweep: the trial with", where, " has ",
            trial.config.runtime.ranks_per_trial, ", the first has ", spec.ranks_per_trial));
      }
      if (!seen_ids.insert(trial.id).second) continue;
      trial.index = static_cast<int>(spec.trials.size());
      spec.trials.push_back(std::move(trial));
    }
    if (!next_grid_point(position, axes)) break;
  }
  if (document.contains("early_stop")) {
    // Seeds set by the grid or the cases: a unit is a configuration, over its seeds.
    const std::string seed(io::replicate_key().path);
    bool axes_set_seed =
        grid && grid->contains(seed);  // (a grid that is not a mapping failed above)
    if (document.contains("cases")) {
      for (const Point& point : axes.front()) {
        for (const Assignment& assignment : point) {
          axes_set_seed = axes_set_seed || assignment.key == seed;
        }
      }
    }
    spec.early_stop = read_early_stop(document.child("early_stop"), spec.trials, axes_set_seed);
  }
  if (document.contains("budget")) {
    spec.budget = read_budget(document.child("budget"));
    if (!spec.early_stop) {
      document.child("budget").fail("a budget needs early_stop (it limits ASHA's work)");
    }
  }
  return spec;
}

SweepSpec load_sweep(const std::string& path) {
  std::ifstream file(path, std::ios::binary);
  if (!file) throw InputError(path + ": cannot open the sweep file");
  std::ostringstream text;
  text << file.rdbuf();
  const std::string directory = fs::path(path).parent_path().string();
  return parse_sweep(text.str(), path, directory.empty() ? "." : directory);
}

}  // namespace md::sweep
