// Tests of the comparison statistics (analysis/paired_stats.h) against numbers SciPy 1.10 gives
// for the same inputs (scipy.stats.ttest_rel, ttest_ind(equal_var=False), wilcoxon,
// permutation_test, nct, numpy.percentile; the values are pasted below), and of --compare's input
// checks. The end-to-end check of every number of the report's JSON against SciPy is
// analysis/tests/test_compare.py.
#include <gtest/gtest.h>

#include <cmath>

#include "../io/io_test_util.h"
#include "compare.h"
#include "core/error.h"
#include "paired_stats.h"

namespace md::analysis {
namespace {

using test::expect_input_error;

constexpr double kP = 1e-9;  // p-values: SciPy's and ours agree to rounding

TEST(PairedStats, PairedTTestMatchesScipy) {
  const std::vector<double> d{0.5, -1.25, 2.0, 3.5, 0.75, 1.0, -0.25};
  const stats::TTest t = stats::paired_t(d);
  EXPECT_NEAR(t.statistic, 1.540590056283302, 1e-12);
  EXPECT_EQ(t.df, 6.0);
  EXPECT_NEAR(t.p, 0.17434793807275567, kP);
  // Zero spread: ±inf and p 0, or NaN when the mean is 0 too (scipy's answers).
  EXPECT_EQ(stats::paired_t({0.25, 0.25}).p, 0.0);
  EXPECT_TRUE(std::isinf(stats::paired_t({0.25, 0.25}).statistic));
  EXPECT_TRUE(std::isnan(stats::paired_t({0.0, 0.0}).p));
  EXPECT_TRUE(std::isnan(stats::paired_t({1.0}).p));
}

TEST(PairedStats, WelchMatchesScipy) {
  const stats::TTest t = stats::welch_t({1.0, 2.5, 3.0, 4.25}, {0.5, 0.75, 2.0});
  EXPECT_NEAR(t.statistic, 1.9640556608474624, 1e-12);
  EXPECT_NEAR(t.df, 4.8785589641393114, 1e-12);
  EXPECT_NEAR(t.p, 0.1081596184782875, kP);
}

TEST(PairedStats, WilcoxonExactMatchesScipy) {
  const stats::Wilcoxon w = stats::wilcoxon_signed_rank({0.5, -1.25, 2.0, 3.5, 0.75, 1.0, -0.25});
  EXPECT_EQ(w.statistic, 6.0);
  EXPECT_FALSE(w.ties);
  EXPECT_NEAR(w.p, 0.21875, kP);
  std::vector<double> twenty;
  for (int i = 1; i <= 20; ++i) twenty.push_back((i - 1) % 3 == 0 ? -i : i);
  const stats::Wilcoxon w20 = stats::wilcoxon_signed_rank(twenty);
  EXPECT_EQ(w20.statistic, 70.0);
  EXPECT_NEAR(w20.p, 0.20244979858398438, kP);
}

TEST(PairedStats, WilcoxonWithTiesIsTheExactPermutationTest) {
  // scipy.stats.permutation_test over all 2^7 sign flips of the mid-rank statistic R+.
  const stats::Wilcoxon w = stats::wilcoxon_signed_rank({1, -1, 2, 2, 3, -0.5, 3});
  EXPECT_TRUE(w.ties);
  EXPECT_EQ(w.r_plus, 24.5);
  EXPECT_EQ(w.statistic, 3.5);
  EXPECT_NEAR(w.p, 0.09375, kP);
}

TEST(PairedStats, WilcoxonDropsZeros) {
  const stats::Wilcoxon w =
      stats::wilcoxon_signed_rank({0.0, 0.5, -1.25, 0.0, 2.0, 3.5, 0.75, 1.0, -0.25});
  EXPECT_EQ(w.zeros, 2);
  EXPECT_EQ(w.nonzero, 7);
  EXPECT_NEAR(w.p, 0.21875, kP);
  EXPECT_TRUE(std::isnan(stats::wilcoxon_signed_rank({0.0, 0.0}).p));
  EXPECT_EQ(stats::wilcoxon_signed_rank({0.5, 0.25}).p, 0.5);  // n = 2: 2 * P(R+ = 3) = 0.5
}

TEST(PairedStats, WilcoxonNormalApproximationBeyondTheExactLimit) {
  std::vector<double> big;
  for (int i = 1; i <= 500; ++i) {
    double value = (i - 1) % 2 == 0 ? i : -i;
    if ((i - 1) % 7 == 0) value *= 1.3;
    big.push_back(value);
  }
  const stats::Wilcoxon w = stats::wilcoxon_signed_rank(big);
  EXPECT_EQ(w.statistic, 62497.5);
  EXPECT_NEAR(w.p, 0.9685353890624627, 1e-9);
}

TEST(PairedStats, HolmAndQuantiles) {
  const std::vector<double> adjusted = stats::holm({0.01, 0.04, stats::kNaN, 0.03});
  EXPECT_NEAR(adjusted[0], 0.03, 1e-15);
  EXPECT_NEAR(adjusted[3], 0.06, 1e-15);
  EXPECT_NEAR(adjusted[1], 0.06, 1e-15);  // max(0.06, 1 * 0.04): monotone
  EXPECT_TRUE(std::isnan(adjusted[2]));
  const std::vector<double> sorted{1, 1, 2, 3, 4, 5, 6, 9};
  EXPECT_EQ(stats::quantile_sorted(sorted, 0.025), 1.0);
  EXPECT_NEAR(stats::quantile_sorted(sorted, 0.975), 8.475000000000001, 1e-12);
}

TEST(PairedStats, PowerMatchesScipyNoncentralT) {
  EXPECT_EQ(stats::seeds_for_power_paired(0.5), 34);
  EXPECT_NEAR(stats::paired_t_power(0.5, 34), 0.8077775012792737, 1e-9);
  EXPECT_NEAR(stats::paired_t_power(0.5, 33), 0.7953658414875044, 1e-9);
  EXPECT_EQ(stats::seeds_for_power_paired(1.0), 10);
  EXPECT_NEAR(stats::paired_t_power(1.0, 10), 0.8030968566475513, 1e-9);
  EXPECT_EQ(stats::seeds_for_power_paired(-0.2), 199);
  EXPECT_EQ(stats::seeds_for_power_paired(0.0), -1);
  EXPECT_EQ(stats::seeds_for_power_paired(HUGE_VAL), 2);
}

TEST(PairedStats, BootstrapIsSeededAndBracketsTheMean) {
  const std::vector<double> d{0.5, -1.25, 2.0, 3.5, 0.75, 1.0, -0.25};
  const stats::Interval a = stats::bootstrap_mean(d, 10000, 7);
  const stats::Interval b = stats::bootstrap_mean(d, 10000, 7);
  EXPECT_EQ(a.low, b.low);
  EXPECT_EQ(a.high, b.high);
  EXPECT_LT(a.low, stats::mean(d));
  EXPECT_GT(a.high, stats::mean(d));
  const stats::Interval two = stats::bootstrap_mean({0.25, 0.75}, 10000, 1);
  EXPECT_EQ(two.low, 0.25);  // n = 2: the resampled means are 0.25, 0.5, 0.75 (1/4, 1/2, 1/4)
  EXPECT_EQ(two.high, 0.75);
}

TEST(Compare, SpecParsing) {
  const CompareSpec spec = parse_compare_spec("method.name=baseline");
  EXPECT_EQ(spec.key, "method.name");
  EXPECT_EQ(spec.reference, "baseline");
  for (const char* bad : {"method.name", "=baseline", "method.name=", "a=b=c", ""}) {
    expect_input_error([&] { parse_compare_spec(bad); }, {"expects KEY=REFERENCE"});
  }
}

TrialRecord trial(const std::string& method, int seed, double last, double best) {
  TrialRecord record;
  record.trial_id = method + "-" + std::to_string(seed);
  record.status = io::status_name(io::TrialStatus::Complete);
  record.has_final = true;
  record.config = {{"method.name", method},
                   {"runtime.seed", std::to_string(seed)},
                   {"runtime.threads", std::to_string(seed % 2)}};
  record.last = {{"acc_final", last}};
  record.best = {{"acc_final", best}};
  record.heads = 1;
  return record;
}

TEST(Compare, PairsOnTheSeedAndIgnoresPlacementKeys) {
  std::vector<TrialRecord> trials;
  for (int seed = 0; seed < 3; ++seed) {
    trials.push_back(trial("baseline", seed, 0.5 + 0.01 * seed, 0.6));
    trials.push_back(trial("byot", seed, 0.52 + 0.01 * seed + 0.001 * seed, 0.6));
  }
  const ComparisonReport report =
      compare_trials(trials, {"method.name", "baseline"}, {"acc_final"});
  ASSERT_EQ(report.comparisons.size(), 1u);
  EXPECT_EQ(report.comparisons[0].pairing_keys, std::vector<std::string>{"runtime.seed"});
  EXPECT_EQ(report.comparisons[0].pairs.size(), 3u);
  ASSERT_EQ(report.rows.size(), 2u);  // last and best
  EXPECT_EQ(report.rows[0].test, "paired");
  EXPECT_EQ(report.rows[1].conclusion, "not shown");  // best: every difference 0
  EXPECT_TRUE(std::isnan(report.rows[1].t.p));
  expect_input_error(
      [&] {
        compare_trials(trials, {"method.nam", "baseline"}, {"acc_final"});
      },
      {"is in no trial's config"});
  expect_input_error(
      [&] {
        compare_trials(trials, {"method.name", "x"}, {"acc_final"});
      },
      {"no complete trial has method.name = x (values of method.name: baseline, "
       "byot)"});
}

}  // namespace
}  // namespace md::analysis
