// The ImageNet sample transforms, from JPEG bytes to normalized float32 CHW, as torchvision
// defines them on PIL images:
//   Train: RandomResizedCrop(crop_size, scale, ratio) -> RandomHorizontalFlip -> ToTensor ->
//          Normalize;
//   Eval:  Resize(resize_size) -> CenterCrop(crop_size) -> ToTensor -> Normalize.
// Every random choice is drawn from the Rng the caller passes (one per sample), so a rendered
// sample is a pure function of (bytes, rng state). For speed only the part of the image the crop
// needs is decoded, reduced by DCT scaling when the crop is at least twice the output size; the
// result is then close to, not bit-equal with, a full decode + resize (DctScaling::Off gives
// the torchvision pipeline to the level). Nothing here knows about shards, batches or threads.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "core/rng.h"
#include "data/augment.h"
#include "data/image_set.h"
#include "data/sample_source.h"

namespace md::data {

enum class JpegPhase { Train, Eval };

struct JpegTransform {
  JpegPhase phase = JpegPhase::Train;  // Train: RandomResizedCrop(crop_size, scale, ratio) + flip;
                                       // Eval: resize shorter side to resize_size, center crop
  int crop_size = 224;
  int resize_size = 256;
  double min_scale = 0.08, max_scale = 1.0;
  double min_ratio = 3.0 / 4.0, max_ratio = 4.0 / 3.0;
  Flip flip = Flip::Horizontal;  // Train only
  Normalization normalization;   // empty: ImageNet's mean (0.485, 0.456, 0.406), std (0.229, ...)
};

// ImageNet's per-channel mean (0.485, 0.456, 0.406) and std (0.229, 0.224, 0.225).
Normalization imagenet_normalization();

// InputError naming the field for a non-positive size, scale or ratio bounds out of order or
// outside (0, 1] for the scale, or an eval resize_size smaller than crop_size.
void validate_jpeg_transform(const JpegTransform& transform);

// A rectangle of pixels: rows [top, top + height), columns [left, left + width).
struct CropWindow {
  int top = 0;
  int left = 0;
  int height = 0;
  int width = 0;
};

struct ResizedCropDraw {
  CropWindow window;      // in the full image
  bool fallback = false;  // no attempt fitted: the central crop of clamped ratio
};

// torchvision's RandomResizedCrop.get_params: up to 10 attempts, each drawing the area fraction,
// the log aspect ratio and, on success, the top and the left offset; then the fallback.
ResizedCropDraw draw_resized_crop(const JpegTransform& transform, int image_width, int image_height,
                                  Rng& rng);

// The eval geometry: the size the image is resized to (shorter side resize_size, the other
// int(resize_size * long / short)) and the center crop in that resized image (top =
// round((resized_height - crop) / 2), round half to even as Python's round).
struct EvalGeometry {
  int resized_width = 0;
  int resized_height = 0;
  CropWindow crop;
};
EvalGeometry eval_geometry(const JpegTransform& transform, int image_width, int image_height);

enum class DctScaling { Largest, Off };

struct JpegRenderOptions {
  // Largest: decode at the largest DCT reduction (1/2, 1/4, 1/8) that keeps the needed region at
  // least the output size. Off: always decode at full size (the torchvision pipeline exactly).
  DctScaling dct_scaling = DctScaling::Largest;
};

// A validated transform with its normalization table; render() is const and thread-safe (each
// thread decodes and resizes into its own thread_local buffers).
class JpegRenderer {
 public:
  explicit JpegRenderer(const JpegTransform& transform, const JpegRenderOptions& options = {});

  const JpegTransform& transform() const { return transform_; }
  SampleShape shape() const { return SampleShape{3, transform_.crop_size, transform_.crop_size}; }

  // Renders one sample into out: (3, crop_size, crop_size) float32. Train draws the crop, then
  // the flip (when flip is Horizontal), from rng. Returns "" on success, else why the bytes could
  // not be decoded (out is then unspecified). Never throws for bad bytes.
  std::string render(const std::uint8_t* bytes, std::size_t size, Rng& rng, float* out) const;

  // The train geometry with given choices (torchvision's F.resized_crop, then hflip when
  // flipped): for tests against torchvision, and for callers that draw themselves.
  std::string render_resized_crop(const std::uint8_t* bytes, std::size_t size,
                                  const CropWindow& window, bool flipped, float* out) const;

 private:
  JpegTransform transform_;
  JpegRenderOptions options_;
  std::vector<float> table_;  // (3, 256) normalized value per channel and pixel
};

}  // namespace md::data
