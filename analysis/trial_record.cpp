// Loading trial logs for the report: directory walk, config flattening over io::ConfigTree (the
// project's YAML reader, so yaml-cpp stays private to io/), and the summary of one log. A log
// is read whole with io::read_trial_log, which already keeps only complete rows of a table whose
// writer was killed mid-flush.
#include "trial_record.h"

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <limits>
#include <system_error>

#include "core/error.h"
#include "io/config.h"
#include "io/trial_log.h"

namespace md::analysis {

namespace fs = std::filesystem;

namespace {

constexpr double kMissing = std::numeric_limits<double>::quiet_NaN();

bool ends_with(const std::string& text, const std::string& suffix) {
  return text.size() >= suffix.size() &&
         text.compare(text.size() - suffix.size(), suffix.size(), suffix) == 0;
}

bool is_trial_log_name(const std::string& name) {
  return ends_with(name, ".h5") && !ends_with(name, ".ckpt.h5");
}

std::string scalar_text(const io::ConfigTree& node) {
  switch (node.kind()) {
    case io::ConfigTree::Kind::Null:
      return "null";
    case io::ConfigTree::Kind::Scalar:
      return node.scalar();
    case io::ConfigTree::Kind::Sequence: {
      std::string text = "[";
      for (std::size_t i = 0; i < node.size(); ++i) {
        if (i > 0) text += ", ";
        text += scalar_text(node.element(i));
      }
      return text + "]";
    }
    case io::ConfigTree::Kind::Mapping: {
      std::string text = "{";
      bool first = true;
      for (const std::string& key : node.keys()) {
        if (!first) text += ", ";
        first = false;
        text += key + ": " + scalar_text(node.child(key));
      }
      return text + "}";
    }
  }
  return {};
}

void flatten_into(const io::ConfigTree& node, const std::string& prefix,
                  std::map<std::string, std::string>& out) {
  if (node.kind() != io::ConfigTree::Kind::Mapping) {
    out[prefix] = scalar_text(node);
    return;
  }
  for (const std::string& key : node.keys()) {
    flatten_into(node.child(key), prefix.empty() ? key : prefix + "." + key, out);
  }
}

std::string string_attribute(const io::AttributeMap& attributes, const std::string& name) {
  auto found = attributes.find(name);
  if (found == attributes.end()) return {};
  return io::attr_to_string(found->second);
}

double final_value(const std::map<std::string, double>& final_values, const std::string& name) {
  auto found = final_values.find(name);
  return found == final_values.end() ? kMissing : found->second;
}

// Head count from metric names "<prefix>acc_head<s>" (the largest s plus one).
int count_heads(const std::vector<std::string>& names, const std::string& prefix) {
  int heads = 0;
  const std::string head_prefix = prefix + "acc_head";
  for (const std::string& name : names) {
    if (name.rfind(head_prefix, 0) != 0) continue;
    const std::string digits = name.substr(head_prefix.size());
    if (digits.empty() ||
        !std::all_of(digits.begin(), digits.end(), [](char c) { return c >= '0' && c <= '9'; })) {
      continue;
    }
    heads = std::max(heads, std::stoi(digits) + 1);
  }
  return heads;
}

// Top-1 (acc_*) and top-5 (top5_*, logged with more than 5 classes) of every head, the final
// head and the ensemble; a record keeps only those its log has.
std::vector<std::string> accuracy_metrics(int heads) {
  std::vector<std::string> metrics;
  for (const char* kind : {"acc_", "top5_"}) {
    for (int head = 0; head < heads; ++head) {
      metrics.push_back(kind + std::string("head") + std::to_string(head));
    }
    metrics.push_back(kind + std::string("final"));
    metrics.push_back(kind + std::string("ensemble"));
  }
  return metrics;
}

void summarize_final(const io::TrialLogContents& contents, TrialRecord& record) {
  std::vector<std::string> names;
  for (const auto& [name, value] : contents.final_values) names.push_back(name);
  record.heads = count_heads(names, "last_");
  for (const std::string& metric : accuracy_metrics(record.heads)) {
    const double last = final_value(contents.final_values, "last_" + metric);
    const double best = final_value(contents.final_values, "best_" + metric);
    if (!std::isnan(last)) record.last[metric] = last;
    if (!std::isnan(best)) record.best[metric] = best;
  }
  record.epochs = final_value(contents.final_values, "epochs");
  record.wall_s = final_value(contents.final_values, "total_wall_s");
  record.gpu_hours = final_value(contents.final_values, "gpu_hours");
}

void summarize_epochs(const io::TrialLogContents& contents, TrialRecord& record) {
  auto table = contents.tables.find("epoch");
  record.epochs = 0.0;
  record.wall_s = 0.0;
  record.gpu_hours = 0.0;
  if (table == contents.tables.end()) return;
  std::vector<std::string> names;
  for (const auto& [name, values] : table->second) names.push_back(name);
  record.heads = count_heads(names, "test_");
  std::size_t rows = 0;
  for (const auto& [name, values] : table->second) rows = std::max(rows, values.size());
  record.epochs = static_cast<double>(rows);
  for (const std::string& metric : accuracy_metrics(record.heads)) {
    auto column = table->second.find("test_" + metric);
    if (column == table->second.end()) continue;
    double best = kMissing;
    double last = kMissing;
    for (double value : column->second) {
      if (std::isnan(value)) continue;
      last = value;
      best = std::isnan(best) ? value : std::max(best, value);
    }
    if (!std::isnan(last)) record.last[metric] = last;
    if (!std::isnan(best)) record.best[metric] = best;
  }
  auto wall = table->second.find("wall_s");
  if (wall != table->second.end()) {
    for (double value : wall->second) {
      if (!std::isnan(value)) record.wall_s += value;
    }
  }
}

}  // namespace

std::vector<std::string> find_trial_logs(const std::string& dir) {
  std::error_code error;
  const fs::file_status status = fs::status(dir, error);
  MD_INPUT_CHECK(!error && fs::exists(status), dir, ": no such directory");
  if (fs::is_regular_file(status)) {
    MD_INPUT_CHECK(is_trial_log_name(fs::path(dir).filename().string()), dir,
                   ": not a trial log name (expected a directory or a *.h5 file that is not a "
                   "*.ckpt.h5 checkpoint)");
    return {dir};
  }
  MD_INPUT_CHECK(fs::is_directory(status), dir, ": not a directory");
  std::vector<std::string> logs;
  fs::recursive_directory_iterator walk(dir, fs::directory_options::skip_permission_denied, error);
  MD_INPUT_CHECK(!error, dir, ": cannot list the directory: ", error.message());
  const fs::recursive_directory_iterator end;
  while (walk != end) {
    std::error_code entry_error;
    if (walk->is_regular_file(entry_error) && !entry_error &&
        is_trial_log_name(walk->path().filename().string())) {
      logs.push_back(walk->path().string());
    }
    walk.increment(error);
    MD_INPUT_CHECK(!error, dir, ": cannot list the directory: ", error.message());
  }
  std::sort(logs.begin(), logs.end());
  return logs;
}

std::map<std::string, std::string> flatten_config(const std::string& yaml_text,
                                                  const std::string& source) {
  std::map<std::string, std::string> flat;
  const io::ConfigTree tree = io::ConfigTree::from_text(yaml_text, source);
  if (tree.kind() == io::ConfigTree::Kind::Null) return flat;
  if (tree.kind() != io::ConfigTree::Kind::Mapping) tree.fail("the config is not a YAML mapping");
  flatten_into(tree, "", flat);
  return flat;
}

TrialRecord load_trial_record(const std::string& path) {
  const io::TrialLogContents contents = io::read_trial_log(path);
  TrialRecord record;
  record.file = path;
  record.trial_id = string_attribute(contents.attributes, "trial_id");
  if (record.trial_id.empty()) record.trial_id = fs::path(path).stem().string();
  record.config =
      flatten_config(string_attribute(contents.attributes, "config"), path + " attribute config");
  // The writer stores /final before it sets status complete: without /final a trial is not done.
  record.has_final = !contents.final_values.empty();
  record.status = string_attribute(contents.attributes, "status");
  if (record.status.empty() ||
      (record.status == io::status_name(io::TrialStatus::Complete) && !record.has_final)) {
    record.status = record.has_final ? io::status_name(io::TrialStatus::Complete)
                                     : io::status_name(io::TrialStatus::Running);
  }
  record.error = string_attribute(contents.attributes, "error");
  record.device_name = string_attribute(contents.attributes, "device_name");
  if (auto ranks = contents.attributes.find("ranks"); ranks != contents.attributes.end()) {
    if (const auto* count = std::get_if<std::int64_t>(&ranks->second)) {
      record.ranks = static_cast<double>(*count);
    }
  }
  if (auto table = contents.tables.find("epoch"); table != contents.tables.end()) {
    if (auto column = table->second.find("test_acc_final"); column != table->second.end()) {
      record.final_curve = column->second;
    }
  }
  if (record.has_final) {
    summarize_final(contents, record);
  } else {
    summarize_epochs(contents, record);
  }
  return record;
}

}  // namespace md::analysis
