// Per-sample training augmentation and normalization, from uint8 pixels to the float32 values a
// batch holds. The order is that of the Cutout reference implementation (DeVries & Taylor,
// torchvision transforms RandomCrop -> RandomHorizontalFlip -> ToTensor -> Normalize -> Cutout):
//   1. random crop with zero padding, on raw pixels (a padded pixel is raw 0, i.e. black, so it
//      becomes (0 - mean) / std after normalization, as in torchvision's RandomCrop(padding));
//   2. horizontal flip with probability 0.5;
//   3. normalization (pixel / 255 - mean) / std;
//   4. Cutout: a square set to 0 AFTER normalization (the channel mean, as in the reference).
// The random choices are drawn first (draw_augment) from an Rng the caller seeds per sample, then
// applied (render_sample), so a sample's augmentation depends only on its Rng. Nothing here
// knows about batches, threads or epochs (loader.h).
#pragma once

#include <cstdint>
#include <vector>

#include "core/rng.h"
#include "data/image_set.h"

namespace md::data {

enum class Flip { None, Horizontal };

struct AugmentSpec {
  int crop_padding = 0;  // RandomCrop(size = image size, padding = crop_padding); 0: no crop
  Flip flip = Flip::None;
  int cutout = 0;  // side of the Cutout square; 0: no Cutout
};

// The random choices for one sample.
struct AugmentDraw {
  int crop_top = 0;   // offset into the padded image, in [0, 2 * crop_padding]
  int crop_left = 0;  // offset into the padded image, in [0, 2 * crop_padding]
  bool flipped = false;
  int cutout_center_y = 0;  // in [0, height)
  int cutout_center_x = 0;  // in [0, width)
};

// InputError for negative crop padding or cutout (the config reader rejects them first).
void validate_augment(const AugmentSpec& spec);

// The identity draw: no shift (crop_top = crop_left = crop_padding), no flip, no cutout center.
AugmentDraw identity_draw(const AugmentSpec& spec);

// Draws in a fixed order: crop top, crop left (when crop_padding > 0), flip (when Horizontal),
// cutout center y, x (when cutout > 0). Validates the spec first.
AugmentDraw draw_augment(const AugmentSpec& spec, int height, int width, Rng& rng);

// Per-channel lookup table of normalized values: table[c * 256 + pixel] =
// (pixel / 255 - mean[c]) / std[c] in float32. An empty Normalization means mean 0, std 1.
// InputError when the sizes differ from `channels` or a std is not positive.
std::vector<float> normalization_table(const Normalization& normalization, int channels);

// Writes one augmented, normalized sample.
// pixels: (C, H, W) uint8 of `set`'s geometry; out: (C, H, W) float32.
void render_sample(const std::uint8_t* pixels, const ImageSet& set, const AugmentSpec& spec,
                   const AugmentDraw& draw, const std::vector<float>& table, float* out);

}  // namespace md::data
