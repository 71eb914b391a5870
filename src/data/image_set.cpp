// ImageSet helpers: the seeded holdout split and normalization statistics (see image_set.h).
#include "data/image_set.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <numeric>

#include "core/error.h"
#include "core/rng.h"

namespace md::data {
namespace {

// Stream of md::Rng reserved for the holdout split, apart from the loader's streams.
constexpr std::uint64_t kHoldoutStream = 0x686f6c646f7574ULL;  // "holdout"

ImageSet gather(const ImageSet& set, const std::vector<std::int64_t>& indices,
                const std::string& part) {
  ImageSet subset;
  subset.count = static_cast<std::int64_t>(indices.size());
  subset.channels = set.channels;
  subset.height = set.height;
  subset.width = set.width;
  subset.num_classes = set.num_classes;
  subset.source = set.source + " (" + part + ")";
  const std::size_t image_bytes = static_cast<std::size_t>(set.image_numel());
  subset.pixels.resize(indices.size() * image_bytes);
  subset.labels.resize(indices.size());
  for (std::size_t position = 0; position < indices.size(); ++position) {
    std::memcpy(subset.pixels.data() + position * image_bytes, set.image(indices[position]),
                image_bytes);
    subset.labels[position] = set.labels[static_cast<std::size_t>(indices[position])];
  }
  return subset;
}

}  // namespace

std::pair<ImageSet, ImageSet> split_holdout(const ImageSet& set, double holdout_fraction,
                                            std::uint64_t seed) {
  MD_INPUT_CHECK(holdout_fraction > 0.0 && holdout_fraction < 1.0,
                 "holdout_fraction must be in (0, 1), got ", holdout_fraction);
  const auto holdout_count =
      static_cast<std::int64_t>(std::llround(static_cast<double>(set.count) * holdout_fraction));
  MD_INPUT_CHECK(holdout_count > 0 && holdout_count < set.count, "holdout_fraction ",
                 holdout_fraction, " of the ", set.count, " samples of ", set.source,
                 " leaves an empty part");
  return split_holdout_count(set, holdout_count, seed);
}

std::pair<ImageSet, ImageSet> split_holdout_count(const ImageSet& set, std::int64_t holdout_count,
                                                  std::uint64_t seed) {
  MD_INPUT_CHECK(holdout_count > 0 && holdout_count < set.count, "holding out ", holdout_count,
                 " of the ", set.count, " samples of ", set.source, " leaves an empty part");

  std::vector<std::int64_t> permutation(static_cast<std::size_t>(set.count));
  std::iota(permutation.begin(), permutation.end(), std::int64_t{0});
  Rng rng(seed, kHoldoutStream);
  for (std::int64_t i = set.count - 1; i > 0; --i) {
    const auto j = static_cast<std::int64_t>(rng.below(static_cast<std::uint64_t>(i + 1)));
    std::swap(permutation[static_cast<std::size_t>(i)], permutation[static_cast<std::size_t>(j)]);
  }
  std::vector<std::int64_t> holdout_indices(permutation.begin(),
                                            permutation.begin() + holdout_count);
  std::vector<std::int64_t> train_indices(permutation.begin() + holdout_count, permutation.end());
  std::sort(holdout_indices.begin(), holdout_indices.end());
  std::sort(train_indices.begin(), train_indices.end());
  return {gather(set, train_indices, "train part"), gather(set, holdout_indices, "holdout part")};
}

ImageSet first_samples(const ImageSet& set, std::int64_t count) {
  MD_INPUT_CHECK(count > 0 && count <= set.count, "asked for the first ", count, " samples of ",
                 set.source, ", which has ", set.count);
  std::vector<std::int64_t> indices(static_cast<std::size_t>(count));
  std::iota(indices.begin(), indices.end(), std::int64_t{0});
  return gather(set, indices, "first " + std::to_string(count));
}

Normalization compute_normalization(const ImageSet& set) {
  MD_CHECK(set.count > 0 && set.channels > 0, "compute_normalization of an empty set ", set.source);
  const std::int64_t plane = static_cast<std::int64_t>(set.height) * set.width;
  // Exact integer sums: 8-bit pixels, at most 2^64 / 255^2 of them per channel.
  std::vector<std::uint64_t> sum(static_cast<std::size_t>(set.channels), 0);
  std::vector<std::uint64_t> sum_squares(static_cast<std::size_t>(set.channels), 0);
  for (std::int64_t n = 0; n < set.count; ++n) {
    const std::uint8_t* image = set.image(n);
    for (int c = 0; c < set.channels; ++c) {
      const std::uint8_t* channel_pixels = image + c * plane;
      std::uint64_t channel_sum = 0;
      std::uint64_t channel_squares = 0;
      for (std::int64_t p = 0; p < plane; ++p) {
        const std::uint64_t value = channel_pixels[p];
        channel_sum += value;
        channel_squares += value * value;
      }
      sum[static_cast<std::size_t>(c)] += channel_sum;
      sum_squares[static_cast<std::size_t>(c)] += channel_squares;
    }
  }
  Normalization normalization;
  const double samples = static_cast<double>(set.count) * static_cast<double>(plane);
  for (std::size_t c = 0; c < sum.size(); ++c) {
    const double mean = static_cast<double>(sum[c]) / samples / 255.0;
    const double mean_square = static_cast<double>(sum_squares[c]) / samples / (255.0 * 255.0);
    const double variance = std::max(mean_square - mean * mean, 0.0);
    normalization.mean.push_back(static_cast<float>(mean));
    // A constant channel gets std 1 so that normalizing it stays finite.
    normalization.std.push_back(variance > 0.0 ? static_cast<float>(std::sqrt(variance)) : 1.0f);
  }
  return normalization;
}

}  // namespace md::data
