// ImageSet: a whole labelled image set in host memory as uint8 (the form every reader
// produces and the loader consumes), plus the set-level helpers: the seeded holdout split
// and per-channel normalization statistics. No file formats here (cifar100.h, idx.h) and
// no augmentation (augment.h).
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

namespace md::data {

struct ImageSet {
  std::vector<std::uint8_t> pixels;  // (count, channels, height, width), channel-major
  std::vector<std::int32_t> labels;  // (count), each in [0, num_classes)
  std::int64_t count = 0;
  int channels = 0;
  int height = 0;
  int width = 0;
  int num_classes = 0;
  std::string source;  // where it came from, for messages and logs

  std::int64_t image_numel() const { return static_cast<std::int64_t>(channels) * height * width; }
  const std::uint8_t* image(std::int64_t index) const {
    return pixels.data() + index * image_numel();
  }
};

enum class Split { Train, Test };

// Splits `set` into (train, holdout): round(count * holdout_fraction) samples picked by a
// permutation seeded by `seed` go to the holdout part, the rest to the train part; both keep
// the source order. Deterministic for a given seed. holdout_fraction must leave both parts
// non-empty (InputError otherwise).
std::pair<ImageSet, ImageSet> split_holdout(const ImageSet& set, double holdout_fraction,
                                            std::uint64_t seed);
// The same with the holdout part's size given: 0 < holdout_count < set.count.
std::pair<ImageSet, ImageSet> split_holdout_count(const ImageSet& set, std::int64_t holdout_count,
                                                  std::uint64_t seed);
// The first `count` samples of `set` (0 < count <= set.count), in order.
ImageSet first_samples(const ImageSet& set, std::int64_t count);

// Per-channel statistics on the [0, 1] pixel scale (pixel / 255); std is the population
// standard deviation. The loader normalizes as (pixel / 255 - mean) / std.
struct Normalization {
  std::vector<float> mean;
  std::vector<float> std;
};

Normalization compute_normalization(const ImageSet& set);

}  // namespace md::data
