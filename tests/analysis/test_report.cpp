// Tests of the sweep report (analysis/report.h) on trial logs written by the real writer
// (io::TrialLog) with known numbers: the three formats must give exactly the expected counts,
// means and sample standard deviations; unreadable files are skipped with a warning naming
// them; running trials are counted and listed; grouping keys are found or taken as given.
#include <gtest/gtest.h>
#include <hdf5.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <set>
#include <sstream>

#include "../io/io_test_util.h"
#include "core/error.h"
#include "io/config.h"
#include "io/config_keys.h"
#include "io/trial_log.h"
#include "json_value.h"
#include "report.h"

namespace md::analysis {
namespace {

using test::expect_input_error;
using test::JsonParser;
using test::JsonValue;
using test::TempDir;

constexpr int kHeads = 4;  // heads of every trial but those given fewer (TrialSpec::heads)

struct TrialSpec {
  std::string method = "baseline";
  std::string arch = "resnet20";
  std::uint64_t seed = 0;
  int threads = 0;
  int heads = kHeads;  // 1: a baseline network, whose only head is its final head
  std::string status = "complete";
  double last_final = 0.0;
  double best_final = 0.0;
  double wall_s = 100.0;
  double gpu_hours = 0.5;
  std::vector<double> epoch_final;  // /epoch test_acc_final rows; without /final when running
  double last_top5 = -1.0;          // >= 0: /final holds top-5 accuracies (best = last)
};

io::TrialConfig make_config(const TrialSpec& spec) {
  io::TrialConfig config = io::parse_trial_config(
      "dataset: {name: idx, root: /data}\nmodel: {arch: " + spec.arch + "}\nmethod: {name: " +
          spec.method + "}\noptim: {epochs: 2}\nruntime: {seed: " + std::to_string(spec.seed) +
          ", threads: " + std::to_string(spec.threads) + "}\n",
      "<test>");
  return config;
}

// Head s of a trial with `heads` heads reaches final - 0.01 * (heads - 1 - s); the ensemble
// final + 0.005.
double head_value(double final_value, int head, int heads = kHeads) {
  return final_value - 0.01 * static_cast<double>(heads - 1 - head);
}

std::string write_trial(const TempDir& dir, const TrialSpec& spec) {
  io::TrialConfig config = make_config(spec);
  const std::string id = io::trial_id(config);
  const std::string path = dir.file(id + ".h5");
  io::TrialLog log = io::TrialLog::open(path, io::OpenMode::Create,
                                        {{"trial_id", id},
                                         {"sweep", std::string("test-sweep")},
                                         {"status", std::string("running")},
                                         {"error", std::string()},
                                         {"config", io::to_yaml(config)},
                                         {"git_sha", std::string("0000000")},
                                         {"host", std::string("localhost")},
                                         {"device_name", std::string("cpu")},
                                         {"ranks", std::int64_t{1}},
                                         {"start_time", std::string("2024-01-01T00:00:00Z")}});
  std::vector<double> epochs = spec.epoch_final;
  if (epochs.empty()) epochs = {spec.best_final, spec.last_final};
  for (std::size_t e = 0; e < epochs.size(); ++e) {
    io::Row row{{"epoch", static_cast<double>(e + 1)},
                {"train_loss", 1.0},
                {"test_loss", 1.0},
                {"test_acc_final", epochs[e]},
                {"test_acc_ensemble", epochs[e] + 0.005},
                {"wall_s", 10.0}};
    for (int head = 0; head < spec.heads; ++head) {
      row["test_acc_head" + std::to_string(head)] = head_value(epochs[e], head, spec.heads);
    }
    log.append("epoch", row);
  }
  log.flush();
  if (spec.status != "running") {
    std::map<std::string, double> final_values{
        {"last_acc_final", spec.last_final},
        {"best_acc_final", spec.best_final},
        {"last_acc_ensemble", spec.last_final + 0.005},
        {"best_acc_ensemble", spec.best_final + 0.005},
        {"total_wall_s", spec.wall_s},
        {"gpu_hours", spec.gpu_hours},
        {"epochs", static_cast<double>(epochs.size())},
        {"steps", 100.0 * static_cast<double>(epochs.size())}};
    for (int head = 0; head < spec.heads; ++head) {
      final_values["last_acc_head" + std::to_string(head)] =
          head_value(spec.last_final, head, spec.heads);
      final_values["best_acc_head" + std::to_string(head)] =
          head_value(spec.best_final, head, spec.heads);
    }
    if (spec.last_top5 >= 0.0) {
      for (const char* which : {"last_", "best_"}) {
        final_values[std::string(which) + "top5_final"] = spec.last_top5;
        final_values[std::string(which) + "top5_ensemble"] = spec.last_top5 + 0.01;
      }
    }
    if (spec.status == "complete") log.set_final(final_values);
    log.set_attribute("status", spec.status);
    log.set_attribute("end_time", std::string("2024-01-01T01:00:00Z"));
  }
  log.close();
  return path;
}

// 3 seeds x 2 methods with known final accuracies.
const std::vector<double> kBaselineLast{0.70, 0.72, 0.74};
const std::vector<double> kBaselineBest{0.71, 0.73, 0.75};
const std::vector<double> kMetaLast{0.75, 0.76, 0.80};
const std::vector<double> kMetaBest{0.76, 0.77, 0.81};

void write_two_methods(const TempDir& dir) {
  for (std::uint64_t seed = 0; seed < 3; ++seed) {
    TrialSpec baseline;
    baseline.method = "baseline";
    baseline.seed = seed;
    baseline.last_final = kBaselineLast[seed];
    baseline.best_final = kBaselineBest[seed];
    baseline.wall_s = 100.0 + 10.0 * static_cast<double>(seed);
    write_trial(dir, baseline);
    TrialSpec meta = baseline;
    meta.method = "metadistiller";
    meta.last_final = kMetaLast[seed];
    meta.best_final = kMetaBest[seed];
    meta.wall_s = 200.0 + 10.0 * static_cast<double>(seed);
    meta.gpu_hours = 1.25;
    write_trial(dir, meta);
  }
}

double mean_of(const std::vector<double>& values) {
  double sum = 0.0;
  for (double value : values) sum += value;
  return sum / static_cast<double>(values.size());
}

double sample_std_of(const std::vector<double>& values) {
  const double mean = mean_of(values);
  double squares = 0.0;
  for (double value : values) squares += (value - mean) * (value - mean);
  return std::sqrt(squares / static_cast<double>(values.size() - 1));
}

std::vector<double> shifted(const std::vector<double>& values, double offset) {
  std::vector<double> out;
  for (double value : values) out.push_back(value + offset);
  return out;
}

std::string report(const std::string& dir, ReportOptions options, ReportOptions::Format format,
                   std::vector<std::string>* warnings = nullptr) {
  options.format = format;
  std::vector<std::string> ignored;
  return make_report(dir, options, warnings != nullptr ? warnings : &ignored);
}

bool contains(const std::string& text, const std::string& part) {
  return text.find(part) != std::string::npos;
}

std::vector<std::string> split(const std::string& text, char separator) {
  std::vector<std::string> parts;
  std::string part;
  std::istringstream in(text);
  while (std::getline(in, part, separator)) parts.push_back(part);
  return parts;
}

// CSV (no quoted fields in these tests): header -> column index, and the rows.
struct Csv {
  std::map<std::string, std::size_t> columns;
  std::vector<std::vector<std::string>> rows;
  const std::string& at(std::size_t row, const std::string& column) const {
    auto found = columns.find(column);
    if (found == columns.end()) throw std::runtime_error("no CSV column " + column);
    return rows.at(row).at(found->second);
  }
  double number(std::size_t row, const std::string& column) const {
    return std::stod(at(row, column));
  }
};

Csv parse_csv(const std::string& text) {
  Csv csv;
  std::vector<std::string> lines = split(text, '\n');
  EXPECT_FALSE(lines.empty());
  if (lines.empty()) return csv;
  std::vector<std::string> header = split(lines[0], ',');
  for (std::size_t i = 0; i < header.size(); ++i) csv.columns[header[i]] = i;
  for (std::size_t i = 1; i < lines.size(); ++i) {
    std::vector<std::string> fields = split(lines[i], ',');
    if (!lines[i].empty() && lines[i].back() == ',') fields.emplace_back();
    EXPECT_EQ(fields.size(), header.size()) << lines[i];
    csv.rows.push_back(fields);
  }
  return csv;
}

TEST(Statistics, SampleStdAndSingleTrial) {
  Statistic three = mean_and_std({0.70, 0.72, 0.74});
  EXPECT_EQ(three.count, 3);
  EXPECT_NEAR(three.mean, 0.72, 1e-15);
  EXPECT_NEAR(three.std_dev, 0.02, 1e-15);  // divisor n - 1: population std would be 0.0163
  Statistic one = mean_and_std({0.5});
  EXPECT_EQ(one.mean, 0.5);
  EXPECT_EQ(one.std_dev, 0.0);
  Statistic with_nan = mean_and_std({0.5, std::nan(""), 0.7});
  EXPECT_EQ(with_nan.count, 2);
  EXPECT_NEAR(with_nan.mean, 0.6, 1e-15);
  Statistic none = mean_and_std({});
  EXPECT_EQ(none.count, 0);
  EXPECT_TRUE(std::isnan(none.mean));
}

TEST(Report, MarkdownShowsMeanAndStdPerMethod) {
  TempDir dir;
  write_two_methods(dir);
  const std::string markdown = report(dir.file(""), {}, ReportOptions::Format::Markdown);
  EXPECT_TRUE(contains(markdown, "6 trials in 2 groups, grouped by `method.name`.")) << markdown;
  // baseline: last 0.70/0.72/0.74 -> 72.00 ± 2.00; best 73.00 ± 2.00.
  // metadistiller: last 0.75/0.76/0.80 -> 77.00 ± 2.65 (sqrt(7e-4)); best 78.00 ± 2.65.
  EXPECT_TRUE(contains(markdown,
                       "| baseline | 3 | 3 complete | 72.00 ± 2.00 | 73.00 ± 2.00 | "
                       "72.50 ± 2.00 | 73.50 ± 2.00 | 2 | 110.0 s | 1.50 |"))
      << markdown;
  EXPECT_TRUE(contains(markdown,
                       "| metadistiller | 3 | 3 complete | 77.00 ± 2.65 | 78.00 ± 2.65 "
                       "| 77.50 ± 2.65 | 78.50 ± 2.65 | 2 | 3.5 min | 3.75 |"))
      << markdown;
  // Every head: head 0 is 3 points below the final head.
  EXPECT_TRUE(contains(markdown, "## Every head, last epoch")) << markdown;
  EXPECT_TRUE(contains(markdown, "| method.name | head 0 | head 1 | head 2 | final | ensemble |"))
      << markdown;
  EXPECT_TRUE(contains(markdown,
                       "| baseline | 69.00 ± 2.00 | 70.00 ± 2.00 | 71.00 ± 2.00 | "
                       "72.00 ± 2.00 | 72.50 ± 2.00 |"))
      << markdown;
  EXPECT_TRUE(contains(markdown, "## Every head, best epoch")) << markdown;
  EXPECT_TRUE(contains(markdown,
                       "| metadistiller | 75.00 ± 2.65 | 76.00 ± 2.65 | 77.00 ± 2.65 | "
                       "78.00 ± 2.65 | 78.50 ± 2.65 |"))
      << markdown;
  EXPECT_FALSE(contains(markdown, "In progress")) << markdown;
  EXPECT_FALSE(contains(markdown, "Skipped")) << markdown;
}

TEST(Report, CsvHasRawFractionsPerGroup) {
  TempDir dir;
  write_two_methods(dir);
  const std::string text = report(dir.file(""), {}, ReportOptions::Format::Csv);
  Csv csv = parse_csv(text);
  ASSERT_EQ(csv.rows.size(), 2u) << text;
  EXPECT_EQ(csv.at(0, "method.name"), "baseline");
  EXPECT_EQ(csv.at(1, "method.name"), "metadistiller");
  EXPECT_EQ(csv.columns.count("runtime.seed"), 0u);
  EXPECT_EQ(csv.rows[0].front(), "baseline") << "the group keys come first";
  EXPECT_EQ(split(text, '\n')[0].rfind("method.name,n,complete,running,interrupted,failed,"
                                       "diverged,other,values_from,n_values,last_acc_final_mean",
                                       0),
            0u)
      << text;
  for (std::size_t row = 0; row < 2; ++row) {
    const auto& last = row == 0 ? kBaselineLast : kMetaLast;
    const auto& best = row == 0 ? kBaselineBest : kMetaBest;
    EXPECT_EQ(csv.at(row, "n"), "3");
    EXPECT_EQ(csv.at(row, "complete"), "3");
    EXPECT_EQ(csv.at(row, "running"), "0");
    EXPECT_EQ(csv.at(row, "values_from"), "complete");
    EXPECT_EQ(csv.at(row, "n_values"), "3");
    EXPECT_NEAR(csv.number(row, "last_acc_final_mean"), mean_of(last), 1e-12);
    EXPECT_NEAR(csv.number(row, "last_acc_final_std"), sample_std_of(last), 1e-12);
    EXPECT_NEAR(csv.number(row, "best_acc_final_mean"), mean_of(best), 1e-12);
    EXPECT_NEAR(csv.number(row, "best_acc_final_std"), sample_std_of(best), 1e-12);
    EXPECT_NEAR(csv.number(row, "last_acc_ensemble_mean"), mean_of(shifted(last, 0.005)), 1e-12);
    for (int head = 0; head < kHeads; ++head) {
      const std::string name = "acc_head" + std::to_string(head);
      const double offset = -0.01 * (kHeads - 1 - head);
      EXPECT_NEAR(csv.number(row, "last_" + name + "_mean"), mean_of(shifted(last, offset)), 1e-12);
      EXPECT_NEAR(csv.number(row, "best_" + name + "_std"), sample_std_of(shifted(best, offset)),
                  1e-12);
    }
    EXPECT_EQ(csv.number(row, "epochs_mean"), 2.0);
    EXPECT_NEAR(csv.number(row, "wall_s_mean"), row == 0 ? 110.0 : 210.0, 1e-12);
    EXPECT_NEAR(csv.number(row, "gpu_hours_sum"), row == 0 ? 1.5 : 3.75, 1e-12);
  }
}

TEST(Report, JsonIsValidAndHasEveryField) {
  TempDir dir;
  write_two_methods(dir);
  const std::string text = report(dir.file(""), {}, ReportOptions::Format::Json);
  JsonValue json = JsonParser::parse(text);
  EXPECT_EQ(json["trial_count"].number, 6.0);
  EXPECT_EQ(json["metric"].text, "acc_final");
  EXPECT_EQ(json["heads"].number, 4.0);
  ASSERT_EQ(json["group_by"].items.size(), 1u);
  EXPECT_EQ(json["group_by"][0].text, "method.name");
  EXPECT_TRUE(json["skipped"].items.empty());
  ASSERT_EQ(json["groups"].items.size(), 2u);
  for (std::size_t g = 0; g < 2; ++g) {
    const JsonValue& group = json["groups"][g];
    const auto& last = g == 0 ? kBaselineLast : kMetaLast;
    const auto& best = g == 0 ? kBaselineBest : kMetaBest;
    EXPECT_EQ(group["keys"]["method.name"].text, g == 0 ? "baseline" : "metadistiller");
    EXPECT_EQ(group["n"].number, 3.0);
    EXPECT_EQ(group["status"]["complete"].number, 3.0);
    EXPECT_EQ(group["status"]["running"].number, 0.0);
    EXPECT_EQ(group["status"]["failed"].number, 0.0);
    EXPECT_EQ(group["values_from"].text, "complete");
    const JsonValue& acc_final = group["metrics"]["acc_final"];
    EXPECT_NEAR(acc_final["last"]["mean"].number, mean_of(last), 1e-12);
    EXPECT_NEAR(acc_final["last"]["std"].number, sample_std_of(last), 1e-12);
    EXPECT_EQ(acc_final["last"]["count"].number, 3.0);
    EXPECT_NEAR(acc_final["best"]["mean"].number, mean_of(best), 1e-12);
    EXPECT_NEAR(group["metrics"]["acc_head0"]["last"]["mean"].number, mean_of(last) - 0.03, 1e-12);
    EXPECT_NEAR(group["metrics"]["acc_ensemble"]["best"]["std"].number, sample_std_of(best), 1e-12);
    EXPECT_EQ(group["epochs"]["mean"].number, 2.0);
    EXPECT_NEAR(group["wall_s"]["mean"].number, g == 0 ? 110.0 : 210.0, 1e-12);
    EXPECT_NEAR(group["gpu_hours_sum"].number, g == 0 ? 1.5 : 3.75, 1e-12);
    ASSERT_EQ(group["trials"].items.size(), 3u);
    std::set<std::string> seeds;
    for (const JsonValue& trial : group["trials"].items) {
      EXPECT_EQ(trial["status"].text, "complete");
      EXPECT_TRUE(trial["has_final"].boolean);
      EXPECT_EQ(trial["trial_id"].text.size(), 16u);
      EXPECT_EQ(trial["config"]["method.name"].text, g == 0 ? "baseline" : "metadistiller");
      seeds.insert(trial["config"]["runtime.seed"].text);
    }
    EXPECT_EQ(seeds, (std::set<std::string>{"0", "1", "2"}));
  }
}

TEST(Report, BaselineHasOnlyItsFinalHead) {
  TempDir dir;
  for (std::uint64_t seed = 0; seed < 2; ++seed) {
    TrialSpec baseline;
    baseline.heads = 1;
    baseline.seed = seed;
    baseline.last_final = 0.70 + 0.02 * static_cast<double>(seed);
    baseline.best_final = baseline.last_final;
    write_trial(dir, baseline);
    TrialSpec byot = baseline;
    byot.method = "byot";
    byot.heads = kHeads;
    write_trial(dir, byot);
  }
  const std::string markdown = report(dir.file(""), {}, ReportOptions::Format::Markdown);
  // The baseline's head 0 is its final head: no auxiliary-head statistics.
  EXPECT_TRUE(contains(markdown, "| baseline | – | – | – | 71.00 ± 1.41 | 71.50 ± 1.41 |"))
      << markdown;
  EXPECT_TRUE(contains(markdown,
                       "| byot | 68.00 ± 1.41 | 69.00 ± 1.41 | 70.00 ± 1.41 | "
                       "71.00 ± 1.41 | 71.50 ± 1.41 |"))
      << markdown;
  JsonValue json = JsonParser::parse(report(dir.file(""), {}, ReportOptions::Format::Json));
  const JsonValue& baseline = json["groups"][0];
  EXPECT_EQ(baseline["keys"]["method.name"].text, "baseline");
  ASSERT_EQ(baseline["auxiliary_heads"].items.size(), 3u);
  EXPECT_TRUE(baseline["auxiliary_heads"][0]["last"]["mean"].is_null());
  EXPECT_EQ(baseline["auxiliary_heads"][0]["last"]["count"].number, 0.0);
  EXPECT_EQ(baseline["trials"][0]["heads"].number, 1.0);
  // The raw per-log metric acc_head0 is the baseline's final head.
  EXPECT_NEAR(baseline["metrics"]["acc_head0"]["last"]["mean"].number, 0.71, 1e-12);
  const JsonValue& byot = json["groups"][1];
  EXPECT_NEAR(byot["auxiliary_heads"][0]["last"]["mean"].number, 0.68, 1e-12);
  EXPECT_EQ(byot["auxiliary_heads"][2]["best"]["count"].number, 2.0);
}

TEST(Report, LeadingMetricOption) {
  TempDir dir;
  write_two_methods(dir);
  ReportOptions options;
  options.metric = "acc_head1";
  const std::string markdown = report(dir.file(""), options, ReportOptions::Format::Markdown);
  EXPECT_TRUE(contains(markdown,
                       "| method.name | n | status | acc_head1 last | acc_head1 best | "
                       "acc_ensemble last |"))
      << markdown;
  EXPECT_TRUE(contains(markdown, "| baseline | 3 | 3 complete | 70.00 ± 2.00 | 71.00 ± 2.00 |"))
      << markdown;
  Csv csv = parse_csv(report(dir.file(""), options, ReportOptions::Format::Csv));
  EXPECT_EQ(csv.columns.at("last_acc_head1_mean"), csv.columns.at("last_acc_final_mean") - 4)
      << "the leading metric's columns come first";
  options.metric = "acc_head4";
  expect_input_error([&] { report(dir.file(""), options, ReportOptions::Format::Csv); },
                     {"acc_head4", "heads 0 to 3"});
  options.metric = "accuracy";
  expect_input_error([&] { report(dir.file(""), options, ReportOptions::Format::Csv); },
                     {"unknown metric 'accuracy'"});
}

TEST(Report, WhereKeepsOnlyTheMatchingTrials) {
  TempDir dir;
  write_two_methods(dir);  // baseline and metadistiller, seeds 0-2
  ReportOptions options;
  options.where = {"method.name=metadistiller"};
  const std::string markdown = report(dir.file(""), options, ReportOptions::Format::Markdown);
  EXPECT_TRUE(contains(markdown, "Only the trials with `method.name=metadistiller`")) << markdown;
  EXPECT_TRUE(contains(markdown, "3 trials in 1 group")) << markdown;
  EXPECT_FALSE(contains(markdown, "| baseline |")) << markdown;
  // Several conditions must all hold; numbers match numerically (1 = 1.0).
  options.where = {"method.name=metadistiller", "runtime.seed=1.0"};
  EXPECT_TRUE(contains(report(dir.file(""), options, ReportOptions::Format::Markdown),
                       "1 trial in 1 group"));
  // The selection comes before grouping and comparing: with one method left there is nothing
  // to compare it with.
  options.where = {"runtime.seed=0"};
  options.compare = "method.name=baseline";
  const std::string compared = report(dir.file(""), options, ReportOptions::Format::Markdown);
  EXPECT_TRUE(contains(compared, "2 trials in 2 groups")) << compared;
  options.compare.clear();
  options.where = {"method.nam=baseline"};
  expect_input_error([&] { report(dir.file(""), options, ReportOptions::Format::Csv); },
                     {"--where key 'method.nam' is in no trial's config", "method.name"});
  options.where = {"method.name"};
  expect_input_error([&] { report(dir.file(""), options, ReportOptions::Format::Csv); },
                     {"--where expects KEY=VALUE", "'method.name'"});
}

TEST(Report, TopFiveMetricsLeadWhenAskedAndTheHeadTablesStayTopOne) {
  TempDir dir;
  for (std::uint64_t seed = 0; seed < 2; ++seed) {
    TrialSpec trial;
    trial.method = "byot";
    trial.seed = seed;
    trial.last_final = 0.5;
    trial.best_final = 0.5;
    trial.last_top5 = seed == 0 ? 0.80 : 0.90;
    write_trial(dir, trial);
  }
  ReportOptions options;
  options.metric = "top5_final";
  const std::string markdown = report(dir.file(""), options, ReportOptions::Format::Markdown);
  EXPECT_TRUE(contains(markdown,
                       "| n | status | top5_final last | top5_final best | "
                       "top5_ensemble last | top5_ensemble best |"))
      << markdown;
  EXPECT_TRUE(contains(markdown, "| 2 | 2 complete | 85.00 ± 7.07 | 85.00 ± 7.07 | 86.00 ± 7.07"))
      << markdown;
  EXPECT_TRUE(contains(markdown, "## Every head, last epoch")) << markdown;
  Csv csv = parse_csv(report(dir.file(""), options, ReportOptions::Format::Csv));
  EXPECT_NEAR(csv.number(0, "last_top5_final_mean"), 0.85, 1e-12);
  EXPECT_NEAR(csv.number(0, "last_acc_final_mean"), 0.5, 1e-12);
  options.metric = "top5_finale";
  expect_input_error([&] { report(dir.file(""), options, ReportOptions::Format::Csv); },
                     {"unknown metric 'top5_finale'", "top5_final"});
}

TEST(Report, SkipsCorruptForeignAndPartialFilesWithWarnings) {
  TempDir dir;
  write_two_methods(dir);
  std::filesystem::create_directories(dir.file("nested/deeper"));
  const std::string corrupt = dir.file("corrupt.h5");
  test::write_bytes(corrupt, std::vector<char>(4096, 'x'));
  const std::string foreign = dir.file("nested/foreign.h5");
  {
    hid_t file = H5Fcreate(foreign.c_str(), H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
    ASSERT_GE(file, 0);
    hid_t group = H5Gcreate2(file, "images", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    ASSERT_GE(group, 0);
    H5Gclose(group);
    H5Fclose(file);
  }
  TrialSpec partial_spec;
  partial_spec.seed = 7;
  partial_spec.last_final = 0.9;
  partial_spec.best_final = 0.9;
  const std::string partial = write_trial(dir, partial_spec);
  const std::string moved = dir.file("nested/deeper/partial.h5");
  std::filesystem::rename(partial, moved);
  test::truncate_file(moved, 0.5);
  // Never read: a checkpoint and a temporary file.
  test::write_bytes(dir.file("abc.ckpt.h5"), std::vector<char>(16, 'c'));
  test::write_bytes(dir.file("abc.ckpt.h5.tmp"), std::vector<char>(16, 't'));

  std::vector<std::string> warnings;
  const std::string csv_text = report(dir.file(""), {}, ReportOptions::Format::Csv, &warnings);
  ASSERT_EQ(warnings.size(), 3u);
  std::string all_warnings;
  for (const std::string& warning : warnings) all_warnings += warning + "\n";
  for (const std::string& path : {corrupt, foreign, moved}) {
    EXPECT_TRUE(contains(all_warnings, path)) << all_warnings;
  }
  EXPECT_TRUE(contains(all_warnings, "not a metadistill trial log")) << all_warnings;
  EXPECT_FALSE(contains(all_warnings, "ckpt")) << all_warnings;
  Csv csv = parse_csv(csv_text);
  ASSERT_EQ(csv.rows.size(), 2u);
  EXPECT_EQ(csv.at(0, "n"), "3");
  EXPECT_NEAR(csv.number(0, "last_acc_final_mean"), mean_of(kBaselineLast), 1e-12);

  const std::string markdown = report(dir.file(""), {}, ReportOptions::Format::Markdown);
  EXPECT_TRUE(contains(markdown, "## Skipped files")) << markdown;
  EXPECT_TRUE(contains(markdown, foreign)) << markdown;
  JsonValue json = JsonParser::parse(report(dir.file(""), {}, ReportOptions::Format::Json));
  EXPECT_EQ(json["skipped"].items.size(), 3u);
}

TEST(Report, EmptyDirectoryGivesAClearMessage) {
  TempDir dir;
  std::vector<std::string> warnings;
  const std::string markdown = report(dir.file(""), {}, ReportOptions::Format::Markdown, &warnings);
  EXPECT_TRUE(contains(markdown, "No trial logs found under")) << markdown;
  ASSERT_EQ(warnings.size(), 1u);
  EXPECT_TRUE(contains(warnings[0], "no trial logs found")) << warnings[0];
  const std::string csv = report(dir.file(""), {}, ReportOptions::Format::Csv);
  EXPECT_EQ(split(csv, '\n').size(), 1u) << "header only: " << csv;
  JsonValue json = JsonParser::parse(report(dir.file(""), {}, ReportOptions::Format::Json));
  EXPECT_EQ(json["trial_count"].number, 0.0);
  EXPECT_TRUE(json["groups"].items.empty());
  // Explicit keys cannot be checked without trials, and are no error.
  ReportOptions options;
  options.group_by = {"method.name"};
  EXPECT_TRUE(contains(report(dir.file(""), options, ReportOptions::Format::Markdown),
                       "No trial logs found"));
  expect_input_error([&] { report(dir.file("missing"), {}, ReportOptions::Format::Markdown); },
                     {"missing", "no such directory"});
}

TEST(Report, RunningTrialIsCountedAndShown) {
  TempDir dir;
  write_two_methods(dir);
  TrialSpec running;
  running.method = "baseline";
  running.seed = 3;
  running.status = "running";
  running.epoch_final = {0.30, 0.45, 0.40};
  write_trial(dir, running);
  TrialSpec lone = running;  // the only trial of its group: the group shows its values
  lone.method = "byot";
  lone.epoch_final = {0.50, 0.55};
  write_trial(dir, lone);

  const std::string markdown = report(dir.file(""), {}, ReportOptions::Format::Markdown);
  // The complete trials' statistics are unchanged by the running one.
  EXPECT_TRUE(contains(markdown, "| baseline | 4 | 3 complete, 1 running | 72.00 ± 2.00 |"))
      << markdown;
  EXPECT_TRUE(contains(markdown, "| byot | 1 | 1 running | 55.00 ± 0.00* | 55.00 ± 0.00* |"))
      << markdown;
  EXPECT_TRUE(contains(markdown, "## In progress")) << markdown;
  // Last epoch 40.00 and best 45.00 so far, after 3 epochs.
  EXPECT_TRUE(contains(markdown, "| baseline | running | 3 | 40.00 | 45.00 |")) << markdown;
  EXPECT_TRUE(contains(markdown, "| byot | running | 2 | 55.00 | 55.00 |")) << markdown;

  Csv csv = parse_csv(report(dir.file(""), {}, ReportOptions::Format::Csv));
  ASSERT_EQ(csv.rows.size(), 3u);
  EXPECT_EQ(csv.at(0, "method.name"), "baseline");
  EXPECT_EQ(csv.at(0, "n"), "4");
  EXPECT_EQ(csv.at(0, "complete"), "3");
  EXPECT_EQ(csv.at(0, "running"), "1");
  EXPECT_EQ(csv.at(0, "n_values"), "3");
  EXPECT_EQ(csv.at(1, "method.name"), "byot");
  EXPECT_EQ(csv.at(1, "values_from"), "in_progress");
  EXPECT_EQ(csv.number(1, "last_acc_final_mean"), 0.55);
  EXPECT_EQ(csv.number(1, "last_acc_final_std"), 0.0);
  EXPECT_EQ(csv.number(1, "epochs_mean"), 2.0);
  EXPECT_EQ(csv.number(1, "wall_s_mean"), 20.0);
  EXPECT_EQ(csv.number(1, "gpu_hours_sum"), 0.0);

  JsonValue json = JsonParser::parse(report(dir.file(""), {}, ReportOptions::Format::Json));
  const JsonValue& baseline = json["groups"][0];
  EXPECT_EQ(baseline["status"]["running"].number, 1.0);
  int running_trials = 0;
  for (const JsonValue& trial : baseline["trials"].items) {
    if (trial["status"].text != "running") continue;
    ++running_trials;
    EXPECT_FALSE(trial["has_final"].boolean);
    EXPECT_EQ(trial["last"]["acc_final"].number, 0.40);
    EXPECT_EQ(trial["best"]["acc_final"].number, 0.45);
    EXPECT_EQ(trial["epochs"].number, 3.0);
  }
  EXPECT_EQ(running_trials, 1);
}

TEST(Report, FailedAndDivergedTrialsAreCountedNotAveraged) {
  TempDir dir;
  write_two_methods(dir);
  TrialSpec diverged;
  diverged.method = "metadistiller";
  diverged.seed = 5;
  diverged.status = "diverged";
  diverged.epoch_final = {0.10};
  write_trial(dir, diverged);
  TrialSpec failed = diverged;
  failed.method = "byot";
  failed.status = "failed";
  write_trial(dir, failed);
  const std::string markdown = report(dir.file(""), {}, ReportOptions::Format::Markdown);
  EXPECT_TRUE(contains(markdown, "| metadistiller | 4 | 3 complete, 1 diverged | 77.00 ± 2.65 |"))
      << markdown;
  EXPECT_TRUE(contains(markdown, "| byot | 1 | 1 failed | – | – |")) << markdown;
  Csv csv = parse_csv(report(dir.file(""), {}, ReportOptions::Format::Csv));
  ASSERT_EQ(csv.rows.size(), 3u);
  EXPECT_EQ(csv.at(1, "failed"), "1");
  EXPECT_EQ(csv.at(1, "values_from"), "none");
  EXPECT_EQ(csv.at(1, "last_acc_final_mean"), "");
  EXPECT_EQ(csv.at(2, "diverged"), "1");
}

TEST(Report, StoppedTrialsGetTheEarlyStoppingSection) {
  TempDir dir;
  write_two_methods(dir);
  EXPECT_FALSE(
      contains(report(dir.file(""), {}, ReportOptions::Format::Markdown), "Early stopping"));
  for (std::uint64_t seed = 0; seed < 3; ++seed) {
    TrialSpec stopped;  // byot, stopped by ASHA after 1 of its 2 epochs (10 s)
    stopped.method = "byot";
    stopped.seed = seed;
    stopped.status = "stopped";
    stopped.epoch_final = {0.30};
    write_trial(dir, stopped);
  }
  const std::string markdown = report(dir.file(""), {}, ReportOptions::Format::Markdown);
  EXPECT_TRUE(contains(markdown, "| byot | 3 | 3 stopped |")) << markdown;
  EXPECT_TRUE(contains(markdown, "## Early stopping (ASHA)")) << markdown;
  EXPECT_TRUE(contains(markdown, "| ≥ epoch 1 | ≥ epoch 2 | complete | stopped | rank-hours |"))
      << markdown;
  // 3 x 10 s spent, 3 x 20 s for the full 2 epochs.
  EXPECT_TRUE(contains(markdown, "| byot | 3 | 0 | 0 | 3 (epoch 1 ×3) | 0.0083 | 0.0167 | 50% |"))
      << markdown;
  EXPECT_TRUE(contains(markdown, "| baseline | 3 | 3 | 3 | 0 | 0.0917 | 0.0917 | 0% |"))
      << markdown;
  JsonValue json = JsonParser::parse(report(dir.file(""), {}, ReportOptions::Format::Json));
  EXPECT_EQ(json["early_stop"]["rungs"].items.size(), 2u);
  EXPECT_EQ(json["early_stop"]["total"]["stopped"].number, 3.0);
}

TEST(Report, ExplicitGroupByKeys) {
  TempDir dir;
  write_two_methods(dir);
  ReportOptions options;
  options.group_by = {"model.arch"};  // the same for all six: one group over both methods
  Csv csv = parse_csv(report(dir.file(""), options, ReportOptions::Format::Csv));
  ASSERT_EQ(csv.rows.size(), 1u);
  EXPECT_EQ(csv.at(0, "model.arch"), "resnet20");
  EXPECT_EQ(csv.columns.count("method.name"), 0u);
  std::vector<double> all = kBaselineLast;
  all.insert(all.end(), kMetaLast.begin(), kMetaLast.end());
  EXPECT_EQ(csv.at(0, "n"), "6");
  EXPECT_NEAR(csv.number(0, "last_acc_final_mean"), mean_of(all), 1e-12);
  EXPECT_NEAR(csv.number(0, "last_acc_final_std"), sample_std_of(all), 1e-12);

  options.group_by = {"runtime.seed", "method.name"};  // seed may be grouped by explicitly
  csv = parse_csv(report(dir.file(""), options, ReportOptions::Format::Csv));
  ASSERT_EQ(csv.rows.size(), 6u);
  EXPECT_EQ(csv.at(0, "runtime.seed"), "0");
  EXPECT_EQ(csv.at(0, "method.name"), "baseline");
  EXPECT_EQ(csv.at(1, "method.name"), "metadistiller");
  EXPECT_EQ(csv.at(5, "runtime.seed"), "2");
  EXPECT_EQ(csv.number(0, "last_acc_final_mean"), kBaselineLast[0]);
  EXPECT_EQ(csv.number(0, "last_acc_final_std"), 0.0) << "one trial: std 0";

  options.group_by = {"method.nam"};
  expect_input_error([&] { report(dir.file(""), options, ReportOptions::Format::Csv); },
                     {"group-by key 'method.nam'", "method.name"});
}

TEST(Report, DefaultGroupByFindsTheVaryingKeys) {
  TempDir dir;
  for (const std::string arch : {"resnet20", "resnet56"}) {
    for (const std::string method : {"baseline", "byot"}) {
      for (std::uint64_t seed = 0; seed < 2; ++seed) {
        TrialSpec spec;
        spec.arch = arch;
        spec.method = method;
        spec.seed = seed;
        spec.threads = static_cast<int>(seed) + 1;  // varies, but does not change results
        spec.last_final = 0.5 + 0.1 * static_cast<double>(seed);
        spec.best_final = spec.last_final;
        write_trial(dir, spec);
      }
    }
  }
  std::vector<TrialRecord> trials;
  for (const std::string& path : find_trial_logs(dir.file(""))) {
    trials.push_back(load_trial_record(path));
  }
  ASSERT_EQ(trials.size(), 8u);
  EXPECT_EQ(varying_config_keys(trials), (std::vector<std::string>{"method.name", "model.arch"}));
  Csv csv = parse_csv(report(dir.file(""), {}, ReportOptions::Format::Csv));
  ASSERT_EQ(csv.rows.size(), 4u);
  EXPECT_EQ(csv.at(0, "method.name"), "baseline");
  EXPECT_EQ(csv.at(0, "model.arch"), "resnet20");
  EXPECT_EQ(csv.at(3, "method.name"), "byot");
  EXPECT_EQ(csv.at(3, "model.arch"), "resnet56");
  for (std::size_t row = 0; row < 4; ++row) {
    EXPECT_EQ(csv.at(row, "n"), "2");
    EXPECT_NEAR(csv.number(row, "last_acc_final_mean"), 0.55, 1e-12);
    EXPECT_NEAR(csv.number(row, "last_acc_final_std"), sample_std_of({0.5, 0.6}), 1e-12);
  }
  // Nothing varies: one group of every trial.
  TempDir same;
  TrialSpec spec;
  spec.last_final = 0.6;
  spec.best_final = 0.6;
  write_trial(same, spec);
  spec.seed = 1;
  write_trial(same, spec);
  const std::string markdown = report(same.file(""), {}, ReportOptions::Format::Markdown);
  EXPECT_TRUE(contains(markdown, "not grouped")) << markdown;
  EXPECT_TRUE(contains(markdown, "| all trials | 2 | 2 complete | 60.00 ± 0.00 |")) << markdown;
}

TEST(TrialRecords, FlattenConfigAndFindLogs) {
  auto flat = flatten_config(
      "optim: {lr: 0.1, schedule: {milestones: [100, 150]}}\nmodel: {arch: resnet20, x: null}\n",
      "<test>");
  EXPECT_EQ(flat.at("optim.lr"), "0.1");
  EXPECT_EQ(flat.at("optim.schedule.milestones"), "[100, 150]");
  EXPECT_EQ(flat.at("model.arch"), "resnet20");
  EXPECT_EQ(flat.at("model.x"), "null");
  EXPECT_EQ(flat.size(), 4u);
  expect_input_error([] { flatten_config("a: [1, 2", "<broken>"); }, {"<broken>"});
  expect_input_error([] { flatten_config("- 1\n- 2\n", "<list>"); }, {"<list>", "mapping"});

  TempDir dir;
  TrialSpec spec;
  spec.last_final = 0.6;
  spec.best_final = 0.7;
  const std::string path = write_trial(dir, spec);
  EXPECT_EQ(find_trial_logs(path), std::vector<std::string>{path}) << "a single log file";
  TrialRecord record = load_trial_record(path);
  EXPECT_EQ(record.status, "complete");
  EXPECT_TRUE(record.has_final);
  EXPECT_EQ(record.heads, kHeads);
  EXPECT_EQ(record.last.at("acc_final"), 0.6);
  EXPECT_EQ(record.best.at("acc_final"), 0.7);
  EXPECT_EQ(record.config.at("dataset.root"), "/data");
  EXPECT_EQ(record.trial_id + ".h5", std::filesystem::path(path).filename().string());
}

// The keys the default grouping leaves out are the key table's keys outside the trial id
// (io::keys_outside_trial_id) and runtime.seed: varying all of them forms no group.
TEST(Report, DefaultGroupingLeavesOutTheKeysOutsideTheTrialId) {
  std::vector<TrialRecord> trials(2);
  for (std::size_t i = 0; i < trials.size(); ++i) {
    trials[i].config["method.name"] = "baseline";
    trials[i].config["runtime.seed"] = std::to_string(i);
    for (const std::string& key : io::keys_outside_trial_id()) {
      trials[i].config[key] = "value" + std::to_string(i);
    }
  }
  EXPECT_TRUE(varying_config_keys(trials).empty());
  trials[1].config["method.name"] = "byot";
  EXPECT_EQ(varying_config_keys(trials), (std::vector<std::string>{"method.name"}));
  const std::vector<std::string> outside = io::keys_outside_trial_id();
  EXPECT_NE(std::find(outside.begin(), outside.end(), "runtime.cuda_graph"), outside.end());
}

}  // namespace
}  // namespace md::analysis
