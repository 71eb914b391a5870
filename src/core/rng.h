// Rng: the project's one random generator (xoshiro256**, seeded by splitmix64). Its whole state
// is four 64-bit words plus a cached normal, so checkpoints store it and a resumed run draws the
// same numbers. Independent streams come from (seed, stream) pairs, never from reseeding.
#pragma once

#include <array>
#include <cstdint>

namespace md {

class Rng {
 public:
  struct State {
    std::array<std::uint64_t, 4> words{};
    double cached_normal = 0.0;
    bool has_cached_normal = false;
  };

  explicit Rng(std::uint64_t seed = 0, std::uint64_t stream = 0);

  std::uint64_t next_u64();
  double uniform();                          // [0, 1)
  double uniform(double low, double high);   // [low, high)
  double normal();                           // N(0, 1)
  std::uint64_t below(std::uint64_t bound);  // [0, bound), unbiased

  State state() const { return state_; }
  void set_state(const State& state) { state_ = state; }

 private:
  State state_;
};

}  // namespace md
