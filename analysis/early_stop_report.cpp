// The report's early-stopping section (see early_stop_report.h).
#include "early_stop_report.h"

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <sstream>

#include "io/config_keys.h"
#include "io/log_schema.h"
#include "text_format.h"

namespace md::analysis {
namespace {

namespace fs = std::filesystem;

// level -> epoch from the decision records' "level: K" and "epoch: E" lines (epoch 0: the end).
std::map<int, int> recorded_levels(const std::string& dir) {
  std::map<int, int> levels;
  std::error_code error;
  const fs::path records = fs::path(dir) / ".asha";
  if (!fs::is_directory(records, error)) return levels;
  for (const auto& level_dir : fs::directory_iterator(records, error)) {
    if (level_dir.path().filename().string().rfind("level", 0) != 0) continue;
    for (const auto& record : fs::directory_iterator(level_dir.path(), error)) {
      std::ifstream file(record.path());
      std::string line;
      int level = -1, epoch = -1;
      while (std::getline(file, line)) {
        if (line.rfind("level: ", 0) == 0) level = std::atoi(line.c_str() + 7);
        if (line.rfind("epoch: ", 0) == 0) epoch = std::atoi(line.c_str() + 7);
      }
      if (level >= 0 && epoch > 0) levels[level] = epoch;
    }
  }
  return levels;
}

int config_epochs(const TrialRecord& trial) {
  const auto found = trial.config.find(std::string(io::key_path::optim_epochs));
  return found == trial.config.end() ? 0 : std::atoi(found->second.c_str());
}

void add_trial(EarlyStopGroup& group, const TrialRecord& trial, const std::vector<int>& rungs) {
  const int epochs = static_cast<int>(trial.epochs);
  group.reaching.resize(rungs.size(), 0);
  for (std::size_t rung = 0; rung < rungs.size(); ++rung) {
    if (epochs >= rungs[rung]) ++group.reaching[rung];
  }
  if (trial.status == io::status_name(io::TrialStatus::Stopped)) {
    ++group.stopped;
    group.stopped_epochs.insert(
        std::upper_bound(group.stopped_epochs.begin(), group.stopped_epochs.end(), epochs), epochs);
  }
  if (trial.status == io::status_name(io::TrialStatus::Complete)) ++group.complete;
  const double hours = trial.wall_s * trial.ranks / 3600.0;
  group.hours += hours;
  const int full = config_epochs(trial);
  group.full_hours += epochs > 0 && full > 0 ? hours * full / epochs : hours;
}

// "1 ×16, 2 ×6": the epochs stopped trials reached, with their counts.
std::string stopped_text(const std::vector<int>& epochs) {
  std::ostringstream text;
  for (std::size_t i = 0; i < epochs.size();) {
    std::size_t j = i;
    while (j < epochs.size() && epochs[j] == epochs[i]) ++j;
    text << (i == 0 ? "" : ", ") << "epoch " << epochs[i] << " ×" << (j - i);
    i = j;
  }
  return text.str();
}

std::string hours_text(double hours) {
  return hours >= 0.1 ? printf_text("%.2f", hours) : printf_text("%.4f", hours);
}

}  // namespace

std::optional<EarlyStopSummary> summarize_early_stop(
    const std::string& dir, const std::vector<std::vector<const TrialRecord*>>& groups) {
  const std::map<int, int> levels = recorded_levels(dir);
  std::set<int> rung_set;
  std::set<int> full_lengths;
  bool any_stopped = false, any_device = false, all_gpu = true;
  for (const auto& group : groups) {
    for (const TrialRecord* trial : group) {
      full_lengths.insert(config_epochs(*trial));
      if (trial->status == io::status_name(io::TrialStatus::Stopped)) {
        any_stopped = true;
        if (levels.empty()) rung_set.insert(static_cast<int>(trial->epochs));
      }
      if (!trial->device_name.empty()) {
        any_device = true;
        all_gpu = all_gpu && trial->device_name.rfind("cuda", 0) == 0;
      }
    }
  }
  if (!any_stopped && levels.empty()) return std::nullopt;
  for (const auto& [level, epoch] : levels) rung_set.insert(epoch);
  EarlyStopSummary summary;
  summary.rungs.assign(rung_set.begin(), rung_set.end());
  if (full_lengths.size() == 1 && *full_lengths.begin() > 0 &&
      (summary.rungs.empty() || summary.rungs.back() < *full_lengths.begin())) {
    summary.rungs.push_back(*full_lengths.begin());
  }
  summary.on_gpu = any_device && all_gpu;
  summary.total.reaching.assign(summary.rungs.size(), 0);
  for (const auto& group : groups) {
    EarlyStopGroup counts;
    counts.reaching.assign(summary.rungs.size(), 0);
    for (const TrialRecord* trial : group) {
      add_trial(counts, *trial, summary.rungs);
      add_trial(summary.total, *trial, summary.rungs);
    }
    summary.groups.push_back(std::move(counts));
  }
  return summary;
}

std::string early_stop_markdown(const EarlyStopSummary& summary,
                                const std::vector<std::string>& key_header,
                                const std::vector<std::vector<std::string>>& key_cells) {
  const std::string unit = summary.on_gpu ? "GPU-hours" : "rank-hours";
  std::ostringstream out;
  out << "\n## Early stopping (ASHA)\n\nTrials that reached each rung (at least that many epochs), "
         "trials stopped at a rung (with the epoch they reached), and the "
      << unit << " spent (wall time × ranks"
      << (summary.on_gpu ? "" : "; these trials ran on the CPU")
      << ") against a full sweep, every trial trained to `" << io::key_path::optim_epochs
      << "` at its own time per epoch.\n\n";
  std::vector<std::string> header = key_header;
  for (int rung : summary.rungs) header.push_back("≥ epoch " + std::to_string(rung));
  for (const std::string& column : {std::string("complete"), std::string("stopped"), unit,
                                    std::string("full sweep"), std::string("saved")}) {
    header.push_back(column);
  }
  const auto row = [&](std::vector<std::string> cells, const EarlyStopGroup& group) {
    for (int count : group.reaching) cells.push_back(std::to_string(count));
    cells.push_back(std::to_string(group.complete));
    cells.push_back(group.stopped == 0 ? "0"
                                       : std::to_string(group.stopped) + " (" +
                                             stopped_text(group.stopped_epochs) + ")");
    cells.push_back(hours_text(group.hours));
    cells.push_back(hours_text(group.full_hours));
    cells.push_back(group.full_hours > 0
                        ? printf_text("%.0f%%", 100.0 * (1.0 - group.hours / group.full_hours))
                        : "—");
    out << "|";
    for (const std::string& cell : cells) out << " " << cell << " |";
    out << "\n";
  };
  out << "|";
  for (const std::string& cell : header) out << " " << cell << " |";
  out << "\n|";
  for (std::size_t i = 0; i < header.size(); ++i) out << " --- |";
  out << "\n";
  for (std::size_t group = 0; group < summary.groups.size(); ++group) {
    row(key_cells[group], summary.groups[group]);
  }
  std::vector<std::string> total_cells(key_header.size(), "");
  total_cells.front() = "**all**";
  row(total_cells, summary.total);
  return out.str();
}

std::string early_stop_json(const EarlyStopSummary& summary) {
  const auto group_json = [](const EarlyStopGroup& group) {
    std::ostringstream out;
    out << "{\"reaching\": [";
    for (std::size_t i = 0; i < group.reaching.size(); ++i) {
      out << (i == 0 ? "" : ", ") << group.reaching[i];
    }
    out << "], \"complete\": " << group.complete << ", \"stopped\": " << group.stopped
        << ", \"stopped_epochs\": [";
    for (std::size_t i = 0; i < group.stopped_epochs.size(); ++i) {
      out << (i == 0 ? "" : ", ") << group.stopped_epochs[i];
    }
    out << "], \"hours\": " << printf_text("%.6g", group.hours)
        << ", \"full_sweep_hours\": " << printf_text("%.6g", group.full_hours) << "}";
    return out.str();
  };
  std::ostringstream out;
  out << "{\"rungs\": [";
  for (std::size_t i = 0; i < summary.rungs.size(); ++i) {
    out << (i == 0 ? "" : ", ") << summary.rungs[i];
  }
  out << "], \"hours_are\": \"" << (summary.on_gpu ? "gpu_hours" : "rank_hours")
      << "\", \"groups\": [";
  for (std::size_t i = 0; i < summary.groups.size(); ++i) {
    out << (i == 0 ? "" : ", ") << group_json(summary.groups[i]);
  }
  out << "], \"total\": " << group_json(summary.total) << "}";
  return out.str();
}

}  // namespace md::analysis
