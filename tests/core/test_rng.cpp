#include <gtest/gtest.h>

#include <cmath>

#include "core/rng.h"

namespace md {
namespace {

TEST(Rng, SameSeedSameStreamAndStateRoundTrip) {
  Rng a(7), b(7), c(7, 1);
  EXPECT_EQ(a.next_u64(), b.next_u64());
  EXPECT_NE(a.next_u64(), c.next_u64());
  a.normal();  // leaves a cached normal in the state
  Rng::State saved = a.state();
  double expected[3] = {a.normal(), a.uniform(), static_cast<double>(a.below(10))};
  Rng resumed;
  resumed.set_state(saved);
  EXPECT_EQ(resumed.normal(), expected[0]);
  EXPECT_EQ(resumed.uniform(), expected[1]);
  EXPECT_EQ(static_cast<double>(resumed.below(10)), expected[2]);
}

TEST(Rng, MomentsOfNormalAndUniform) {
  Rng rng(3);
  const int n = 200000;
  double sum = 0, sum_sq = 0, uniform_sum = 0;
  for (int i = 0; i < n; ++i) {
    double x = rng.normal();
    sum += x;
    sum_sq += x * x;
    uniform_sum += rng.uniform();
  }
  EXPECT_NEAR(sum / n, 0.0, 0.01);
  EXPECT_NEAR(sum_sq / n, 1.0, 0.02);
  EXPECT_NEAR(uniform_sum / n, 0.5, 0.005);
}

}  // namespace
}  // namespace md
