// Paired comparisons for the sweep report (`metadistill report DIR --compare KEY=REFERENCE`):
// every other value of KEY against the reference value, per accuracy and per epoch (last, best).
//
// Arms: the complete trials whose config has KEY = the value (text equal, or numerically equal).
// Pairing: for reference R and value V, the pairing keys are the config keys that vary within
// either arm (normally runtime.seed), except KEY and the placement keys the report never groups
// by (runtime.device, runtime.threads, ...); a key constant within each arm but different
// between them (a method's own setting) belongs to the treatment, not to the pairing. Two trials
// pair when they agree on every pairing key and each is the only such trial of its arm.
//
// Per (value, metric, epoch) row, with differences d = value − reference:
//   2 or more pairs      -> paired: mean d, percentile bootstrap interval of mean d, paired
//                           t-test, exact Wilcoxon signed-rank test, Cohen's d_z = mean/sd of d,
//                           pairs for 80% power of the paired t-test (noncentral t);
//   fewer than 2 pairs,  -> Welch (unpaired): difference of the arm means, bootstrap of it (arms
//   2+ trials per arm       resampled separately), Welch's t-test, Cohen's d with the root mean
//                           of the two variances, trials per arm for 80% power; no Wilcoxon;
//   otherwise            -> "not enough pairs", no numbers.
// Holm's correction runs over the rows of one (metric, epoch): the comparisons of every value
// with the reference, separately for the t-test (or Welch) p-values and the Wilcoxon ones.
// "shown" means Holm-corrected t-test p < alpha (0.05).
//
// Head metrics (acc_head<s>) use only trials for which head s is auxiliary (a baseline's head 0
// is its final head); a row whose metric no trial of one arm has is left out.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "paired_stats.h"
#include "trial_record.h"

namespace md::analysis {

struct CompareSpec {
  std::string key;
  std::string reference;
};

// "KEY=REFERENCE" with both parts non-empty; md::InputError otherwise.
CompareSpec parse_compare_spec(const std::string& text);

// Whether two config values are the same: equal as text, or as numbers ("0.1" and "0.10").
// The rule by which --compare's arms and --where select trials.
bool same_config_value(const std::string& a, const std::string& b);

struct CompareSettings {
  int resamples = 10000;
  std::uint64_t seed = 20200826;  // bootstrap seed of the first row; row i uses seed + i
  double confidence = 0.95;
  double alpha = 0.05;
  double power = 0.8;
};

struct TrialPair {
  std::vector<std::string> pairing_values;  // one per Comparison::pairing_keys
  std::string reference_trial;
  std::string value_trial;
};

// One value of KEY against the reference: the arms and how they pair.
struct Comparison {
  std::string value;
  std::vector<std::string> pairing_keys;
  std::vector<TrialPair> pairs;
  std::vector<std::string> unpaired_reference;  // trial ids
  std::vector<std::string> unpaired_value;
  int reference_trials = 0;  // complete trials in each arm
  int value_trials = 0;
};

struct ComparisonRow {
  std::string value;
  std::string metric;
  std::string epoch;  // "last" | "best"
  std::string test;   // "paired" | "welch" | "none" (not enough pairs)
  int pairs = 0;      // pairs with the metric in both trials
  int n_reference = 0;
  int n_value = 0;  // trials of each arm with the metric (all of them for Welch)
  double reference_mean = stats::kNaN;
  double value_mean = stats::kNaN;
  double mean_difference = stats::kNaN;
  double sd_difference = stats::kNaN;  // paired only
  stats::Interval interval;
  std::uint64_t bootstrap_seed = 0;
  stats::TTest t;
  double p_holm = stats::kNaN;
  stats::Wilcoxon wilcoxon;  // paired only
  double wilcoxon_p_holm = stats::kNaN;
  double effect_size = stats::kNaN;
  std::string effect_size_kind;  // "d_z" (paired) | "d_av" (Welch)
  int seeds_for_power = -1;      // pairs (paired) or trials per arm (Welch); -1: none found
  double power_at_seeds = stats::kNaN;
  std::vector<double> differences;  // paired: d per pair, in pair order
  std::string conclusion;           // "shown" | "not shown" | "not enough pairs"
};

struct ComparisonReport {
  CompareSpec spec;
  CompareSettings settings;
  std::string lead_metric;
  std::vector<Comparison> comparisons;  // the values of KEY other than the reference, sorted
  std::vector<ComparisonRow> rows;      // per metric (lead first), epoch (last, best), value
};

// md::InputError when KEY is in no trial's config, no complete trial has KEY = REFERENCE
// (the message lists the values there are), or no other value of KEY has a complete trial.
ComparisonReport compare_trials(const std::vector<TrialRecord>& trials, const CompareSpec& spec,
                                const std::vector<std::string>& metrics,
                                const CompareSettings& settings = {});

// Renderings: a Markdown section (conclusions in words for the lead metric, then every row as a
// table, differences in percentage points), a CSV table (one line per row, raw fractions), and
// a JSON object (every number, raw fractions; NaN as null), indented by `indent` spaces.
std::string comparison_markdown(const ComparisonReport& report);
std::string comparison_csv(const ComparisonReport& report);
std::string comparison_json(const ComparisonReport& report, int indent);

}  // namespace md::analysis
