// Statistics for comparing two arms of a sweep (`metadistill report --compare`, compare.h):
// paired and Welch t-tests, the exact Wilcoxon signed-rank test, a seeded percentile bootstrap
// of the mean difference, Holm's step-down correction, effect sizes, and the number of seeds a
// t-test needs for a given power. The distributions are Boost.Math's (students_t,
// non_central_t, normal); the Wilcoxon null distribution is counted exactly by dynamic
// programming. Every function returns NaN where SciPy would (zero spread, too few values), so
// the numbers can be checked one for one against scipy.stats (analysis/tests/test_compare.py).
#pragma once

#include <cstdint>
#include <limits>
#include <vector>

namespace md::analysis::stats {

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

struct TTest {
  double statistic = kNaN;  // t; ±inf when the spread is 0 and the mean is not
  double df = kNaN;         // degrees of freedom (Welch–Satterthwaite for Welch)
  double p = kNaN;          // two-sided
};

// One-sample t-test of mean(d) = 0, i.e. the paired t-test of x - y (scipy.stats.ttest_rel).
// Needs 2 or more values.
TTest paired_t(const std::vector<double>& differences);

// Welch's unequal-variance t-test of mean(a) = mean(b), statistic for a - b
// (scipy.stats.ttest_ind(a, b, equal_var=False)). Needs 2 or more values in each.
TTest welch_t(const std::vector<double>& a, const std::vector<double>& b);

struct Wilcoxon {
  double statistic = kNaN;  // min(R+, R-) over the nonzero differences (scipy's two-sided T)
  double r_plus = kNaN;     // sum of the (mid-)ranks of |d| of the positive differences
  int nonzero = 0;          // differences left after dropping zeros
  int zeros = 0;            // differences equal to 0, dropped (scipy's zero_method="wilcox")
  bool ties = false;        // some nonzero |d| are equal (mid-ranks)
  double p = kNaN;          // two-sided, exact; NaN when every difference is 0
};

// Wilcoxon signed-rank test of the differences, two-sided, with the exact null distribution:
// zeros are dropped (zero_method="wilcox"), tied |d| get mid-ranks, and the p-value comes from
// the exact distribution of R+ over all 2^n sign assignments of those ranks (counted on doubled
// ranks, so mid-ranks stay integers): p = min(1, 2 min(P(R+ <= r), P(R+ >= r))). Without ties
// this is scipy.stats.wilcoxon(d[d != 0], method="exact"); with ties it is the exact
// permutation test scipy.stats.permutation_test((d,), R+, permutation_type="samples") computes.
// More than kWilcoxonExactMax nonzero differences use the normal approximation with the tie
// correction (scipy's method="approx", correction=False).
constexpr int kWilcoxonExactMax = 400;
Wilcoxon wilcoxon_signed_rank(const std::vector<double>& differences);

struct Interval {
  double low = kNaN;
  double high = kNaN;
};

// The q-quantile (0 <= q <= 1) of sorted values by linear interpolation between order
// statistics (numpy.percentile's default "linear" method).
double quantile_sorted(const std::vector<double>& sorted, double q);

// Percentile bootstrap interval of the mean of `values` (resampled with replacement, `resamples`
// times, from a std::mt19937_64 seeded with `seed`): the (1 - confidence)/2 and
// (1 + confidence)/2 quantiles of the resampled means.
Interval bootstrap_mean(const std::vector<double>& values, int resamples, std::uint64_t seed,
                        double confidence = 0.95);

// The same for mean(a) - mean(b), each arm resampled on its own (unpaired data).
Interval bootstrap_mean_difference(const std::vector<double>& a, const std::vector<double>& b,
                                   int resamples, std::uint64_t seed, double confidence = 0.95);

// Holm's step-down adjusted p-values over one family; NaN entries are not members of the family
// and stay NaN. adjusted(i) = max over j <= i (in ascending order of p) of min(1, (m - j) p(j)).
std::vector<double> holm(const std::vector<double>& p);

double mean(const std::vector<double>& values);
double sample_sd(const std::vector<double>& values);  // divisor n - 1; NaN for n < 2

// Power of the two-sided one-sample (paired) t-test at level alpha with n pairs when the true
// standardized mean difference is d_z: P(|T| > t_{1-alpha/2, n-1}), T ~ noncentral t with n - 1
// degrees of freedom and noncentrality d_z sqrt(n).
double paired_t_power(double d_z, int n, double alpha = 0.05);

// Power of Welch's two-sided test with n trials in each arm, true difference `difference` and
// arm variances var_a, var_b taken as known: noncentrality difference / sqrt((var_a + var_b)/n),
// Welch–Satterthwaite df (n - 1)(var_a + var_b)^2 / (var_a^2 + var_b^2).
double welch_t_power(double difference, double var_a, double var_b, int n, double alpha = 0.05);

// The smallest n >= 2 whose power reaches `target` (power taken as increasing in n), or -1 when
// even kMaxSeeds does not (or the effect is 0 or NaN).
constexpr int kMaxSeeds = 1000000;
int seeds_for_power_paired(double d_z, double target = 0.8, double alpha = 0.05);
int seeds_for_power_welch(double difference, double var_a, double var_b, double target = 0.8,
                          double alpha = 0.05);

}  // namespace md::analysis::stats
