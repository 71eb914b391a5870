// The walk over ranked algorithm candidates (backend/algorithm_choice.h) that the CUDA
// convolutions use, with stand-in candidates: a refused candidate gives way to the next one,
// only a candidate that ran is cached, a cached one is not searched again, and a miss inside a
// captured step is an error.
#include <gtest/gtest.h>

#include <functional>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "backend/algorithm_choice.h"
#include "core/capture.h"
#include "core/error.h"

namespace md::backend {
namespace {

// A stand-in library: candidates are ints, `refusing` maps a candidate to the status it is
// refused with; every call is counted.
struct FakeLibrary {
  std::vector<int> ranking{7, 3, 5};
  std::map<int, std::string> refusing;
  int rank_calls = 0;
  std::vector<int> runs;

  std::string what() const { return "conv2d forward for x [2, 3, 8, 8], weight [4, 3, 3, 3]"; }
  std::vector<int> rank() {
    ++rank_calls;
    return ranking;
  }
  CandidateOutcome run(const int& candidate) {
    runs.push_back(candidate);
    const auto refused = refusing.find(candidate);
    return refused == refusing.end() ? CandidateOutcome::success()
                                     : CandidateOutcome::refused(refused->second);
  }
  std::string describe(const int& candidate) const {
    return "algorithm " + std::to_string(candidate);
  }
};

std::string error_of(const std::function<void()>& work) {
  try {
    work();
  } catch (const Error& error) {
    return error.what();
  }
  return "";
}

TEST(AlgorithmChoice, FirstCandidateRunsAndIsCached) {
  FakeLibrary library;
  std::optional<int> cache;
  EXPECT_EQ(run_with_cached_choice(cache, library), 7);
  ASSERT_TRUE(cache.has_value());
  EXPECT_EQ(*cache, 7);
  EXPECT_EQ(library.runs, (std::vector<int>{7}));
}

TEST(AlgorithmChoice, RefusedCandidateGivesWayToTheNextAndIsNotCached) {
  FakeLibrary library;
  library.refusing[7] = "CUDNN_STATUS_NOT_SUPPORTED";
  std::optional<int> cache;
  EXPECT_EQ(run_with_cached_choice(cache, library), 3);
  EXPECT_EQ(cache, std::optional<int>(3));
  EXPECT_EQ(library.runs, (std::vector<int>{7, 3}));
}

TEST(AlgorithmChoice, CachedCandidateIsNotSearchedAgain) {
  FakeLibrary library;
  library.refusing[7] = "CUDNN_STATUS_BAD_PARAM";
  std::optional<int> cache;
  run_with_cached_choice(cache, library);
  library.runs.clear();
  for (int call = 0; call < 3; ++call) EXPECT_EQ(run_with_cached_choice(cache, library), 3);
  EXPECT_EQ(library.rank_calls, 1);
  EXPECT_EQ(library.runs, (std::vector<int>{3, 3, 3}));
}

TEST(AlgorithmChoice, EveryCandidateRefusedNamesTheShapeAndEachStatus) {
  FakeLibrary library;
  library.refusing = {{7, "CUDNN_STATUS_NOT_SUPPORTED"},
                      {3, "CUDNN_STATUS_BAD_PARAM"},
                      {5, "CUDNN_STATUS_EXECUTION_FAILED"}};
  std::optional<int> cache;
  const std::string message = error_of([&] { run_with_cached_choice(cache, library); });
  EXPECT_FALSE(cache.has_value());
  EXPECT_EQ(library.runs, (std::vector<int>{7, 3, 5}));
  for (const std::string part :
       {"x [2, 3, 8, 8], weight [4, 3, 3, 3]", "algorithm 7: CUDNN_STATUS_NOT_SUPPORTED",
        "algorithm 3: CUDNN_STATUS_BAD_PARAM", "algorithm 5: CUDNN_STATUS_EXECUTION_FAILED"}) {
    EXPECT_NE(message.find(part), std::string::npos) << part << " missing from: " << message;
  }
}

TEST(AlgorithmChoice, NoCandidateIsAnError) {
  FakeLibrary library;
  library.ranking.clear();
  std::optional<int> cache;
  const std::string message = error_of([&] { run_with_cached_choice(cache, library); });
  EXPECT_NE(message.find("weight [4, 3, 3, 3]: no candidate"), std::string::npos) << message;
}

TEST(AlgorithmChoice, CachedCandidateThatFailsLaterIsAnErrorNotARetry) {
  FakeLibrary library;
  std::optional<int> cache;
  run_with_cached_choice(cache, library);
  library.refusing[7] = "CUDNN_STATUS_EXECUTION_FAILED";
  const std::string message = error_of([&] { run_with_cached_choice(cache, library); });
  EXPECT_NE(message.find("cached algorithm 7"), std::string::npos) << message;
  EXPECT_NE(message.find("CUDNN_STATUS_EXECUTION_FAILED"), std::string::npos) << message;
  EXPECT_EQ(library.rank_calls, 1);
}

TEST(AlgorithmChoice, MissInsideACaptureIsAnErrorThatRunsNothing) {
  FakeLibrary library;
  std::optional<int> cache;
  std::string message;
  {
    CaptureRegion region;
    message = error_of([&] { run_with_cached_choice(cache, library); });
  }
  EXPECT_NE(message.find("conv2d forward for x [2, 3, 8, 8]"), std::string::npos) << message;
  EXPECT_NE(message.find("inside a captured step"), std::string::npos) << message;
  EXPECT_EQ(library.rank_calls, 0);
  EXPECT_TRUE(library.runs.empty());
  EXPECT_FALSE(cache.has_value());
}

TEST(AlgorithmChoice, HitInsideACaptureRunsTheCachedCandidate) {
  FakeLibrary library;
  library.refusing[7] = "CUDNN_STATUS_NOT_SUPPORTED";
  std::optional<int> cache;
  run_with_cached_choice(cache, library);  // the eager warm-up step
  library.runs.clear();
  {
    CaptureRegion region;
    EXPECT_EQ(run_with_cached_choice(cache, library), 3);
  }
  EXPECT_EQ(library.runs, (std::vector<int>{3}));
  EXPECT_EQ(library.rank_calls, 1);
}

}  // namespace
}  // namespace md::backend
