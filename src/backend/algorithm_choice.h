// Choosing an algorithm by running it: a library (cuDNN) ranks candidate algorithms for one
// operation and shape, but may still refuse the one it ranked first when it is executed
// (not supported, bad parameter, execution failed). So a choice is made by running the
// candidates in rank order: a candidate refused at its first run is dropped and the next one is
// run, and only a candidate that has run is cached. A cached choice is run directly and never
// searched again. Inside recorded work (core/capture.h) nothing is chosen: a replay would skip
// the host side of the walk, so a cache miss there is an error naming the operation (the eager
// warm-up step before a capture fills every cache).
// Free of CUDA, so the walk is tested on every machine; backend/cuda/conv2d.cpp supplies the
// callbacks that rank, run and describe cuDNN's algorithms.
#pragma once

#include <cstddef>
#include <optional>
#include <string>
#include <vector>

#include "core/capture.h"
#include "core/error.h"
#include "core/logging.h"

namespace md::backend {

// How one run of a candidate ended: it ran, or the library refused it (status names why).
// Errors that are not about the candidate (out of memory, a broken device) are thrown by the
// run callback instead, and end the walk.
struct CandidateOutcome {
  bool ran = false;
  std::string status;

  static CandidateOutcome success() { return CandidateOutcome{true, {}}; }
  static CandidateOutcome refused(std::string status) {
    return CandidateOutcome{false, std::move(status)};
  }
};

// Runs the operation with the cached candidate, or (on a miss) chooses one by running the
// ranked candidates in turn, caches the first that ran and logs the choice once. Returns the
// candidate the operation ran with. Throws md::Error naming walk.what() when the cached
// candidate fails, when every candidate is refused (each with its status), when there is none,
// or when a miss happens inside a CaptureRegion.
// `walk` supplies the operation (a struct, so that a cache hit costs no allocation):
//   std::string what() const;                          the operation and its shape
//   std::vector<Candidate> rank();                     best first; called on a miss only
//   CandidateOutcome run(const Candidate& candidate);  runs the operation with it
//   std::string describe(const Candidate& candidate) const;  e.g. "algorithm 1 (FMA math)"
template <typename Candidate, typename Walk>
const Candidate& run_with_cached_choice(std::optional<Candidate>& cache, Walk& walk) {
  if (cache) {
    const CandidateOutcome outcome = walk.run(*cache);
    if (!outcome.ran) {
      throw Error(walk.what() + ": the cached " + walk.describe(*cache) +
                  ", which ran before, failed: " + outcome.status);
    }
    return *cache;
  }
  if (capturing()) {
    throw Error(walk.what() +
                ": no algorithm chosen yet inside a captured step (a choice runs and may retry "
                "candidates, which a replay would skip; the eager warm-up step before a capture "
                "chooses every shape's algorithm)");
  }
  const std::vector<Candidate> candidates = walk.rank();
  if (candidates.empty()) throw Error(walk.what() + ": no candidate algorithm");
  std::string refusals;
  for (const Candidate& candidate : candidates) {
    const CandidateOutcome outcome = walk.run(candidate);
    if (outcome.ran) {
      cache = candidate;
      log_info(walk.what(), ": chose ", walk.describe(candidate),
               refusals.empty() ? std::string() : " after refusals (" + refusals + ")");
      return *cache;
    }
    if (!refusals.empty()) refusals += "; ";
    refusals += walk.describe(candidate) + ": " + outcome.status;
  }
  throw Error(walk.what() + ": every candidate algorithm failed (" + refusals + ")");
}

}  // namespace md::backend
