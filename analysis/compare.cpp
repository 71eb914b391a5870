// Paired comparisons of the sweep report (compare.h): arms, pairing, the statistics per row, Holm
// per (metric, epoch), and the Markdown, CSV and JSON renderings.
#include "compare.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <map>
#include <set>
#include <sstream>

#include "core/error.h"
#include "io/config_keys.h"
#include "report.h"
#include "text_format.h"

namespace md::analysis {

namespace {

using stats::kNaN;

bool natural_less_values(const std::vector<std::string>& a, const std::vector<std::string>& b) {
  for (std::size_t i = 0; i < std::min(a.size(), b.size()); ++i) {
    if (a[i] != b[i]) return natural_less(a[i], b[i]);
  }
  return a.size() < b.size();
}

std::string config_value(const TrialRecord& trial, const std::string& key) {
  auto found = trial.config.find(key);
  return found == trial.config.end() ? std::string() : found->second;
}

// Head s of acc_head<s> / top5_head<s>, else -1.
int head_of(const std::string& metric) {
  for (const std::string prefix : {"acc_head", "top5_head"}) {
    if (metric.rfind(prefix, 0) == 0) return std::atoi(metric.c_str() + prefix.size());
  }
  return -1;
}

// The trial's accuracy for (metric, epoch); NaN when it lacks it or, for a head metric, when
// that head is not one of its auxiliary heads.
double trial_value(const TrialRecord& trial, const std::string& metric, bool best) {
  const int head = head_of(metric);
  if (head >= 0 && head + 1 >= trial.heads) return kNaN;
  const auto& values = best ? trial.best : trial.last;
  auto found = values.find(metric);
  return found == values.end() ? kNaN : found->second;
}

struct Arm {
  std::vector<const TrialRecord*> trials;
};

Comparison pair_arms(const std::string& value, const Arm& reference, const Arm& other,
                     const std::string& key) {
  Comparison comparison;
  comparison.value = value;
  comparison.reference_trials = static_cast<int>(reference.trials.size());
  comparison.value_trials = static_cast<int>(other.trials.size());
  std::set<std::string> keys;
  for (const Arm* arm : {&reference, &other}) {
    std::vector<TrialRecord> copies;
    for (const TrialRecord* trial : arm->trials) copies.push_back(*trial);
    for (const std::string& varying : varying_config_keys(copies)) keys.insert(varying);
    std::set<std::string> seeds;
    const std::string seed(io::replicate_key().path);
    for (const TrialRecord* trial : arm->trials) seeds.insert(config_value(*trial, seed));
    if (seeds.size() > 1) keys.insert(seed);
  }
  keys.erase(key);
  comparison.pairing_keys.assign(keys.begin(), keys.end());
  auto signature = [&](const TrialRecord& trial) {
    std::vector<std::string> values;
    for (const std::string& pairing_key : comparison.pairing_keys) {
      values.push_back(config_value(trial, pairing_key));
    }
    return values;
  };
  std::map<std::vector<std::string>, std::vector<const TrialRecord*>> reference_by, other_by;
  for (const TrialRecord* trial : reference.trials)
    reference_by[signature(*trial)].push_back(trial);
  for (const TrialRecord* trial : other.trials) other_by[signature(*trial)].push_back(trial);
  for (const auto& [values, trials] : reference_by) {
    auto partner = other_by.find(values);
    if (trials.size() == 1 && partner != other_by.end() && partner->second.size() == 1) {
      comparison.pairs.push_back({values, trials[0]->trial_id, partner->second[0]->trial_id});
    } else {
      for (const TrialRecord* trial : trials)
        comparison.unpaired_reference.push_back(trial->trial_id);
    }
  }
  for (const auto& [values, trials] : other_by) {
    auto partner = reference_by.find(values);
    if (!(trials.size() == 1 && partner != reference_by.end() && partner->second.size() == 1)) {
      for (const TrialRecord* trial : trials) comparison.unpaired_value.push_back(trial->trial_id);
    }
  }
  std::sort(comparison.pairs.begin(), comparison.pairs.end(),
            [](const TrialPair& a, const TrialPair& b) {
              return natural_less_values(a.pairing_values, b.pairing_values);
            });
  return comparison;
}

const TrialRecord* find_trial(const Arm& arm, const std::string& id) {
  for (const TrialRecord* trial : arm.trials) {
    if (trial->trial_id == id) return trial;
  }
  return nullptr;
}

ComparisonRow make_row(const Comparison& comparison, const Arm& reference, const Arm& other,
                       const std::string& metric, bool best, const CompareSettings& settings,
                       std::uint64_t seed, bool& has_values) {
  ComparisonRow row;
  row.value = comparison.value;
  row.metric = metric;
  row.epoch = best ? "best" : "last";
  row.bootstrap_seed = seed;
  std::vector<double> reference_all, value_all;
  for (const TrialRecord* trial : reference.trials) {
    const double v = trial_value(*trial, metric, best);
    if (!std::isnan(v)) reference_all.push_back(v);
  }
  for (const TrialRecord* trial : other.trials) {
    const double v = trial_value(*trial, metric, best);
    if (!std::isnan(v)) value_all.push_back(v);
  }
  has_values = !reference_all.empty() && !value_all.empty();
  std::vector<double> reference_paired, value_paired;
  for (const TrialPair& pair : comparison.pairs) {
    const TrialRecord* r = find_trial(reference, pair.reference_trial);
    const TrialRecord* v = find_trial(other, pair.value_trial);
    const double a = trial_value(*r, metric, best);
    const double b = trial_value(*v, metric, best);
    if (std::isnan(a) || std::isnan(b)) continue;
    reference_paired.push_back(a);
    value_paired.push_back(b);
    row.differences.push_back(b - a);
  }
  row.pairs = static_cast<int>(row.differences.size());
  if (row.pairs >= 2) {
    row.test = "paired";
    const std::vector<double>& d = row.differences;
    row.n_reference = row.n_value = row.pairs;
    row.reference_mean = stats::mean(reference_paired);
    row.value_mean = stats::mean(value_paired);
    row.mean_difference = stats::mean(d);
    row.sd_difference = stats::sample_sd(d);
    row.interval = stats::bootstrap_mean(d, settings.resamples, seed, settings.confidence);
    row.t = stats::paired_t(d);
    row.wilcoxon = stats::wilcoxon_signed_rank(d);
    row.effect_size_kind = "d_z";
    if (row.sd_difference > 0.0) {
      row.effect_size = row.mean_difference / row.sd_difference;
    } else if (row.mean_difference != 0.0) {
      row.effect_size = std::copysign(HUGE_VAL, row.mean_difference);
    }
    row.seeds_for_power =
        stats::seeds_for_power_paired(row.effect_size, settings.power, settings.alpha);
    if (row.seeds_for_power > 0) {
      row.power_at_seeds =
          stats::paired_t_power(row.effect_size, row.seeds_for_power, settings.alpha);
    }
  } else if (reference_all.size() >= 2 && value_all.size() >= 2) {
    row.test = "welch";
    row.differences.clear();
    row.n_reference = static_cast<int>(reference_all.size());
    row.n_value = static_cast<int>(value_all.size());
    row.reference_mean = stats::mean(reference_all);
    row.value_mean = stats::mean(value_all);
    row.mean_difference = row.value_mean - row.reference_mean;
    row.interval = stats::bootstrap_mean_difference(value_all, reference_all, settings.resamples,
                                                    seed, settings.confidence);
    row.t = stats::welch_t(value_all, reference_all);
    const double sd_v = stats::sample_sd(value_all);
    const double sd_r = stats::sample_sd(reference_all);
    const double var_v = sd_v * sd_v;
    const double var_r = sd_r * sd_r;
    row.effect_size_kind = "d_av";
    const double spread = std::sqrt((var_v + var_r) / 2.0);
    if (spread > 0.0) {
      row.effect_size = row.mean_difference / spread;
    } else if (row.mean_difference != 0.0) {
      row.effect_size = std::copysign(HUGE_VAL, row.mean_difference);
    }
    row.seeds_for_power = stats::seeds_for_power_welch(row.mean_difference, var_v, var_r,
                                                       settings.power, settings.alpha);
    if (row.seeds_for_power > 0) {
      row.power_at_seeds = stats::welch_t_power(row.mean_difference, var_v, var_r,
                                                row.seeds_for_power, settings.alpha);
    }
  } else {
    row.test = "none";
    row.differences.clear();
    row.n_reference = static_cast<int>(reference_all.size());
    row.n_value = static_cast<int>(value_all.size());
  }
  return row;
}

// ---- text helpers

const char* const kMinus = "\xe2\x88\x92";  // U+2212

// Percentage points with a sign: +0.42, −0.10.
std::string points(double fraction) {
  if (std::isnan(fraction)) return kDash;
  if (std::isinf(fraction)) return fraction > 0 ? "+inf" : std::string(kMinus) + "inf";
  const double value = 100.0 * fraction;
  const std::string text = printf_text("%.2f", std::fabs(value));
  if (text == "0.00") return "0.00";
  return (value < 0 ? std::string(kMinus) : std::string("+")) + text;
}

std::string p_text(double p) {
  if (std::isnan(p)) return kDash;
  if (p < 0.001) return "< 0.001";
  if (p < 0.1) return printf_text("%.3f", p);
  return printf_text("%.2f", p);
}

// "p = 0.12" or "p < 0.001".
std::string p_phrase(double p) {
  const std::string text = p_text(p);
  return text.rfind("<", 0) == 0 ? "p " + text : "p = " + text;
}

std::string signed_text(double value, const char* format) {
  if (std::isnan(value)) return kDash;
  if (std::isinf(value)) return value > 0 ? "+inf" : std::string(kMinus) + "inf";
  const std::string text = printf_text(format, std::fabs(value));
  return (value < 0 ? std::string(kMinus) : std::string("")) + text;
}

std::string join(const std::vector<std::string>& values, const std::string& separator) {
  std::string text;
  for (std::size_t i = 0; i < values.size(); ++i) text += (i ? separator : "") + values[i];
  return text;
}

void table_row(std::ostringstream& out, const std::vector<std::string>& cells) {
  out << "|";
  for (const std::string& cell : cells) out << " " << cell << " |";
  out << "\n";
}

std::string seeds_text(const ComparisonRow& row) {
  if (row.test == "none") return kDash;
  if (row.seeds_for_power < 0) {
    return std::isnan(row.effect_size) || row.effect_size == 0.0
               ? std::string(kDash)
               : "> " + std::to_string(stats::kMaxSeeds);
  }
  return std::to_string(row.seeds_for_power) + (row.test == "welch" ? " per arm" : "");
}

std::string conclusion_line(const ComparisonReport& report, const ComparisonRow& row) {
  std::string line = "- " + markdown_cell(row.value) + " " + kMinus + " " +
                     markdown_cell(report.spec.reference) + ": ";
  if (row.test == "none") {
    return line + "not enough pairs (" + std::to_string(row.pairs) + " pair" +
           (row.pairs == 1 ? "" : "s") + "; " + std::to_string(row.n_value) + " and " +
           std::to_string(row.n_reference) + " trials)\n";
  }
  line += points(row.mean_difference) + " [" + points(row.interval.low) + ", " +
          points(row.interval.high) + "], ";
  if (std::isnan(row.p_holm)) {
    line += "no p-value (no spread in the differences): " + row.conclusion;
  } else {
    line += p_phrase(row.p_holm) + " (Holm): " + row.conclusion;
  }
  if (row.conclusion == "shown") {
    line += row.mean_difference > 0 ? " (higher)" : " (lower)";
  }
  if (row.test == "welch") {
    line += " — unpaired (no trial has a partner), Welch's t-test, " + std::to_string(row.n_value) +
            " and " + std::to_string(row.n_reference) + " trials";
  } else {
    line += " — " + std::to_string(row.pairs) + " pairs";
  }
  return line + "\n";
}

}  // namespace

bool same_config_value(const std::string& a, const std::string& b) {
  if (a == b) return true;
  double x = 0.0;
  double y = 0.0;
  return parse_number(a, x) && parse_number(b, y) && x == y;
}

CompareSpec parse_compare_spec(const std::string& text) {
  const std::size_t equals = text.find('=');
  MD_INPUT_CHECK(equals != std::string::npos && equals > 0 && equals + 1 < text.size() &&
                     text.find('=', equals + 1) == std::string::npos,
                 "--compare expects KEY=REFERENCE (for example ", io::key_path::method_name,
                 "=baseline), got '", text, "'");
  CompareSpec spec{text.substr(0, equals), text.substr(equals + 1)};
  MD_INPUT_CHECK(spec.key.find_first_of(" \t") == std::string::npos, "--compare: the key '",
                 spec.key, "' contains a space");
  return spec;
}

ComparisonReport compare_trials(const std::vector<TrialRecord>& trials, const CompareSpec& spec,
                                const std::vector<std::string>& metrics,
                                const CompareSettings& settings) {
  ComparisonReport report;
  report.spec = spec;
  report.settings = settings;
  report.lead_metric = metrics.empty() ? std::string() : metrics.front();
  std::set<std::string> keys;
  for (const TrialRecord& trial : trials) {
    for (const auto& [key, value] : trial.config) keys.insert(key);
  }
  if (keys.count(spec.key) == 0) {
    std::vector<std::string> list(keys.begin(), keys.end());
    throw InputError(detail::concat("--compare: key '", spec.key,
                                    "' is in no trial's config (keys: ",
                                    list.empty() ? "none, no trial logs" : join(list, ", "), ")"));
  }
  // The arms: complete trials by their value of the key.
  Arm reference;
  std::vector<std::pair<std::string, Arm>> others;
  std::set<std::string> all_values;
  for (const TrialRecord& trial : trials) {
    auto found = trial.config.find(spec.key);
    if (found == trial.config.end()) continue;
    all_values.insert(found->second);
    if (trial.status != io::status_name(io::TrialStatus::Complete)) continue;
    if (same_config_value(found->second, spec.reference)) {
      reference.trials.push_back(&trial);
      continue;
    }
    auto arm = std::find_if(others.begin(), others.end(),
                            [&](const auto& entry) { return entry.first == found->second; });
    if (arm == others.end()) {
      others.push_back({found->second, Arm{}});
      arm = others.end() - 1;
    }
    arm->second.trials.push_back(&trial);
  }
  std::vector<std::string> value_list(all_values.begin(), all_values.end());
  std::sort(value_list.begin(), value_list.end(), natural_less);
  MD_INPUT_CHECK(!reference.trials.empty(), "--compare: no complete trial has ", spec.key, " = ",
                 spec.reference, " (values of ", spec.key, ": ", join(value_list, ", "), ")");
  MD_INPUT_CHECK(!others.empty(), "--compare: no complete trial has a value of ", spec.key,
                 " other than ", spec.reference, " (values: ", join(value_list, ", "), ")");
  std::sort(others.begin(), others.end(),
            [](const auto& a, const auto& b) { return natural_less(a.first, b.first); });
  for (const auto& [value, arm] : others) {
    report.comparisons.push_back(pair_arms(value, reference, arm, spec.key));
  }
  for (const std::string& metric : metrics) {
    for (const bool best : {false, true}) {
      const std::size_t family_start = report.rows.size();
      for (std::size_t c = 0; c < others.size(); ++c) {
        bool has_values = false;
        ComparisonRow row =
            make_row(report.comparisons[c], reference, others[c].second, metric, best, settings,
                     settings.seed + report.rows.size(), has_values);
        if (has_values) report.rows.push_back(std::move(row));
      }
      std::vector<double> p, wilcoxon_p;
      for (std::size_t r = family_start; r < report.rows.size(); ++r) {
        p.push_back(report.rows[r].t.p);
        wilcoxon_p.push_back(report.rows[r].wilcoxon.p);
      }
      const std::vector<double> adjusted = stats::holm(p);
      const std::vector<double> wilcoxon_adjusted = stats::holm(wilcoxon_p);
      for (std::size_t r = family_start; r < report.rows.size(); ++r) {
        ComparisonRow& row = report.rows[r];
        row.p_holm = adjusted[r - family_start];
        row.wilcoxon_p_holm = wilcoxon_adjusted[r - family_start];
        if (row.test == "none") {
          row.conclusion = "not enough pairs";
        } else {
          row.conclusion = row.p_holm < settings.alpha ? "shown" : "not shown";
        }
      }
    }
  }
  return report;
}

std::string comparison_markdown(const ComparisonReport& report) {
  std::ostringstream out;
  const std::string& key = report.spec.key;
  const std::string& reference = report.spec.reference;
  const int confidence = static_cast<int>(std::lround(100.0 * report.settings.confidence));
  out << "\n## Comparison: `" << key << "` against " << markdown_cell(reference) << "\n\n";
  out << "Complete trials only. Differences are value " << kMinus << " reference in percentage "
      << "points: mean [" << confidence << "% percentile bootstrap interval of the mean, "
      << report.settings.resamples << " resamples, seeded]. *p*: two-sided paired t-test "
      << "(Welch's t-test where no trial has a partner), Holm-corrected over the comparisons of "
      << "each metric and epoch; shown = Holm p < " << report.settings.alpha << ". See "
      << "docs/report.md.\n\n";
  table_row(out, {"value", "paired on", "pairs", "unpaired " + markdown_cell(reference),
                  "unpaired value"});
  table_row(out, std::vector<std::string>(5, "---"));
  for (const Comparison& comparison : report.comparisons) {
    table_row(out,
              {markdown_cell(comparison.value),
               comparison.pairing_keys.empty() ? std::string(kDash)
                                               : markdown_cell(join(comparison.pairing_keys, ", ")),
               std::to_string(comparison.pairs.size()),
               std::to_string(comparison.unpaired_reference.size()),
               std::to_string(comparison.unpaired_value.size())});
  }
  for (const std::string epoch : {"last", "best"}) {
    out << "\n**" << report.lead_metric << ", " << epoch << " epoch**\n\n";
    for (const ComparisonRow& row : report.rows) {
      if (row.metric == report.lead_metric && row.epoch == epoch) {
        out << conclusion_line(report, row);
      }
    }
  }
  out << "\n### Every accuracy\n\n"
      << "*d*: Cohen's d_z (mean / sd of the paired differences; d_av, the difference over the "
         "root mean of the two variances, for Welch). *Wilcoxon*: exact signed-rank test, zeros "
         "dropped, tied |d| mid-ranked, Holm-corrected like *p*. *Seeds for "
      << static_cast<int>(std::lround(100.0 * report.settings.power))
      << "%*: pairs (trials per arm for Welch) at which the t-test has that power at the observed "
         "difference and spread.\n\n";
  const std::vector<std::string> header{
      "comparison",
      "metric",
      "epoch",
      "test",
      "n",
      "mean diff",
      std::to_string(confidence) + "% CI",
      "p",
      "p Holm",
      "Wilcoxon p",
      "Wilcoxon p Holm",
      "d",
      "seeds for " + std::to_string(static_cast<int>(std::lround(100.0 * report.settings.power))) +
          "%",
      "conclusion"};
  table_row(out, header);
  table_row(out, std::vector<std::string>(header.size(), "---"));
  for (const ComparisonRow& row : report.rows) {
    const bool none = row.test == "none";
    const std::string n = row.test == "paired"
                              ? std::to_string(row.pairs)
                              : std::to_string(row.n_value) + "/" + std::to_string(row.n_reference);
    table_row(out, {markdown_cell(row.value) + " " + kMinus + " " + markdown_cell(reference),
                    row.metric, row.epoch, none ? std::string(kDash) : row.test, n,
                    none ? std::string(kDash) : points(row.mean_difference),
                    none ? std::string(kDash)
                         : "[" + points(row.interval.low) + ", " + points(row.interval.high) + "]",
                    p_text(row.t.p), p_text(row.p_holm), p_text(row.wilcoxon.p),
                    p_text(row.wilcoxon_p_holm), signed_text(row.effect_size, "%.2f"),
                    seeds_text(row), row.conclusion});
  }
  return out.str();
}

std::string comparison_csv(const ComparisonReport& report) {
  std::ostringstream out;
  const std::vector<std::string> header{"key",
                                        "reference",
                                        "value",
                                        "metric",
                                        "epoch",
                                        "test",
                                        "pairs",
                                        "n_reference",
                                        "n_value",
                                        "reference_mean",
                                        "value_mean",
                                        "mean_difference",
                                        "sd_difference",
                                        "ci_low",
                                        "ci_high",
                                        "ci_method",
                                        "confidence",
                                        "resamples",
                                        "bootstrap_seed",
                                        "t",
                                        "df",
                                        "p",
                                        "p_holm",
                                        "wilcoxon_statistic",
                                        "wilcoxon_r_plus",
                                        "wilcoxon_nonzero",
                                        "wilcoxon_zeros",
                                        "wilcoxon_ties",
                                        "wilcoxon_p",
                                        "wilcoxon_p_holm",
                                        "effect_size",
                                        "effect_size_kind",
                                        "seeds_for_power",
                                        "power_at_seeds",
                                        "conclusion",
                                        "pairing_keys",
                                        "unpaired_reference",
                                        "unpaired_value"};
  out << join(header, ",") << "\n";
  for (const ComparisonRow& row : report.rows) {
    const Comparison* comparison = nullptr;
    for (const Comparison& c : report.comparisons) {
      if (c.value == row.value) comparison = &c;
    }
    const bool paired = row.test == "paired";
    const std::vector<std::string> fields{
        report.spec.key,
        report.spec.reference,
        row.value,
        row.metric,
        row.epoch,
        row.test,
        std::to_string(row.pairs),
        std::to_string(row.n_reference),
        std::to_string(row.n_value),
        exact_number(row.reference_mean),
        exact_number(row.value_mean),
        exact_number(row.mean_difference),
        exact_number(row.sd_difference),
        exact_number(row.interval.low),
        exact_number(row.interval.high),
        row.test == "none" ? "" : "percentile",
        exact_number(report.settings.confidence),
        std::to_string(report.settings.resamples),
        std::to_string(row.bootstrap_seed),
        exact_number(row.t.statistic),
        exact_number(row.t.df),
        exact_number(row.t.p),
        exact_number(row.p_holm),
        paired ? exact_number(row.wilcoxon.statistic) : "",
        paired ? exact_number(row.wilcoxon.r_plus) : "",
        paired ? std::to_string(row.wilcoxon.nonzero) : "",
        paired ? std::to_string(row.wilcoxon.zeros) : "",
        paired ? (row.wilcoxon.ties ? "true" : "false") : "",
        exact_number(row.wilcoxon.p),
        exact_number(row.wilcoxon_p_holm),
        exact_number(row.effect_size),
        row.effect_size_kind,
        row.seeds_for_power > 0 ? std::to_string(row.seeds_for_power) : "",
        exact_number(row.power_at_seeds),
        row.conclusion,
        comparison ? join(comparison->pairing_keys, ";") : "",
        comparison ? std::to_string(comparison->unpaired_reference.size()) : "",
        comparison ? std::to_string(comparison->unpaired_value.size()) : ""};
    for (std::size_t i = 0; i < fields.size(); ++i) out << (i ? "," : "") << csv_field(fields[i]);
    out << "\n";
  }
  return out.str();
}

std::string comparison_json(const ComparisonReport& report, int indent) {
  const std::string pad(static_cast<std::size_t>(indent), ' ');
  const std::string pad2 = pad + "  ";
  const std::string pad3 = pad2 + "  ";
  std::ostringstream out;
  out << "{\n";
  out << pad2 << "\"key\": " << json_string(report.spec.key) << ",\n";
  out << pad2 << "\"reference\": " << json_string(report.spec.reference) << ",\n";
  out << pad2 << "\"lead_metric\": " << json_string(report.lead_metric) << ",\n";
  out << pad2 << "\"trials\": \"complete trials only\",\n";
  out << pad2 << "\"bootstrap\": {\"method\": \"percentile\", \"statistic\": \"mean difference\""
      << ", \"confidence\": " << json_number(report.settings.confidence)
      << ", \"resamples\": " << report.settings.resamples << ", \"seed\": " << report.settings.seed
      << ", \"seed_rule\": \"row i (0-based) uses seed + i\", \"quantiles\": \"linear "
         "interpolation (numpy.percentile default)\"},\n";
  out << pad2
      << "\"t_test\": \"two-sided paired t-test; Welch's unequal-variance t-test for "
         "unpaired arms\",\n";
  out << pad2
      << "\"wilcoxon\": \"two-sided signed-rank test, exact null distribution over all "
         "sign assignments (normal approximation beyond "
      << stats::kWilcoxonExactMax
      << " nonzero differences); zeros dropped (scipy zero_method='wilcox'); tied |d| get "
         "mid-ranks; statistic min(R+, R-); paired rows only\",\n";
  out << pad2
      << "\"holm_family\": \"the rows of one (metric, epoch): every value against the "
         "reference; t-test and Wilcoxon p-values corrected separately\",\n";
  out << pad2
      << "\"effect_size\": \"d_z = mean/sd of the paired differences; d_av = difference "
         "/ sqrt((var_value + var_reference)/2) for Welch\",\n";
  out << pad2 << "\"power\": {\"target\": " << json_number(report.settings.power)
      << ", \"alpha\": " << json_number(report.settings.alpha)
      << ", \"rule\": \"smallest n >= 2 with power >= target: pairs for the paired t-test "
         "(noncentral t, df n-1, noncentrality d_z sqrt(n)); trials per arm for Welch\"},\n";
  out << pad2 << "\"alpha\": " << json_number(report.settings.alpha) << ",\n";
  out << pad2 << "\"comparisons\": [";
  for (std::size_t c = 0; c < report.comparisons.size(); ++c) {
    const Comparison& comparison = report.comparisons[c];
    out << (c ? ",\n" : "\n") << pad3 << "{\"value\": " << json_string(comparison.value)
        << ", \"pairing_keys\": " << json_string_list(comparison.pairing_keys)
        << ", \"reference_trials\": " << comparison.reference_trials
        << ", \"value_trials\": " << comparison.value_trials << ", \"pairs\": [";
    for (std::size_t p = 0; p < comparison.pairs.size(); ++p) {
      const TrialPair& pair = comparison.pairs[p];
      out << (p ? ", " : "") << "{\"pairing\": {";
      for (std::size_t k = 0; k < comparison.pairing_keys.size(); ++k) {
        out << (k ? ", " : "") << json_string(comparison.pairing_keys[k]) << ": "
            << json_string(pair.pairing_values[k]);
      }
      out << "}, \"reference_trial\": " << json_string(pair.reference_trial)
          << ", \"value_trial\": " << json_string(pair.value_trial) << "}";
    }
    out << "], \"unpaired_reference\": " << json_string_list(comparison.unpaired_reference)
        << ", \"unpaired_value\": " << json_string_list(comparison.unpaired_value) << "}";
  }
  out << (report.comparisons.empty() ? "],\n" : "\n" + pad2 + "],\n");
  out << pad2 << "\"rows\": [";
  for (std::size_t r = 0; r < report.rows.size(); ++r) {
    const ComparisonRow& row = report.rows[r];
    const bool paired = row.test == "paired";
    out << (r ? ",\n" : "\n") << pad3 << "{\"value\": " << json_string(row.value)
        << ", \"metric\": " << json_string(row.metric) << ", \"epoch\": " << json_string(row.epoch)
        << ", \"test\": " << json_string(row.test) << ", \"pairs\": " << row.pairs
        << ", \"n_reference\": " << row.n_reference << ", \"n_value\": " << row.n_value
        << ", \"reference_mean\": " << json_number(row.reference_mean)
        << ", \"value_mean\": " << json_number(row.value_mean)
        << ", \"mean_difference\": " << json_number(row.mean_difference)
        << ", \"sd_difference\": " << json_number(row.sd_difference)
        << ", \"ci_low\": " << json_number(row.interval.low)
        << ", \"ci_high\": " << json_number(row.interval.high)
        << ", \"bootstrap_seed\": " << row.bootstrap_seed
        << ", \"t\": " << json_number(row.t.statistic) << ", \"df\": " << json_number(row.t.df)
        << ", \"p\": " << json_number(row.t.p) << ", \"p_holm\": " << json_number(row.p_holm)
        << ", \"wilcoxon_statistic\": " << json_number(paired ? row.wilcoxon.statistic : kNaN)
        << ", \"wilcoxon_r_plus\": " << json_number(paired ? row.wilcoxon.r_plus : kNaN)
        << ", \"wilcoxon_nonzero\": " << (paired ? std::to_string(row.wilcoxon.nonzero) : "null")
        << ", \"wilcoxon_zeros\": " << (paired ? std::to_string(row.wilcoxon.zeros) : "null")
        << ", \"wilcoxon_ties\": " << (paired ? (row.wilcoxon.ties ? "true" : "false") : "null")
        << ", \"wilcoxon_p\": " << json_number(row.wilcoxon.p)
        << ", \"wilcoxon_p_holm\": " << json_number(row.wilcoxon_p_holm)
        << ", \"effect_size\": " << json_number(row.effect_size) << ", \"effect_size_kind\": "
        << (row.effect_size_kind.empty() ? "null" : json_string(row.effect_size_kind))
        << ", \"seeds_for_power\": "
        << (row.seeds_for_power > 0 ? std::to_string(row.seeds_for_power) : "null")
        << ", \"power_at_seeds\": " << json_number(row.power_at_seeds)
        << ", \"conclusion\": " << json_string(row.conclusion) << ", \"differences\": [";
    for (std::size_t i = 0; i < row.differences.size(); ++i) {
      out << (i ? ", " : "") << json_number(row.differences[i]);
    }
    out << "]}";
  }
  out << (report.rows.empty() ? "]\n" : "\n" + pad2 + "]\n");
  out << pad << "}";
  return out.str();
}

}  // namespace md::analysis
