// The comparison statistics of paired_stats.h. Distributions: Boost.Math. The conventions follow
// scipy.stats (two-sided p-values, ±inf statistics for zero spread, df = 1 for Welch's test when
// both spreads are 0), so that the tests can compare number for number.
#include "paired_stats.h"

#include <algorithm>
#include <boost/math/distributions/non_central_t.hpp>
#include <boost/math/distributions/normal.hpp>
#include <boost/math/distributions/students_t.hpp>
#include <cmath>
#include <numeric>
#include <random>

#include "core/error.h"

namespace md::analysis::stats {

namespace {

// Two-sided p-value of t with df degrees of freedom; 0 for infinite t, NaN for NaN.
double two_sided_t_p(double t, double df) {
  if (std::isnan(t) || std::isnan(df)) return kNaN;
  if (std::isinf(t)) return 0.0;
  boost::math::students_t_distribution<double> distribution(df);
  return 2.0 * boost::math::cdf(boost::math::complement(distribution, std::fabs(t)));
}

double variance(const std::vector<double>& values) {
  const double sd = sample_sd(values);
  return sd * sd;
}

}  // namespace

double mean(const std::vector<double>& values) {
  if (values.empty()) return kNaN;
  return std::accumulate(values.begin(), values.end(), 0.0) / static_cast<double>(values.size());
}

double sample_sd(const std::vector<double>& values) {
  if (values.size() < 2) return kNaN;
  const double m = mean(values);
  double squares = 0.0;
  for (double value : values) squares += (value - m) * (value - m);
  return std::sqrt(squares / static_cast<double>(values.size() - 1));
}

TTest paired_t(const std::vector<double>& differences) {
  TTest result;
  const std::size_t n = differences.size();
  if (n < 2) return result;
  const double m = mean(differences);
  const double se = sample_sd(differences) / std::sqrt(static_cast<double>(n));
  result.df = static_cast<double>(n - 1);
  if (se == 0.0) {
    result.statistic = m == 0.0 ? kNaN : std::copysign(HUGE_VAL, m);
  } else {
    result.statistic = m / se;
  }
  result.p = two_sided_t_p(result.statistic, result.df);
  return result;
}

TTest welch_t(const std::vector<double>& a, const std::vector<double>& b) {
  TTest result;
  if (a.size() < 2 || b.size() < 2) return result;
  const double na = static_cast<double>(a.size());
  const double nb = static_cast<double>(b.size());
  const double va = variance(a) / na;
  const double vb = variance(b) / nb;
  const double difference = mean(a) - mean(b);
  const double denominator = va + vb;
  if (denominator == 0.0) {
    // scipy: df is undefined (0/0) and set to 1; t = ±inf or NaN.
    result.df = 1.0;
    result.statistic = difference == 0.0 ? kNaN : std::copysign(HUGE_VAL, difference);
  } else {
    result.df = denominator * denominator / (va * va / (na - 1.0) + vb * vb / (nb - 1.0));
    result.statistic = difference / std::sqrt(denominator);
  }
  result.p = two_sided_t_p(result.statistic, result.df);
  return result;
}

Wilcoxon wilcoxon_signed_rank(const std::vector<double>& differences) {
  Wilcoxon result;
  std::vector<double> nonzero;
  for (double d : differences) {
    if (d == 0.0) {
      ++result.zeros;
    } else {
      nonzero.push_back(d);
    }
  }
  const int n = static_cast<int>(nonzero.size());
  result.nonzero = n;
  if (n == 0) return result;
  // Mid-ranks of |d|, doubled so that they are integers.
  std::vector<int> order(n);
  std::iota(order.begin(), order.end(), 0);
  std::sort(order.begin(), order.end(),
            [&](int i, int j) { return std::fabs(nonzero[i]) < std::fabs(nonzero[j]); });
  std::vector<long> doubled_rank(n);
  double tie_term = 0.0;  // sum of t (t^2 - 1) over groups of t tied values
  for (int start = 0; start < n;) {
    int end = start;
    while (end + 1 < n && std::fabs(nonzero[order[end + 1]]) == std::fabs(nonzero[order[start]])) {
      ++end;
    }
    const long group = end - start + 1;
    if (group > 1) {
      result.ties = true;
      tie_term += static_cast<double>(group) * (static_cast<double>(group * group) - 1.0);
    }
    // ranks start+1 .. end+1; their mean doubled is start + end + 2.
    for (int k = start; k <= end; ++k) doubled_rank[order[k]] = start + end + 2;
    start = end + 1;
  }
  long observed = 0;  // doubled R+
  long total = 0;
  for (int i = 0; i < n; ++i) {
    total += doubled_rank[i];
    if (nonzero[i] > 0.0) observed += doubled_rank[i];
  }
  result.r_plus = static_cast<double>(observed) / 2.0;
  result.statistic = static_cast<double>(std::min(observed, total - observed)) / 2.0;
  if (n <= kWilcoxonExactMax) {
    // pmf[s] = P(doubled R+ = s) under independent fair signs.
    std::vector<double> pmf(static_cast<std::size_t>(total) + 1, 0.0);
    pmf[0] = 1.0;
    long reach = 0;
    for (int i = 0; i < n; ++i) {
      const long r = doubled_rank[i];
      reach += r;
      for (long s = reach; s >= 0; --s) {
        const double without = pmf[static_cast<std::size_t>(s)];
        const double with = s >= r ? pmf[static_cast<std::size_t>(s - r)] : 0.0;
        pmf[static_cast<std::size_t>(s)] = 0.5 * (without + with);
      }
    }
    double at_most = 0.0;
    double at_least = 0.0;
    for (long s = 0; s <= total; ++s) {
      if (s <= observed) at_most += pmf[static_cast<std::size_t>(s)];
      if (s >= observed) at_least += pmf[static_cast<std::size_t>(s)];
    }
    result.p = std::min(1.0, 2.0 * std::min(at_most, at_least));
  } else {
    const double count = static_cast<double>(n);
    const double mean_rank_sum = count * (count + 1.0) / 4.0;
    const double se =
        std::sqrt((count * (count + 1.0) * (2.0 * count + 1.0) - 0.5 * tie_term) / 24.0);
    const double z = (result.statistic - mean_rank_sum) / se;
    boost::math::normal_distribution<double> normal;
    result.p = 2.0 * boost::math::cdf(boost::math::complement(normal, std::fabs(z)));
  }
  return result;
}

double quantile_sorted(const std::vector<double>& sorted, double q) {
  MD_CHECK(!sorted.empty(), "quantile of no values");
  const double position = q * static_cast<double>(sorted.size() - 1);
  const std::size_t below = static_cast<std::size_t>(std::floor(position));
  if (below + 1 >= sorted.size()) return sorted.back();
  const double fraction = position - static_cast<double>(below);
  return sorted[below] + fraction * (sorted[below + 1] - sorted[below]);
}

namespace {

// Mean of a resample (with replacement) of `values`; index = draw mod n.
double resampled_mean(const std::vector<double>& values, std::mt19937_64& generator) {
  const std::uint64_t n = values.size();
  double sum = 0.0;
  for (std::uint64_t i = 0; i < n; ++i) sum += values[generator() % n];
  return sum / static_cast<double>(n);
}

Interval percentile_interval(std::vector<double>& statistics, double confidence) {
  std::sort(statistics.begin(), statistics.end());
  return {quantile_sorted(statistics, (1.0 - confidence) / 2.0),
          quantile_sorted(statistics, (1.0 + confidence) / 2.0)};
}

}  // namespace

Interval bootstrap_mean(const std::vector<double>& values, int resamples, std::uint64_t seed,
                        double confidence) {
  if (values.empty() || resamples < 1) return {};
  std::mt19937_64 generator(seed);
  std::vector<double> means(static_cast<std::size_t>(resamples));
  for (double& m : means) m = resampled_mean(values, generator);
  return percentile_interval(means, confidence);
}

Interval bootstrap_mean_difference(const std::vector<double>& a, const std::vector<double>& b,
                                   int resamples, std::uint64_t seed, double confidence) {
  if (a.empty() || b.empty() || resamples < 1) return {};
  std::mt19937_64 generator(seed);
  std::vector<double> differences(static_cast<std::size_t>(resamples));
  for (double& d : differences) {
    const double mean_a = resampled_mean(a, generator);
    d = mean_a - resampled_mean(b, generator);
  }
  return percentile_interval(differences, confidence);
}

std::vector<double> holm(const std::vector<double>& p) {
  std::vector<double> adjusted(p.size(), kNaN);
  std::vector<std::size_t> members;
  for (std::size_t i = 0; i < p.size(); ++i) {
    if (!std::isnan(p[i])) members.push_back(i);
  }
  std::stable_sort(members.begin(), members.end(),
                   [&](std::size_t i, std::size_t j) { return p[i] < p[j]; });
  const double m = static_cast<double>(members.size());
  double running = 0.0;
  for (std::size_t rank = 0; rank < members.size(); ++rank) {
    const double scaled = std::min(1.0, (m - static_cast<double>(rank)) * p[members[rank]]);
    running = std::max(running, scaled);
    adjusted[members[rank]] = running;
  }
  return adjusted;
}

namespace {

double t_power(double noncentrality, double df, double alpha) {
  boost::math::students_t_distribution<double> central(df);
  const double critical = boost::math::quantile(central, 1.0 - alpha / 2.0);
  boost::math::non_central_t_distribution<double> shifted(df, noncentrality);
  return boost::math::cdf(boost::math::complement(shifted, critical)) +
         boost::math::cdf(shifted, -critical);
}

// Smallest n in [2, kMaxSeeds] with power(n) >= target, or -1.
template <typename Power>
int smallest_n(const Power& power, double target) {
  if (power(2) >= target) return 2;
  int low = 2;  // power(low) < target
  int high = 4;
  while (power(high) < target) {
    low = high;
    if (high >= kMaxSeeds) return -1;
    high = std::min(kMaxSeeds, high * 2);
  }
  while (high - low > 1) {
    const int middle = low + (high - low) / 2;
    if (power(middle) >= target) {
      high = middle;
    } else {
      low = middle;
    }
  }
  return high;
}

// Beyond this noncentrality at n = 2 the power is 1 to double precision for any target used
// here; Boost's series would only spend time on it.
constexpr double kCertainNoncentrality = 1e3;

}  // namespace

double paired_t_power(double d_z, int n, double alpha) {
  if (std::isnan(d_z) || n < 2) return kNaN;
  const double noncentrality = d_z * std::sqrt(static_cast<double>(n));
  if (std::fabs(noncentrality) > kCertainNoncentrality) return 1.0;
  return t_power(noncentrality, n - 1.0, alpha);
}

double welch_t_power(double difference, double var_a, double var_b, int n, double alpha) {
  if (std::isnan(difference) || std::isnan(var_a) || std::isnan(var_b) || n < 2) return kNaN;
  const double spread = var_a + var_b;
  if (spread == 0.0) return difference == 0.0 ? kNaN : 1.0;
  const double noncentrality = difference / std::sqrt(spread / n);
  if (std::fabs(noncentrality) > kCertainNoncentrality) return 1.0;
  const double df = (n - 1.0) * spread * spread / (var_a * var_a + var_b * var_b);
  return t_power(noncentrality, df, alpha);
}

int seeds_for_power_paired(double d_z, double target, double alpha) {
  if (std::isnan(d_z) || d_z == 0.0) return -1;
  if (std::isinf(d_z)) return 2;
  return smallest_n([&](int n) { return paired_t_power(d_z, n, alpha); }, target);
}

int seeds_for_power_welch(double difference, double var_a, double var_b, double target,
                          double alpha) {
  if (std::isnan(difference) || difference == 0.0 || std::isnan(var_a) || std::isnan(var_b)) {
    return -1;
  }
  if (var_a + var_b == 0.0) return 2;
  return smallest_n([&](int n) { return welch_t_power(difference, var_a, var_b, n, alpha); },
                    target);
}

}  // namespace md::analysis::stats
