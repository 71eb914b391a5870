// The sweep report: grouping, statistics, and the three renderings (Markdown, CSV, JSON). The
// renderings share one SweepSummary, so the three formats always agree on the numbers; only
// Markdown rounds (percent, 2 decimals), CSV and JSON keep raw fractions in shortest round-trip
// form.
#include "report.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <set>
#include <sstream>
#include <utility>

#include "core/error.h"
#include "io/config_keys.h"
#include "text_format.h"

namespace md::analysis {

namespace {

constexpr double kMissing = std::numeric_limits<double>::quiet_NaN();

// Keys never grouped by default: the seed (what a group averages over) and the keys that
// io::trial_id ignores because they do not change a trial's result (the key table's "no").
const std::set<std::string>& default_excluded_keys() {
  static const std::set<std::string> keys = [] {
    std::set<std::string> excluded{std::string(io::replicate_key().path)};
    for (std::string& key : io::keys_outside_trial_id()) excluded.insert(std::move(key));
    return excluded;
  }();
  return keys;
}

// Status names in the order the report lists them; any other status follows alphabetically.
const std::vector<std::string>& known_statuses() {
  static const std::vector<std::string> statuses{
      io::status_name(io::TrialStatus::Complete), io::status_name(io::TrialStatus::Running),
      io::status_name(io::TrialStatus::Interrupted), io::status_name(io::TrialStatus::Failed),
      io::status_name(io::TrialStatus::Diverged)};
  return statuses;
}

bool is_in_progress(const TrialRecord& trial) {
  return trial.status == io::status_name(io::TrialStatus::Running) ||
         trial.status == io::status_name(io::TrialStatus::Interrupted);
}

struct KeyValuesLess {
  bool operator()(const std::vector<std::string>& a, const std::vector<std::string>& b) const {
    for (std::size_t i = 0; i < std::min(a.size(), b.size()); ++i) {
      if (a[i] == b[i]) continue;
      return natural_less(a[i], b[i]);
    }
    return a.size() < b.size();
  }
};

// The head of "acc_head<s>" or "top5_head<s>", else -1.
int parse_head_metric(const std::string& metric) {
  for (const std::string prefix : {"acc_head", "top5_head"}) {
    if (metric.rfind(prefix, 0) != 0) continue;
    const std::string digits = metric.substr(prefix.size());
    if (digits.empty() || digits.size() > 6 ||
        !std::all_of(digits.begin(), digits.end(), [](char c) { return c >= '0' && c <= '9'; })) {
      return -1;
    }
    return std::stoi(digits);
  }
  return -1;
}

bool is_top5(const std::string& metric) {
  return metric.rfind("top5_", 0) == 0;
}

void check_metric(const std::string& metric, int heads, int trial_count) {
  if (metric == "acc_final" || metric == "acc_ensemble" || metric == "top5_final" ||
      metric == "top5_ensemble") {
    return;
  }
  const int head = parse_head_metric(metric);
  MD_INPUT_CHECK(head >= 0, "unknown metric '", metric,
                 "' (expected acc_final, acc_ensemble or acc_head<s>, e.g. acc_head0, or their "
                 "top-5 forms top5_final, top5_ensemble, top5_head<s>)");
  MD_INPUT_CHECK(trial_count == 0 || head < heads, "metric '", metric, "': the trials have ",
                 heads == 0 ? std::string("no per-head accuracies")
                            : detail::concat("heads 0 to ", heads - 1));
}

// The lead, then the other metrics of its kind, then (for a top-5 lead) the top-1 ones, which
// the per-head tables always show.
std::vector<std::string> metric_order(const std::string& lead, int heads) {
  std::vector<std::string> metrics{lead};
  std::vector<std::string> kinds{"acc_"};
  if (is_top5(lead)) kinds.insert(kinds.begin(), "top5_");
  for (const std::string& kind : kinds) {
    std::vector<std::string> rest{kind + "final", kind + "ensemble"};
    for (int head = 0; head < heads; ++head) rest.push_back(kind + "head" + std::to_string(head));
    for (const std::string& metric : rest) {
      if (metric != lead) metrics.push_back(metric);
    }
  }
  return metrics;
}

// `what` names the option in the message: "group-by key", "--where key".
void check_config_keys(const std::vector<std::string>& keys, const std::vector<TrialRecord>& trials,
                       const std::string& what) {
  if (trials.empty()) return;
  std::set<std::string> available;
  for (const TrialRecord& trial : trials) {
    for (const auto& [key, value] : trial.config) available.insert(key);
  }
  for (const std::string& key : keys) {
    if (available.count(key) != 0) continue;
    std::string list;
    for (const std::string& name : available) list += (list.empty() ? "" : ", ") + name;
    throw InputError(detail::concat(
        what, " '", key, "' is in no trial's config (keys: ", list.empty() ? "none" : list, ")"));
  }
}

double value_or_missing(const std::map<std::string, double>& values, const std::string& metric) {
  auto found = values.find(metric);
  return found == values.end() ? kMissing : found->second;
}

void aggregate(GroupSummary& group, const std::vector<std::string>& metrics, int heads) {
  for (const TrialRecord& trial : group.trials) ++group.status_counts[trial.status];
  std::vector<const TrialRecord*> sources;
  for (const TrialRecord& trial : group.trials) {
    if (trial.status == io::status_name(io::TrialStatus::Complete)) sources.push_back(&trial);
  }
  group.values_from = ValuesFrom::Complete;
  if (sources.empty()) {
    for (const TrialRecord& trial : group.trials) {
      if (is_in_progress(trial)) sources.push_back(&trial);
    }
    group.values_from = sources.empty() ? ValuesFrom::None : ValuesFrom::InProgress;
  }
  group.value_trials = static_cast<int>(sources.size());
  for (const std::string& metric : metrics) {
    std::vector<double> last;
    std::vector<double> best;
    for (const TrialRecord* trial : sources) {
      last.push_back(value_or_missing(trial->last, metric));
      best.push_back(value_or_missing(trial->best, metric));
    }
    group.last[metric] = mean_and_std(last);
    group.best[metric] = mean_and_std(best);
  }
  for (int head = 0; head + 1 < heads; ++head) {
    const std::string metric = "acc_head" + std::to_string(head);
    std::vector<double> last;
    std::vector<double> best;
    for (const TrialRecord* trial : sources) {
      const bool auxiliary = head + 1 < trial->heads;
      last.push_back(auxiliary ? value_or_missing(trial->last, metric) : kMissing);
      best.push_back(auxiliary ? value_or_missing(trial->best, metric) : kMissing);
    }
    group.auxiliary_last.push_back(mean_and_std(last));
    group.auxiliary_best.push_back(mean_and_std(best));
  }
  std::vector<double> epochs;
  std::vector<double> wall;
  for (const TrialRecord* trial : sources) {
    epochs.push_back(trial->epochs);
    wall.push_back(trial->wall_s);
  }
  group.epochs = mean_and_std(epochs);
  group.wall_s = mean_and_std(wall);
  group.gpu_hours = 0.0;
  for (const TrialRecord& trial : group.trials) {
    if (trial.has_final && !std::isnan(trial.gpu_hours)) group.gpu_hours += trial.gpu_hours;
  }
}

// ---- text helpers

std::string status_text(const GroupSummary& group) {
  std::vector<std::string> parts;
  for (const std::string& status : known_statuses()) {
    auto found = group.status_counts.find(status);
    if (found != group.status_counts.end()) {
      parts.push_back(std::to_string(found->second) + " " + status);
    }
  }
  for (const auto& [status, count] : group.status_counts) {
    if (std::find(known_statuses().begin(), known_statuses().end(), status) ==
        known_statuses().end()) {
      parts.push_back(std::to_string(count) + " " + (status.empty() ? "unknown" : status));
    }
  }
  std::string text;
  for (const std::string& part : parts) text += (text.empty() ? "" : ", ") + part;
  return text;
}

// ---- Markdown

std::string percent_cell(const Statistic& statistic, bool in_progress) {
  if (std::isnan(statistic.mean)) return kDash;
  std::string text = printf_text("%.2f", 100.0 * statistic.mean) + " ± " +
                     printf_text("%.2f", 100.0 * statistic.std_dev);
  return in_progress ? text + "*" : text;
}

std::string percent_value(double value) {
  return std::isnan(value) ? std::string(kDash) : printf_text("%.2f", 100.0 * value);
}

std::string epochs_text(double epochs) {
  if (std::isnan(epochs)) return kDash;
  if (epochs == std::floor(epochs)) return printf_text("%.0f", epochs);
  return printf_text("%.1f", epochs);
}

std::string duration_text(double seconds) {
  if (std::isnan(seconds)) return kDash;
  if (seconds < 120.0) return printf_text("%.1f s", seconds);
  if (seconds < 7200.0) return printf_text("%.1f min", seconds / 60.0);
  return printf_text("%.2f h", seconds / 3600.0);
}

void table_row(std::ostringstream& out, const std::vector<std::string>& cells) {
  out << "|";
  for (const std::string& cell : cells) out << " " << cell << " |";
  out << "\n";
}

void table_header(std::ostringstream& out, const std::vector<std::string>& cells) {
  table_row(out, cells);
  table_row(out, std::vector<std::string>(cells.size(), "---"));
}

std::vector<std::string> key_headers(const SweepSummary& summary) {
  if (summary.group_by.empty()) return {"group"};
  return summary.group_by;
}

std::vector<std::string> key_cells(const SweepSummary& summary,
                                   const std::vector<std::string>& values) {
  if (summary.group_by.empty()) return {"all trials"};
  std::vector<std::string> cells;
  for (const std::string& value : values) cells.push_back(markdown_cell(value));
  return cells;
}

std::vector<std::string> trial_key_cells(const SweepSummary& summary, const TrialRecord& trial) {
  std::vector<std::string> values;
  for (const std::string& key : summary.group_by) {
    auto found = trial.config.find(key);
    values.push_back(found == trial.config.end() ? std::string() : found->second);
  }
  return key_cells(summary, values);
}

// The title, the --where selection and the sentence on grouping.
void markdown_preamble(std::ostringstream& out, const SweepSummary& summary) {
  out << "# Sweep report: " << summary.directory << "\n\n";
  if (!summary.where.empty()) {
    out << "Only the trials with";
    for (std::size_t i = 0; i < summary.where.size(); ++i) {
      out << (i == 0 ? " `" : ", `") << summary.where[i] << "`";
    }
    out << " (`--where`).\n\n";
  }
  if (summary.trial_count == 0) {
    out << "No trial logs found under `" << summary.directory << "`";
    if (!summary.skipped.empty()) {
      out << " (" << summary.skipped.size() << " file" << (summary.skipped.size() == 1 ? "" : "s")
          << " skipped: not readable trial logs)";
    }
    out << ".\n";
    return;
  }
  out << summary.trial_count << " trial" << (summary.trial_count == 1 ? "" : "s") << " in "
      << summary.groups.size() << " group" << (summary.groups.size() == 1 ? "" : "s") << ", ";
  if (summary.group_by.empty()) {
    out << "not grouped (no config key varies apart from " << io::replicate_key().path << ").";
  } else {
    out << "grouped by";
    for (std::size_t i = 0; i < summary.group_by.size(); ++i) {
      out << (i == 0 ? " " : ", ") << "`" << summary.group_by[i] << "`";
    }
    out << ".";
  }
  out << " Accuracies in percent: mean ± sample standard deviation (n − 1) over the complete "
         "trials of a group (± 0.00 for a single trial); *last* is the last epoch, *best* the "
         "best epoch. Wall time is the mean per trial, GPU-hours the sum over the group.\n\n";
}

// The leading metric and the second one beside it (the ensemble, or the final head when the
// ensemble leads), of the same kind (top-1 or top-5).
std::pair<std::string, std::string> lead_and_second(const std::string& lead) {
  const std::string kind = is_top5(lead) ? "top5_" : "acc_";
  return {lead, lead == kind + "ensemble" ? kind + "final" : kind + "ensemble"};
}

// The table of groups: keys, n, status, the two metrics last and best, epochs, wall, GPU-hours.
void markdown_group_table(std::ostringstream& out, const SweepSummary& summary) {
  const auto [lead, second] = lead_and_second(summary.metric);
  std::vector<std::string> header = key_headers(summary);
  for (const char* column : {"n", "status"}) header.emplace_back(column);
  for (const std::string& metric : {lead, second}) {
    header.push_back(metric + " last");
    header.push_back(metric + " best");
  }
  for (const char* column : {"epochs", "wall", "GPU-hours"}) header.emplace_back(column);
  table_header(out, header);
  bool any_in_progress_values = false;
  for (const GroupSummary& group : summary.groups) {
    const bool in_progress = group.values_from == ValuesFrom::InProgress;
    any_in_progress_values = any_in_progress_values || in_progress;
    std::vector<std::string> cells = key_cells(summary, group.key_values);
    cells.push_back(std::to_string(group.trials.size()));
    cells.push_back(status_text(group));
    for (const std::string& metric : {lead, second}) {
      cells.push_back(percent_cell(group.last.at(metric), in_progress));
      cells.push_back(percent_cell(group.best.at(metric), in_progress));
    }
    cells.push_back(epochs_text(group.epochs.mean));
    cells.push_back(duration_text(group.wall_s.mean));
    cells.push_back(printf_text("%.2f", group.gpu_hours));
    table_row(out, cells);
  }
  if (any_in_progress_values) {
    out << "\n\\* No complete trial yet: the running and interrupted trials at their last "
           "epoch.\n";
  }
}

// Every head's accuracy per group, at the last and at the best epoch (trials with heads only).
void markdown_head_tables(std::ostringstream& out, const SweepSummary& summary) {
  for (const bool best : {false, true}) {
    out << "\n## Every head, " << (best ? "best" : "last") << " epoch\n\n";
    if (!best) {
      out << "*head s*: the auxiliary classifier after stage s + 1, over the trials that "
             "have it (a trial's last head is its *final* head; a baseline has no "
             "auxiliary head).\n\n";
    }
    std::vector<std::string> head_header = key_headers(summary);
    for (int head = 0; head + 1 < summary.heads; ++head) {
      head_header.push_back("head " + std::to_string(head));
    }
    head_header.emplace_back("final");
    head_header.emplace_back("ensemble");
    table_header(out, head_header);
    for (const GroupSummary& group : summary.groups) {
      const bool in_progress = group.values_from == ValuesFrom::InProgress;
      const auto& statistics = best ? group.best : group.last;
      const auto& auxiliary = best ? group.auxiliary_best : group.auxiliary_last;
      std::vector<std::string> cells = key_cells(summary, group.key_values);
      for (const Statistic& statistic : auxiliary) {
        cells.push_back(percent_cell(statistic, in_progress));
      }
      cells.push_back(percent_cell(statistics.at("acc_final"), in_progress));
      cells.push_back(percent_cell(statistics.at("acc_ensemble"), in_progress));
      table_row(out, cells);
    }
  }
}

// The running and interrupted trials, one row each, at their last epoch; nothing when none.
void markdown_in_progress(std::ostringstream& out, const SweepSummary& summary) {
  std::vector<const TrialRecord*> in_progress;
  for (const GroupSummary& group : summary.groups) {
    for (const TrialRecord& trial : group.trials) {
      if (is_in_progress(trial)) in_progress.push_back(&trial);
    }
  }
  if (in_progress.empty()) return;
  const std::string& lead = summary.metric;
  out << "\n## In progress\n\nRunning and interrupted trials at their last epoch.\n\n";
  std::vector<std::string> progress_header{"trial"};
  for (const std::string& key : key_headers(summary)) progress_header.push_back(key);
  for (const std::string& column :
       {std::string("status"), std::string("epochs"), lead + " last", lead + " best"}) {
    progress_header.push_back(column);
  }
  table_header(out, progress_header);
  for (const TrialRecord* trial : in_progress) {
    std::vector<std::string> cells{markdown_cell(trial->trial_id)};
    for (const std::string& cell : trial_key_cells(summary, *trial)) cells.push_back(cell);
    cells.push_back(trial->status);
    cells.push_back(epochs_text(trial->epochs));
    cells.push_back(percent_value(value_or_missing(trial->last, lead)));
    cells.push_back(percent_value(value_or_missing(trial->best, lead)));
    table_row(out, cells);
  }
}

std::string format_markdown(const SweepSummary& summary) {
  std::ostringstream out;
  markdown_preamble(out, summary);
  if (summary.trial_count > 0) {
    markdown_group_table(out, summary);
    if (summary.early_stop) {
      std::vector<std::vector<std::string>> cells;
      for (const GroupSummary& group : summary.groups) {
        cells.push_back(key_cells(summary, group.key_values));
      }
      out << early_stop_markdown(*summary.early_stop, key_headers(summary), cells);
    }
    if (summary.heads > 1) markdown_head_tables(out, summary);
    markdown_in_progress(out, summary);
  }
  if (summary.comparison) out << comparison_markdown(*summary.comparison);
  if (!summary.skipped.empty()) {
    out << "\n## Skipped files\n\n";
    for (const SkippedFile& skipped : summary.skipped) {
      out << "- `" << skipped.file << "`: " << skipped.reason << "\n";
    }
  }
  return out.str();
}

// ---- CSV

void csv_row(std::ostringstream& out, const std::vector<std::string>& fields) {
  for (std::size_t i = 0; i < fields.size(); ++i) {
    out << (i == 0 ? "" : ",") << csv_field(fields[i]);
  }
  out << "\n";
}

const char* values_from_name(ValuesFrom values_from) {
  switch (values_from) {
    case ValuesFrom::Complete:
      return "complete";
    case ValuesFrom::InProgress:
      return "in_progress";
    case ValuesFrom::None:
      return "none";
  }
  return "none";
}

int other_status_count(const GroupSummary& group) {
  int count = 0;
  for (const auto& [status, trials] : group.status_counts) {
    if (std::find(known_statuses().begin(), known_statuses().end(), status) ==
        known_statuses().end()) {
      count += trials;
    }
  }
  return count;
}

int status_count(const GroupSummary& group, const std::string& status) {
  auto found = group.status_counts.find(status);
  return found == group.status_counts.end() ? 0 : found->second;
}

std::string format_csv(const SweepSummary& summary) {
  if (summary.comparison) return comparison_csv(*summary.comparison);
  std::ostringstream out;
  std::vector<std::string> header = summary.group_by;
  header.emplace_back("n");
  for (const std::string& status : known_statuses()) header.push_back(status);
  for (const char* column : {"other", "values_from", "n_values"}) header.emplace_back(column);
  for (const std::string& metric : summary.metrics) {
    for (const char* which : {"last_", "best_"}) {
      header.push_back(which + metric + "_mean");
      header.push_back(which + metric + "_std");
    }
  }
  for (const char* column : {"epochs_mean", "wall_s_mean", "gpu_hours_sum"}) {
    header.emplace_back(column);
  }
  csv_row(out, header);
  for (const GroupSummary& group : summary.groups) {
    std::vector<std::string> fields = group.key_values;
    fields.push_back(std::to_string(group.trials.size()));
    for (const std::string& status : known_statuses()) {
      fields.push_back(std::to_string(status_count(group, status)));
    }
    fields.push_back(std::to_string(other_status_count(group)));
    fields.emplace_back(values_from_name(group.values_from));
    fields.push_back(std::to_string(group.value_trials));
    for (const std::string& metric : summary.metrics) {
      for (const auto* statistics : {&group.last, &group.best}) {
        const Statistic& statistic = statistics->at(metric);
        fields.push_back(exact_number(statistic.mean));
        fields.push_back(exact_number(statistic.std_dev));
      }
    }
    fields.push_back(exact_number(group.epochs.mean));
    fields.push_back(exact_number(group.wall_s.mean));
    fields.push_back(exact_number(group.gpu_hours));
    csv_row(out, fields);
  }
  return out.str();
}

// ---- JSON

std::string json_statistic(const Statistic& statistic) {
  return detail::concat("{\"mean\": ", json_number(statistic.mean),
                        ", \"std\": ", json_number(statistic.std_dev),
                        ", \"count\": ", statistic.count, "}");
}

std::string json_values(const std::map<std::string, double>& values) {
  std::string text = "{";
  for (const auto& [metric, value] : values) {
    text += (text.size() > 1 ? ", " : "") + json_string(metric) + ": " + json_number(value);
  }
  return text + "}";
}

std::string json_string_map(const std::map<std::string, std::string>& values) {
  std::string text = "{";
  for (const auto& [key, value] : values) {
    text += (text.size() > 1 ? ", " : "") + json_string(key) + ": " + json_string(value);
  }
  return text + "}";
}

std::string format_json(const SweepSummary& summary) {
  std::ostringstream out;
  out << "{\n";
  out << "  \"directory\": " << json_string(summary.directory) << ",\n";
  out << "  \"group_by\": " << json_string_list(summary.group_by) << ",\n";
  out << "  \"metric\": " << json_string(summary.metric) << ",\n";
  out << "  \"metrics\": " << json_string_list(summary.metrics) << ",\n";
  out << "  \"heads\": " << summary.heads << ",\n";
  out << "  \"trial_count\": " << summary.trial_count << ",\n";
  out << "  \"skipped\": [";
  for (std::size_t i = 0; i < summary.skipped.size(); ++i) {
    out << (i == 0 ? "\n" : ",\n") << "    {\"file\": " << json_string(summary.skipped[i].file)
        << ", \"reason\": " << json_string(summary.skipped[i].reason) << "}";
  }
  out << (summary.skipped.empty() ? "],\n" : "\n  ],\n");
  out << "  \"groups\": [";
  for (std::size_t g = 0; g < summary.groups.size(); ++g) {
    const GroupSummary& group = summary.groups[g];
    std::map<std::string, std::string> keys;
    for (std::size_t k = 0; k < summary.group_by.size(); ++k) {
      keys[summary.group_by[k]] = group.key_values[k];
    }
    std::map<std::string, int> status;
    for (const std::string& name : known_statuses()) status[name] = 0;
    for (const auto& [name, count] : group.status_counts) status[name] = count;
    out << (g == 0 ? "\n" : ",\n") << "    {\n";
    out << "      \"keys\": " << json_string_map(keys) << ",\n";
    out << "      \"n\": " << group.trials.size() << ",\n";
    out << "      \"status\": {";
    bool first = true;
    for (const auto& [name, count] : status) {
      out << (first ? "" : ", ") << json_string(name) << ": " << count;
      first = false;
    }
    out << "},\n";
    out << "      \"values_from\": " << json_string(values_from_name(group.values_from)) << ",\n";
    out << "      \"n_values\": " << group.value_trials << ",\n";
    out << "      \"metrics\": {";
    for (std::size_t m = 0; m < summary.metrics.size(); ++m) {
      const std::string& metric = summary.metrics[m];
      out << (m == 0 ? "\n" : ",\n") << "        " << json_string(metric)
          << ": {\"last\": " << json_statistic(group.last.at(metric))
          << ", \"best\": " << json_statistic(group.best.at(metric)) << "}";
    }
    out << "\n      },\n";
    out << "      \"auxiliary_heads\": [";
    for (std::size_t head = 0; head < group.auxiliary_last.size(); ++head) {
      out << (head == 0 ? "" : ", ") << "{\"last\": " << json_statistic(group.auxiliary_last[head])
          << ", \"best\": " << json_statistic(group.auxiliary_best[head]) << "}";
    }
    out << "],\n";
    out << "      \"epochs\": " << json_statistic(group.epochs) << ",\n";
    out << "      \"wall_s\": " << json_statistic(group.wall_s) << ",\n";
    out << "      \"gpu_hours_sum\": " << json_number(group.gpu_hours) << ",\n";
    out << "      \"trials\": [";
    for (std::size_t t = 0; t < group.trials.size(); ++t) {
      const TrialRecord& trial = group.trials[t];
      out << (t == 0 ? "\n" : ",\n") << "        {\"trial_id\": " << json_string(trial.trial_id)
          << ", \"file\": " << json_string(trial.file)
          << ", \"status\": " << json_string(trial.status)
          << ", \"has_final\": " << (trial.has_final ? "true" : "false")
          << ", \"heads\": " << trial.heads << ", \"epochs\": " << json_number(trial.epochs)
          << ", \"wall_s\": " << json_number(trial.wall_s)
          << ", \"gpu_hours\": " << json_number(trial.gpu_hours)
          << ", \"last\": " << json_values(trial.last) << ", \"best\": " << json_values(trial.best)
          << ", \"config\": " << json_string_map(trial.config) << "}";
    }
    out << (group.trials.empty() ? "]\n" : "\n      ]\n");
    out << "    }";
  }
  out << (summary.groups.empty() ? "]" : "\n  ]");
  if (summary.comparison) {
    out << ",\n  \"comparison\": " << comparison_json(*summary.comparison, 2);
  }
  if (summary.early_stop) out << ",\n  \"early_stop\": " << early_stop_json(*summary.early_stop);
  out << "\n}\n";
  return out.str();
}

}  // namespace

ReportOptions::Format parse_report_format(const std::string& name) {
  if (name == "md" || name == "markdown") return ReportOptions::Format::Markdown;
  if (name == "csv") return ReportOptions::Format::Csv;
  if (name == "json") return ReportOptions::Format::Json;
  throw InputError("unknown report format '" + name + "' (expected md, csv or json)");
}

Statistic mean_and_std(const std::vector<double>& values) {
  Statistic statistic;
  double sum = 0.0;
  for (double value : values) {
    if (std::isnan(value)) continue;
    sum += value;
    ++statistic.count;
  }
  if (statistic.count == 0) return statistic;
  statistic.mean = sum / statistic.count;
  if (statistic.count == 1) {
    statistic.std_dev = 0.0;
    return statistic;
  }
  double squares = 0.0;
  for (double value : values) {
    if (!std::isnan(value)) squares += (value - statistic.mean) * (value - statistic.mean);
  }
  statistic.std_dev = std::sqrt(squares / (statistic.count - 1));
  return statistic;
}

std::vector<std::string> varying_config_keys(const std::vector<TrialRecord>& trials) {
  std::map<std::string, std::set<std::string>> values;
  for (const TrialRecord& trial : trials) {
    for (const auto& [key, value] : trial.config) values[key].insert(value);
  }
  std::vector<std::string> keys;
  for (const auto& [key, distinct] : values) {
    if (default_excluded_keys().count(key) != 0) continue;
    bool everywhere = std::all_of(trials.begin(), trials.end(), [&](const TrialRecord& trial) {
      return trial.config.count(key) != 0;
    });
    if (distinct.size() > 1 || !everywhere) keys.push_back(key);
  }
  return keys;
}

std::vector<TrialRecord> select_trials(std::vector<TrialRecord> trials,
                                       const std::vector<std::string>& where) {
  for (const std::string& text : where) {
    const std::size_t equals = text.find('=');
    MD_INPUT_CHECK(equals != std::string::npos && equals > 0 && equals + 1 < text.size(),
                   "--where expects KEY=VALUE (for example ", io::key_path::method_name,
                   "=metadistiller), got '", text, "'");
    const std::string key = text.substr(0, equals);
    const std::string value = text.substr(equals + 1);
    check_config_keys({key}, trials, "--where key");
    std::erase_if(trials, [&](const TrialRecord& trial) {
      const auto found = trial.config.find(key);
      return found == trial.config.end() || !same_config_value(found->second, value);
    });
  }
  return trials;
}

SweepSummary summarize_trials(std::vector<TrialRecord> trials, const ReportOptions& options) {
  trials = select_trials(std::move(trials), options.where);
  SweepSummary summary;
  summary.where = options.where;
  summary.metric = options.metric;
  summary.trial_count = static_cast<int>(trials.size());
  for (const TrialRecord& trial : trials) summary.heads = std::max(summary.heads, trial.heads);
  check_metric(options.metric, summary.heads, summary.trial_count);
  summary.metrics = metric_order(options.metric, summary.heads);
  if (!options.compare.empty()) {
    summary.comparison = compare_trials(trials, parse_compare_spec(options.compare),
                                        summary.metrics, options.compare_settings);
  }
  if (options.group_by.empty()) {
    summary.group_by = varying_config_keys(trials);
  } else {
    check_config_keys(options.group_by, trials, "group-by key");
    summary.group_by = options.group_by;
  }
  std::map<std::vector<std::string>, GroupSummary, KeyValuesLess> groups;
  for (TrialRecord& trial : trials) {
    std::vector<std::string> key_values;
    for (const std::string& key : summary.group_by) {
      auto found = trial.config.find(key);
      key_values.push_back(found == trial.config.end() ? std::string() : found->second);
    }
    GroupSummary& group = groups[key_values];
    group.key_values = key_values;
    group.trials.push_back(std::move(trial));
  }
  for (auto& [key_values, group] : groups) {
    aggregate(group, summary.metrics, summary.heads);
    summary.groups.push_back(std::move(group));
  }
  return summary;
}

SweepSummary summarize_sweep(const std::string& dir, const ReportOptions& options,
                             std::vector<std::string>* warnings) {
  std::vector<TrialRecord> trials;
  std::vector<SkippedFile> skipped;
  for (const std::string& path : find_trial_logs(dir)) {
    try {
      trials.push_back(load_trial_record(path));
    } catch (const Error& error) {
      std::string reason = error.what();
      skipped.push_back({path, reason});
      if (warnings != nullptr) {
        const bool names_file = reason.find(path) != std::string::npos;
        warnings->push_back(names_file ? "skipped: " + reason : "skipped " + path + ": " + reason);
      }
    }
  }
  SweepSummary summary = summarize_trials(std::move(trials), options);
  summary.directory = dir;
  std::vector<std::vector<const TrialRecord*>> groups;
  for (const GroupSummary& group : summary.groups) {
    groups.emplace_back();
    for (const TrialRecord& trial : group.trials) groups.back().push_back(&trial);
  }
  summary.early_stop = summarize_early_stop(dir, groups);
  summary.skipped = std::move(skipped);
  if (summary.trial_count == 0 && warnings != nullptr) {
    warnings->push_back(dir + ": no trial logs found (*.h5, searched recursively)");
  }
  return summary;
}

std::string format_report(const SweepSummary& summary, ReportOptions::Format format) {
  switch (format) {
    case ReportOptions::Format::Markdown:
      return format_markdown(summary);
    case ReportOptions::Format::Csv:
      return format_csv(summary);
    case ReportOptions::Format::Json:
      return format_json(summary);
  }
  throw Error("unknown report format");
}

std::string make_report(const std::string& dir, const ReportOptions& options,
                        std::vector<std::string>* warnings) {
  return format_report(summarize_sweep(dir, options, warnings), options.format);
}

}  // namespace md::analysis
