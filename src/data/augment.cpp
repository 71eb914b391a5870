// Augmentation and normalization of one sample (see augment.h for the order and semantics).
#include "data/augment.h"

#include <algorithm>
#include <cmath>

#include "core/error.h"

namespace md::data {
void validate_augment(const AugmentSpec& spec) {
  MD_INPUT_CHECK(spec.crop_padding >= 0, "augment: crop padding must be >= 0, got ",
                 spec.crop_padding);
  MD_INPUT_CHECK(spec.cutout >= 0, "augment: cutout size must be >= 0, got ", spec.cutout);
}

AugmentDraw identity_draw(const AugmentSpec& spec) {
  AugmentDraw draw;
  draw.crop_top = spec.crop_padding;
  draw.crop_left = spec.crop_padding;
  return draw;
}

AugmentDraw draw_augment(const AugmentSpec& spec, int height, int width, Rng& rng) {
  validate_augment(spec);
  AugmentDraw draw = identity_draw(spec);
  if (spec.crop_padding > 0) {
    const auto offsets = static_cast<std::uint64_t>(2 * spec.crop_padding + 1);
    draw.crop_top = static_cast<int>(rng.below(offsets));
    draw.crop_left = static_cast<int>(rng.below(offsets));
  }
  if (spec.flip == Flip::Horizontal) draw.flipped = rng.uniform() < 0.5;
  if (spec.cutout > 0) {
    draw.cutout_center_y = static_cast<int>(rng.below(static_cast<std::uint64_t>(height)));
    draw.cutout_center_x = static_cast<int>(rng.below(static_cast<std::uint64_t>(width)));
  }
  return draw;
}

std::vector<float> normalization_table(const Normalization& normalization, int channels) {
  const bool identity = normalization.mean.empty() && normalization.std.empty();
  MD_INPUT_CHECK(identity || (normalization.mean.size() == static_cast<std::size_t>(channels) &&
                              normalization.std.size() == static_cast<std::size_t>(channels)),
                 "normalization has ", normalization.mean.size(), " means and ",
                 normalization.std.size(), " stds for images of ", channels, " channels");
  std::vector<float> table(static_cast<std::size_t>(channels) * 256);
  for (int c = 0; c < channels; ++c) {
    const float mean = identity ? 0.0f : normalization.mean[static_cast<std::size_t>(c)];
    const float std_dev = identity ? 1.0f : normalization.std[static_cast<std::size_t>(c)];
    MD_INPUT_CHECK(std::isfinite(mean) && std::isfinite(std_dev) && std_dev > 0.0f,
                   "normalization of channel ", c, " has mean ", mean, " and std ", std_dev,
                   " (std must be positive)");
    for (int pixel = 0; pixel < 256; ++pixel) {
      table[static_cast<std::size_t>(c * 256 + pixel)] =
          (static_cast<float>(pixel) / 255.0f - mean) / std_dev;
    }
  }
  return table;
}

void render_sample(const std::uint8_t* pixels, const ImageSet& set, const AugmentSpec& spec,
                   const AugmentDraw& draw, const std::vector<float>& table, float* out) {
  const int height = set.height;
  const int width = set.width;
  const std::int64_t plane = static_cast<std::int64_t>(height) * width;
  // Output (y, x) reads the padded image at (y + crop_top, x' + crop_left), x' = x or the mirror
  // of x; the padded image at (py, px) is the source at (py - padding, px - padding) or 0.
  const int shift_y = draw.crop_top - spec.crop_padding;
  const int shift_x = draw.crop_left - spec.crop_padding;
  for (int c = 0; c < set.channels; ++c) {
    const float* channel_table = table.data() + c * 256;
    const std::uint8_t* channel_in = pixels + c * plane;
    float* channel_out = out + c * plane;
    for (int y = 0; y < height; ++y) {
      const int source_y = y + shift_y;
      float* row_out = channel_out + static_cast<std::int64_t>(y) * width;
      if (source_y < 0 || source_y >= height) {
        std::fill(row_out, row_out + width, channel_table[0]);
        continue;
      }
      const std::uint8_t* row_in = channel_in + static_cast<std::int64_t>(source_y) * width;
      for (int x = 0; x < width; ++x) {
        const int cropped_x = draw.flipped ? width - 1 - x : x;
        const int source_x = cropped_x + shift_x;
        row_out[x] = (source_x < 0 || source_x >= width) ? channel_table[0]
                                                         : channel_table[row_in[source_x]];
      }
    }
  }
  if (spec.cutout > 0) {
    // As the reference: rows [cy - L/2, cy + L/2) and columns alike, clipped to the image.
    const int half = spec.cutout / 2;
    const int y_begin = std::clamp(draw.cutout_center_y - half, 0, height);
    const int y_end = std::clamp(draw.cutout_center_y + half, 0, height);
    const int x_begin = std::clamp(draw.cutout_center_x - half, 0, width);
    const int x_end = std::clamp(draw.cutout_center_x + half, 0, width);
    for (int c = 0; c < set.channels; ++c) {
      for (int y = y_begin; y < y_end; ++y) {
        float* row_out = out + c * plane + static_cast<std::int64_t>(y) * width;
        std::fill(row_out + x_begin, row_out + x_end, 0.0f);
      }
    }
  }
}

}  // namespace md::data
