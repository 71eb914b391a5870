// ImageNet transforms (see imagenet_transform.h). One path for both phases: the geometry is
// decided from the JPEG header inside the decode (the planner), as a box in full-image
// coordinates and a DCT reduction; the window the box needs is decoded; the box is resized to the
// output with Pillow's bilinear filter; the output is flipped and normalized into CHW.
// Train clips the filter to the crop (torchvision crops, then resizes the crop); eval clips it to
// the image (torchvision resizes the whole image, then crops), so eval decodes a margin of the
// filter's support around the box.
#include "data/imagenet_transform.h"

#include <algorithm>
#include <cmath>

#include "core/error.h"
#include "data/jpeg.h"
#include "data/resample.h"

namespace md::data {
namespace {

// Python's round() on a double: to nearest, ties to even.
int round_half_even(double value) {
  return static_cast<int>(std::nearbyint(value));
}

struct ThreadBuffers {
  DecodedImage decoded;
  ResizeScratch scratch;
  std::vector<std::uint8_t> resized;  // (crop, crop, 3)
};

ThreadBuffers& thread_buffers() {
  thread_local ThreadBuffers buffers;
  return buffers;
}

enum class FilterClip { Box, Image };

// What one sample needs from its JPEG, in full-image coordinates.
struct Plan {
  ResizeBox box;
  FilterClip clip = FilterClip::Box;
  int output_size = 1;  // the resized box's side
  int scale_denom = 1;
  bool flipped = false;
};

// The largest DCT reduction d in {8, 4, 2} with box extents / d still at least the output size.
int largest_reduction(const ResizeBox& box, int output_size, DctScaling scaling) {
  if (scaling == DctScaling::Off) return 1;
  const double smaller_extent = std::min(box.right - box.left, box.bottom - box.top);
  for (const int denom : {8, 4, 2}) {
    if (smaller_extent >= static_cast<double>(denom) * output_size) return denom;
  }
  return 1;
}

DecodeRequest request_for(const Plan& plan, const JpegHeader& header) {
  const double denom = plan.scale_denom;
  const int scaled_width = scaled_size(header.width, plan.scale_denom);
  const int scaled_height = scaled_size(header.height, plan.scale_denom);
  int margin = 0;
  if (plan.clip == FilterClip::Image) {
    // The filter reaches `support` source pixels beyond the box; decode them (and one more).
    const double scale = std::max(plan.box.right - plan.box.left, plan.box.bottom - plan.box.top) /
                         (denom * plan.output_size);
    margin = static_cast<int>(std::ceil(std::max(scale, 1.0))) + 1;
  }
  const int left = std::max(static_cast<int>(std::floor(plan.box.left / denom)) - margin, 0);
  const int top = std::max(static_cast<int>(std::floor(plan.box.top / denom)) - margin, 0);
  const int right =
      std::min(static_cast<int>(std::ceil(plan.box.right / denom)) + margin, scaled_width);
  const int bottom =
      std::min(static_cast<int>(std::ceil(plan.box.bottom / denom)) + margin, scaled_height);
  DecodeRequest request;
  request.scale_denom = plan.scale_denom;
  request.left = left;
  request.top = top;
  request.width = std::max(right - left, 1);
  request.height = std::max(bottom - top, 1);
  return request;
}

}  // namespace

Normalization imagenet_normalization() {
  return Normalization{{0.485f, 0.456f, 0.406f}, {0.229f, 0.224f, 0.225f}};
}

void validate_jpeg_transform(const JpegTransform& transform) {
  MD_INPUT_CHECK(transform.crop_size > 0, "ImageNet transform: crop_size must be positive, got ",
                 transform.crop_size);
  MD_INPUT_CHECK(transform.resize_size > 0,
                 "ImageNet transform: resize_size must be positive, got ", transform.resize_size);
  MD_INPUT_CHECK(transform.phase != JpegPhase::Eval || transform.resize_size >= transform.crop_size,
                 "ImageNet transform: resize_size (", transform.resize_size,
                 ") must be at least crop_size (", transform.crop_size, ") for evaluation");
  MD_INPUT_CHECK(transform.min_scale > 0.0 && transform.min_scale <= transform.max_scale &&
                     transform.max_scale <= 1.0,
                 "ImageNet transform: scale bounds must satisfy 0 < min_scale <= max_scale <= 1, "
                 "got [",
                 transform.min_scale, ", ", transform.max_scale, "]");
  MD_INPUT_CHECK(transform.min_ratio > 0.0 && transform.min_ratio <= transform.max_ratio,
                 "ImageNet transform: ratio bounds must satisfy 0 < min_ratio <= max_ratio, got [",
                 transform.min_ratio, ", ", transform.max_ratio, "]");
}

ResizedCropDraw draw_resized_crop(const JpegTransform& transform, int image_width, int image_height,
                                  Rng& rng) {
  const double area = static_cast<double>(image_width) * image_height;
  const double log_min_ratio = std::log(transform.min_ratio);
  const double log_max_ratio = std::log(transform.max_ratio);
  ResizedCropDraw draw;
  for (int attempt = 0; attempt < 10; ++attempt) {
    const double target_area = area * rng.uniform(transform.min_scale, transform.max_scale);
    const double aspect = std::exp(rng.uniform(log_min_ratio, log_max_ratio));
    const int width = round_half_even(std::sqrt(target_area * aspect));
    const int height = round_half_even(std::sqrt(target_area / aspect));
    if (width > 0 && width <= image_width && height > 0 && height <= image_height) {
      draw.window.height = height;
      draw.window.width = width;
      draw.window.top =
          static_cast<int>(rng.below(static_cast<std::uint64_t>(image_height - height + 1)));
      draw.window.left =
          static_cast<int>(rng.below(static_cast<std::uint64_t>(image_width - width + 1)));
      return draw;
    }
  }
  draw.fallback = true;
  const double in_ratio = static_cast<double>(image_width) / image_height;
  int width = image_width;
  int height = image_height;
  if (in_ratio < transform.min_ratio) {
    height = round_half_even(width / transform.min_ratio);
  } else if (in_ratio > transform.max_ratio) {
    width = round_half_even(height * transform.max_ratio);
  }
  draw.window.height = std::clamp(height, 1, image_height);
  draw.window.width = std::clamp(width, 1, image_width);
  draw.window.top = (image_height - draw.window.height) / 2;
  draw.window.left = (image_width - draw.window.width) / 2;
  return draw;
}

EvalGeometry eval_geometry(const JpegTransform& transform, int image_width, int image_height) {
  EvalGeometry geometry;
  const int size = transform.resize_size;
  if (image_width <= image_height) {
    geometry.resized_width = size;
    geometry.resized_height =
        static_cast<int>(static_cast<double>(size) * image_height / image_width);
  } else {
    geometry.resized_height = size;
    geometry.resized_width =
        static_cast<int>(static_cast<double>(size) * image_width / image_height);
  }
  const int crop = transform.crop_size;
  geometry.crop.height = crop;
  geometry.crop.width = crop;
  geometry.crop.top = round_half_even((geometry.resized_height - crop) / 2.0);
  geometry.crop.left = round_half_even((geometry.resized_width - crop) / 2.0);
  return geometry;
}

JpegRenderer::JpegRenderer(const JpegTransform& transform, const JpegRenderOptions& options)
    : transform_(transform), options_(options) {
  validate_jpeg_transform(transform_);
  const Normalization normalization =
      transform_.normalization.mean.empty() && transform_.normalization.std.empty()
          ? imagenet_normalization()
          : transform_.normalization;
  table_ = normalization_table(normalization, 3);
}

namespace {

// Decodes what `make_plan` asks for, resizes it to (crop, crop), flips and normalizes into out.
template <typename MakePlan>
std::string render_planned(const std::uint8_t* bytes, std::size_t size, int crop,
                           const std::vector<float>& table, const MakePlan& make_plan, float* out) {
  ThreadBuffers& buffers = thread_buffers();
  Plan plan;
  const DecodePlanner planner = [&](const JpegHeader& header) {
    plan = make_plan(header);
    plan.output_size = crop;
    return request_for(plan, header);
  };
  std::string error = decode_jpeg(bytes, size, planner, buffers.decoded);
  if (!error.empty()) return error;
  const DecodedImage& image = buffers.decoded;

  const double denom = image.scale_denom;
  ResizeBox scaled{plan.box.left / denom, plan.box.top / denom, plan.box.right / denom,
                   plan.box.bottom / denom};
  int view_left = image.left;
  int view_top = image.top;
  int view_right = image.left + image.width;
  int view_bottom = image.top + image.height;
  if (plan.clip == FilterClip::Box) {
    view_left = std::max(view_left, static_cast<int>(std::floor(scaled.left)));
    view_top = std::max(view_top, static_cast<int>(std::floor(scaled.top)));
    view_right = std::min(view_right, static_cast<int>(std::ceil(scaled.right)));
    view_bottom = std::min(view_bottom, static_cast<int>(std::ceil(scaled.bottom)));
  }
  RgbView view;
  view.row_stride = static_cast<std::ptrdiff_t>(image.row_stride);
  view.pixels = image.row(view_top - image.top) + (view_left - image.left) * 3;
  view.width = view_right - view_left;
  view.height = view_bottom - view_top;
  ResizeBox box{std::clamp(scaled.left - view_left, 0.0, static_cast<double>(view.width)),
                std::clamp(scaled.top - view_top, 0.0, static_cast<double>(view.height)),
                std::clamp(scaled.right - view_left, 0.0, static_cast<double>(view.width)),
                std::clamp(scaled.bottom - view_top, 0.0, static_cast<double>(view.height))};

  const std::size_t plane = static_cast<std::size_t>(crop) * static_cast<std::size_t>(crop);
  if (buffers.resized.size() < plane * 3) buffers.resized.resize(plane * 3);
  resize_bilinear(view, box, crop, crop, buffers.resized.data(), buffers.scratch);

  const std::uint8_t* pixels = buffers.resized.data();
  for (int y = 0; y < crop; ++y) {
    const std::uint8_t* row =
        pixels + static_cast<std::size_t>(y) * static_cast<std::size_t>(crop) * 3;
    for (int c = 0; c < 3; ++c) {
      const float* lookup = table.data() + c * 256;
      float* out_row = out + static_cast<std::size_t>(c) * plane +
                       static_cast<std::size_t>(y) * static_cast<std::size_t>(crop);
      if (plan.flipped) {
        for (int x = 0; x < crop; ++x) out_row[crop - 1 - x] = lookup[row[x * 3 + c]];
      } else {
        for (int x = 0; x < crop; ++x) out_row[x] = lookup[row[x * 3 + c]];
      }
    }
  }
  return {};
}

ResizeBox box_of(const CropWindow& window) {
  return ResizeBox{static_cast<double>(window.left), static_cast<double>(window.top),
                   static_cast<double>(window.left + window.width),
                   static_cast<double>(window.top + window.height)};
}

}  // namespace

std::string JpegRenderer::render(const std::uint8_t* bytes, std::size_t size, Rng& rng,
                                 float* out) const {
  const int crop = transform_.crop_size;
  if (transform_.phase == JpegPhase::Train) {
    const auto make_plan = [&](const JpegHeader& header) {
      const ResizedCropDraw draw = draw_resized_crop(transform_, header.width, header.height, rng);
      Plan plan;
      plan.box = box_of(draw.window);
      plan.clip = FilterClip::Box;
      plan.flipped = transform_.flip == Flip::Horizontal && rng.uniform() < 0.5;
      plan.scale_denom = largest_reduction(plan.box, crop, options_.dct_scaling);
      return plan;
    };
    return render_planned(bytes, size, crop, table_, make_plan, out);
  }
  const auto make_plan = [&](const JpegHeader& header) {
    const EvalGeometry geometry = eval_geometry(transform_, header.width, header.height);
    const double scale_x = static_cast<double>(header.width) / geometry.resized_width;
    const double scale_y = static_cast<double>(header.height) / geometry.resized_height;
    Plan plan;
    plan.box = ResizeBox{
        geometry.crop.left * scale_x, geometry.crop.top * scale_y,
        std::min((geometry.crop.left + crop) * scale_x, static_cast<double>(header.width)),
        std::min((geometry.crop.top + crop) * scale_y, static_cast<double>(header.height))};
    plan.clip = FilterClip::Image;
    plan.scale_denom = largest_reduction(plan.box, crop, options_.dct_scaling);
    return plan;
  };
  return render_planned(bytes, size, crop, table_, make_plan, out);
}

std::string JpegRenderer::render_resized_crop(const std::uint8_t* bytes, std::size_t size,
                                              const CropWindow& window, bool flipped,
                                              float* out) const {
  const int crop = transform_.crop_size;
  const auto make_plan = [&](const JpegHeader& header) {
    CropWindow inside = window;
    inside.left = std::clamp(inside.left, 0, header.width - 1);
    inside.top = std::clamp(inside.top, 0, header.height - 1);
    inside.width = std::clamp(inside.width, 1, header.width - inside.left);
    inside.height = std::clamp(inside.height, 1, header.height - inside.top);
    Plan plan;
    plan.box = box_of(inside);
    plan.clip = FilterClip::Box;
    plan.flipped = flipped;
    plan.scale_denom = largest_reduction(plan.box, crop, options_.dct_scaling);
    return plan;
  };
  return render_planned(bytes, size, crop, table_, make_plan, out);
}

}  // namespace md::data
