// JPEG decoding, the bilinear resize and the ImageNet transforms: against the original pixels of
// real JPEGs made by md_test_jpeg, against PIL and torchvision (tests/fixtures/jpeg_pil.bin, made
// by tests/reference/make_jpeg_fixture.py), and against each other (windowed vs whole decodes,
// DCT-scaled vs full-size renders). Corrupt bytes must give a reason, never a crash.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

#include "core/rng.h"
#include "data/imagenet_transform.h"
#include "data/jpeg.h"
#include "data/resample.h"
#include "jpeg_test_images.h"
#include "support/fixture.h"
#include "support/jpeg_writer.h"

namespace md::data {
namespace {

using test::JpegColor;

struct Difference {
  double mean_abs = 0.0;
  int max_abs = 0;
};

Difference difference(const std::uint8_t* a, const std::uint8_t* b, std::size_t count) {
  Difference result;
  double total = 0.0;
  for (std::size_t i = 0; i < count; ++i) {
    const int delta = std::abs(static_cast<int>(a[i]) - static_cast<int>(b[i]));
    total += delta;
    result.max_abs = std::max(result.max_abs, delta);
  }
  result.mean_abs = count == 0 ? 0.0 : total / static_cast<double>(count);
  return result;
}

std::vector<std::uint8_t> as_bytes(const Tensor& tensor) {
  const std::vector<std::int32_t> values = tensor.to_vector<std::int32_t>();
  std::vector<std::uint8_t> bytes(values.size());
  for (std::size_t i = 0; i < values.size(); ++i) bytes[i] = static_cast<std::uint8_t>(values[i]);
  return bytes;
}

// Mean absolute error of the luma (BT.601) of two RGB pictures of `pixels` pixels: what 4:2:0
// JPEG keeps at full resolution (the chroma is halved, so sharp colour edges cost RGB accuracy).
double luma_error(const std::uint8_t* a, const std::uint8_t* b, std::size_t pixels) {
  double total = 0.0;
  for (std::size_t i = 0; i < pixels; ++i) {
    const double luma_a = 0.299 * a[3 * i] + 0.587 * a[3 * i + 1] + 0.114 * a[3 * i + 2];
    const double luma_b = 0.299 * b[3 * i] + 0.587 * b[3 * i + 1] + 0.114 * b[3 * i + 2];
    total += std::fabs(luma_a - luma_b);
  }
  return total / static_cast<double>(pixels);
}

TEST(JpegDecode, RgbMatchesOriginalPixels) {
  const test::JpegImage original = test::make_detailed_image(64, 48, JpegColor::Rgb, 3);
  const std::vector<std::uint8_t> bytes = test::encode_jpeg(original, 95);
  DecodedImage image;
  ASSERT_EQ(decode_jpeg(bytes.data(), bytes.size(), image), "");
  EXPECT_EQ(image.width, 64);
  EXPECT_EQ(image.height, 48);
  EXPECT_EQ(image.header.components, 3);
  // Measured at quality 95: luma 1.6, RGB 9.9 (noise and stripes in 4:2:0 chroma).
  EXPECT_LT(luma_error(image.pixels.data(), original.pixels.data(), 64 * 48), 2.5);
  EXPECT_LT(
      difference(image.pixels.data(), original.pixels.data(), original.pixels.size()).mean_abs,
      12.0);
  const test::JpegImage smooth = test::make_test_image(64, 48, JpegColor::Rgb, 3);
  const std::vector<std::uint8_t> smooth_bytes = test::encode_jpeg(smooth, 95);
  ASSERT_EQ(decode_jpeg(smooth_bytes.data(), smooth_bytes.size(), image), "");
  // Measured: luma 1.0, RGB 4.6 (the checkerboard's colour edges).
  EXPECT_LT(luma_error(image.pixels.data(), smooth.pixels.data(), 64 * 48), 1.5);
  EXPECT_LT(difference(image.pixels.data(), smooth.pixels.data(), smooth.pixels.size()).mean_abs,
            6.0);
}

TEST(JpegDecode, GrayBecomesRgbWithEqualChannels) {
  const test::JpegImage original = test::make_test_image(40, 30, JpegColor::Gray, 5);
  const std::vector<std::uint8_t> bytes = test::encode_jpeg(original, 95);
  DecodedImage image;
  ASSERT_EQ(decode_jpeg(bytes.data(), bytes.size(), image), "");
  ASSERT_EQ(image.width, 40);
  ASSERT_EQ(image.height, 30);
  EXPECT_EQ(image.header.components, 1);
  double total = 0.0;
  for (std::size_t i = 0; i < original.pixels.size(); ++i) {
    EXPECT_EQ(image.pixels[3 * i], image.pixels[3 * i + 1]);
    EXPECT_EQ(image.pixels[3 * i], image.pixels[3 * i + 2]);
    total += std::abs(static_cast<int>(image.pixels[3 * i]) - static_cast<int>(original.pixels[i]));
  }
  EXPECT_LT(total / static_cast<double>(original.pixels.size()), 2.0);
}

TEST(JpegDecode, OddSizes) {
  for (const auto& [width, height] : std::vector<std::pair<int, int>>{{37, 61}, {1, 1}, {17, 3}}) {
    const test::JpegImage original = test::make_test_image(width, height, JpegColor::Rgb, 9);
    const std::vector<std::uint8_t> bytes = test::encode_jpeg(original, 95);
    DecodedImage image;
    ASSERT_EQ(decode_jpeg(bytes.data(), bytes.size(), image), "") << width << "x" << height;
    EXPECT_EQ(image.width, width);
    EXPECT_EQ(image.height, height);
    // Measured: luma <= 1.2, RGB <= 10.1 (17x3: colour edges in 4:2:0 chroma).
    const std::size_t pixels = static_cast<std::size_t>(width) * static_cast<std::size_t>(height);
    EXPECT_LT(luma_error(image.pixels.data(), original.pixels.data(), pixels), 1.8)
        << width << "x" << height;
    EXPECT_LT(
        difference(image.pixels.data(), original.pixels.data(), original.pixels.size()).mean_abs,
        12.0)
        << width << "x" << height;
  }
}

TEST(JpegDecode, CorruptInputsGiveReasons) {
  const test::JpegImage original = test::make_detailed_image(64, 48, JpegColor::Rgb, 1);
  const std::vector<std::uint8_t> good = test::encode_jpeg(original, 90);
  EXPECT_EQ(check_jpeg(good.data(), good.size()), "");

  EXPECT_EQ(check_jpeg(nullptr, 0), "empty (0 bytes)");
  const std::vector<std::uint8_t> png = {0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a, 0, 0};
  EXPECT_EQ(check_jpeg(png.data(), png.size()), "not a JPEG (starts with 89 50 4e 47)");
  const std::vector<std::uint8_t> one = {0xFF};
  EXPECT_EQ(check_jpeg(one.data(), one.size()), "not a JPEG (starts with ff)");

  for (const std::size_t keep :
       {std::size_t{2}, std::size_t{20}, good.size() / 2, good.size() - 2}) {
    const std::string reason = check_jpeg(good.data(), keep);
    EXPECT_NE(reason, "") << "truncated to " << keep << " bytes";
  }
  EXPECT_NE(check_jpeg(good.data(), good.size() / 2).find("Premature end"), std::string::npos)
      << check_jpeg(good.data(), good.size() / 2);

  Rng rng(4);
  std::vector<std::uint8_t> garbage(good.begin(), good.begin() + 2);  // a JPEG's SOI, then noise
  for (int i = 0; i < 500; ++i) garbage.push_back(static_cast<std::uint8_t>(rng.below(256)));
  EXPECT_NE(check_jpeg(garbage.data(), garbage.size()), "");

  // Damaged entropy-coded data: every outcome but a crash is fine, and most are reported.
  int reported = 0;
  for (int trial = 0; trial < 40; ++trial) {
    std::vector<std::uint8_t> damaged = good;
    const std::size_t at = good.size() / 3 + rng.below(good.size() / 2);
    damaged[at] = static_cast<std::uint8_t>(damaged[at] ^ 0xFF);
    if (!check_jpeg(damaged.data(), damaged.size()).empty()) ++reported;
  }
  EXPECT_GT(reported, 0);

  // The transform reports the same reasons instead of throwing.
  const JpegRenderer renderer(JpegTransform{});
  std::vector<float> out(3 * 224 * 224);
  Rng sample_rng(1);
  EXPECT_NE(renderer.render(good.data(), good.size() / 2, sample_rng, out.data()), "");
  EXPECT_EQ(renderer.render(png.data(), png.size(), sample_rng, out.data()),
            "not a JPEG (starts with 89 50 4e 47)");
}

TEST(JpegDecode, WindowsMatchTheWholeDecode) {
  const test::JpegImage original = test::make_detailed_image(203, 157, JpegColor::Rgb, 2);
  const std::vector<std::uint8_t> bytes = test::encode_jpeg(original, 90);
  for (const int denom : {1, 2, 4}) {
    DecodedImage whole;
    ASSERT_EQ(decode_jpeg(
                  bytes.data(), bytes.size(),
                  [&](const JpegHeader&) {
                    return DecodeRequest{denom, 0, 0, 0, 0};
                  },
                  whole),
              "");
    EXPECT_EQ(whole.width, scaled_size(203, denom));
    EXPECT_EQ(whole.height, scaled_size(157, denom));
    std::vector<DecodeRequest> windows = {{denom, 0, 0, 20, 10},
                                          {denom, 17 / denom, 9 / denom, 50 / denom, 33 / denom},
                                          {denom, 40 / denom, 64 / denom, 100 / denom, 90 / denom},
                                          {denom, 1, 1, 1000, 1000},
                                          {denom, 16 / denom, 16 / denom, 32 / denom, 16 / denom}};
    Rng rng(static_cast<std::uint64_t>(denom));
    for (int i = 0; i < 40; ++i) {
      const int left = static_cast<int>(rng.below(static_cast<std::uint64_t>(whole.width)));
      const int top = static_cast<int>(rng.below(static_cast<std::uint64_t>(whole.height)));
      const int width =
          1 + static_cast<int>(rng.below(static_cast<std::uint64_t>(whole.width - left)));
      const int height =
          1 + static_cast<int>(rng.below(static_cast<std::uint64_t>(whole.height - top)));
      windows.push_back(DecodeRequest{denom, left, top, width, height});
    }
    for (const DecodeRequest& request : windows) {
      DecodedImage window;
      ASSERT_EQ(decode_jpeg(
                    bytes.data(), bytes.size(), [&](const JpegHeader&) { return request; }, window),
                "");
      EXPECT_EQ(window.top, request.top);
      EXPECT_LE(window.left, request.left);
      EXPECT_GE(window.left + window.width, std::min(request.left + request.width, whole.width));
      EXPECT_EQ(window.height, std::min(request.height, whole.height - request.top));
      int max_abs = 0;
      for (int y = 0; y < window.height; ++y) {
        for (int x = 0; x < window.width * 3; ++x) {
          const int a = window.row(y)[x];
          const int b = whole.row(window.top + y)[window.left * 3 + x];
          max_abs = std::max(max_abs, std::abs(a - b));
        }
      }
      EXPECT_EQ(max_abs, 0) << "denom " << denom << " window at " << request.left << ","
                            << request.top;
    }
  }
}

TEST(JpegDecode, WindowedDecodeStillFindsCorruptDataBelowTheWindow) {
  const test::JpegImage original = test::make_detailed_image(96, 96, JpegColor::Rgb, 6);
  const std::vector<std::uint8_t> bytes = test::encode_jpeg(original, 90);
  DecodedImage image;
  const auto top_rows = [](const JpegHeader&) { return DecodeRequest{1, 0, 0, 16, 8}; };
  EXPECT_EQ(decode_jpeg(bytes.data(), bytes.size(), top_rows, image), "");
  EXPECT_NE(decode_jpeg(bytes.data(), bytes.size() * 3 / 4, top_rows, image), "");
}

// ------------------------------------------------------------------- against PIL / torchvision

TEST(JpegPil, DecodeMatchesPil) {
  const test::Fixture fixture = test::Fixture::load("jpeg_pil");
  for (const std::string name : {"rgb", "gray", "cmyk"}) {
    const std::vector<std::uint8_t> bytes = as_bytes(fixture.get(name + "/jpeg"));
    const Tensor& expected_tensor = fixture.get(name + "/decoded");
    const std::vector<std::uint8_t> expected = as_bytes(expected_tensor);
    DecodedImage image;
    ASSERT_EQ(decode_jpeg(bytes.data(), bytes.size(), image), "") << name;
    ASSERT_EQ(image.height, expected_tensor.dim(0)) << name;
    ASSERT_EQ(image.width, expected_tensor.dim(1)) << name;
    const Difference error = difference(image.pixels.data(), expected.data(), expected.size());
    // Same libjpeg-turbo (islow IDCT, fancy upsampling) on both sides, and PIL's CMYK formula.
    EXPECT_EQ(error.max_abs, 0) << name << " mean " << error.mean_abs;
  }
}

TEST(JpegPil, ResizeMatchesPilBilinear) {
  const test::Fixture fixture = test::Fixture::load("jpeg_pil");
  const Tensor& decoded = fixture.get("rgb/decoded");
  const std::vector<std::uint8_t> pixels = as_bytes(decoded);
  RgbView view{pixels.data(), static_cast<int>(decoded.dim(1)), static_cast<int>(decoded.dim(0)),
               decoded.dim(1) * 3};
  ResizeScratch scratch;
  for (const std::string name : {"down_less_2x", "down_more_2x", "down_9x", "up", "mixed", "box"}) {
    const std::vector<std::int32_t> size =
        fixture.get("resize/" + name + "/size").to_vector<std::int32_t>();
    const std::vector<double> box = fixture.get("resize/" + name + "/box").to_vector<double>();
    const std::vector<std::uint8_t> expected = as_bytes(fixture.get("resize/" + name + "/out"));
    std::vector<std::uint8_t> out(static_cast<std::size_t>(size[0] * size[1] * 3));
    resize_bilinear(view, ResizeBox{box[0], box[1], box[2], box[3]}, size[0], size[1], out.data(),
                    scratch);
    ASSERT_EQ(out.size(), expected.size()) << name;
    const Difference error = difference(out.data(), expected.data(), out.size());
    EXPECT_LE(error.max_abs, 1) << name;
    EXPECT_LT(error.mean_abs, 0.01) << name;  // measured 0: Pillow's fixed-point steps
  }
}

TEST(JpegPil, TransformsMatchTorchvision) {
  const test::Fixture fixture = test::Fixture::load("jpeg_pil");
  const std::vector<std::uint8_t> bytes = as_bytes(fixture.get("rgb/jpeg"));
  const float level = 1.0f / 255.0f / 0.224f;  // one pixel level after normalization (green)
  const auto compare = [&](const std::vector<float>& ours, const std::string& key) {
    const std::vector<float> expected = fixture.get(key).to_vector<float>();
    ASSERT_EQ(ours.size(), expected.size()) << key;
    float max_abs = 0.0f;
    for (std::size_t i = 0; i < ours.size(); ++i) {
      max_abs = std::max(max_abs, std::fabs(ours[i] - expected[i]));
    }
    EXPECT_LE(max_abs, 1.0f * level + 1e-4f) << key;
  };
  JpegTransform eval;
  eval.phase = JpegPhase::Eval;
  eval.resize_size = 40;
  eval.crop_size = 32;
  for (const DctScaling scaling : {DctScaling::Off, DctScaling::Largest}) {  // 40 < 2x32: no DCT
    std::vector<float> out(3 * 32 * 32);
    Rng rng(0);
    ASSERT_EQ(JpegRenderer(eval, {scaling}).render(bytes.data(), bytes.size(), rng, out.data()),
              "");
    compare(out, "eval/out");
  }
  JpegTransform train;
  train.crop_size = 24;
  const JpegRenderer renderer(train, {DctScaling::Off});
  std::vector<float> out(3 * 24 * 24);
  const CropWindow window{5, 7, 30, 41};
  ASSERT_EQ(renderer.render_resized_crop(bytes.data(), bytes.size(), window, false, out.data()),
            "");
  compare(out, "rrc/out");
  ASSERT_EQ(renderer.render_resized_crop(bytes.data(), bytes.size(), window, true, out.data()), "");
  compare(out, "rrc/out_flipped");
}

// ----------------------------------------------------------------------------- transforms

TEST(ImagenetTransform, ResizedCropGeometryOverManyDraws) {
  JpegTransform transform;
  Rng sizes(11);
  int fallbacks = 0;
  int draws = 0;
  int at_top = 0;
  int at_bottom = 0;
  for (int image = 0; image < 200; ++image) {
    const int width = 150 + static_cast<int>(sizes.below(400));
    const int height = 150 + static_cast<int>(sizes.below(400));
    for (int i = 0; i < 50; ++i, ++draws) {
      Rng rng(static_cast<std::uint64_t>(image), static_cast<std::uint64_t>(i));
      const ResizedCropDraw draw = draw_resized_crop(transform, width, height, rng);
      const CropWindow& w = draw.window;
      ASSERT_GE(w.top, 0);
      ASSERT_GE(w.left, 0);
      ASSERT_GT(w.width, 0);
      ASSERT_GT(w.height, 0);
      ASSERT_LE(w.top + w.height, height);
      ASSERT_LE(w.left + w.width, width);
      if (draw.fallback) {
        ++fallbacks;
        continue;
      }
      at_top += w.top == 0 ? 1 : 0;
      at_bottom += w.top + w.height == height ? 1 : 0;
      // w and h are rounded: allow half a pixel on each side.
      const double image_area = static_cast<double>(width) * height;
      const double slack = 0.5 * (w.width + w.height) + 0.25;
      const double area = static_cast<double>(w.width) * w.height;
      EXPECT_GE(area, transform.min_scale * image_area - slack);
      EXPECT_LE(area, transform.max_scale * image_area + slack);
      EXPECT_GE((w.width + 0.5) / (w.height - 0.5), transform.min_ratio);
      EXPECT_LE((w.width - 0.5) / (w.height + 0.5), transform.max_ratio);
    }
  }
  EXPECT_LT(fallbacks, draws / 20);  // rare on ordinary images
  EXPECT_GT(at_top, 0);              // offsets reach both ends
  EXPECT_GT(at_bottom, 0);
}

TEST(ImagenetTransform, ResizedCropFallbackIsTheClampedCentralCrop) {
  JpegTransform transform;
  Rng rng(3);
  ResizedCropDraw draw = draw_resized_crop(transform, 1000, 10, rng);  // far wider than 4:3
  EXPECT_TRUE(draw.fallback);
  EXPECT_EQ(draw.window.height, 10);
  EXPECT_EQ(draw.window.width, 13);  // round(10 * 4 / 3)
  EXPECT_EQ(draw.window.left, (1000 - 13) / 2);
  EXPECT_EQ(draw.window.top, 0);
  draw = draw_resized_crop(transform, 10, 1000, rng);  // far taller than 3:4
  EXPECT_TRUE(draw.fallback);
  EXPECT_EQ(draw.window.width, 10);
  EXPECT_EQ(draw.window.height, 13);  // round(10 / (3 / 4))
  EXPECT_EQ(draw.window.top, (1000 - 13) / 2);
}

TEST(ImagenetTransform, EvalGeometryAsTorchvision) {
  JpegTransform eval;
  eval.phase = JpegPhase::Eval;
  EvalGeometry landscape = eval_geometry(eval, 500, 375);
  EXPECT_EQ(landscape.resized_width, 341);  // int(256 * 500 / 375)
  EXPECT_EQ(landscape.resized_height, 256);
  EXPECT_EQ(landscape.crop.top, 16);
  EXPECT_EQ(landscape.crop.left, 58);  // round(58.5) = 58, half to even as Python
  EvalGeometry portrait = eval_geometry(eval, 375, 500);
  EXPECT_EQ(portrait.resized_width, 256);
  EXPECT_EQ(portrait.resized_height, 341);
  EXPECT_EQ(portrait.crop.top, 58);
  EXPECT_EQ(portrait.crop.left, 16);
  EvalGeometry odd = eval_geometry(eval, 300, 200);  // 384 x 256: (384 - 224) / 2 = 80
  EXPECT_EQ(odd.resized_width, 384);
  EXPECT_EQ(odd.crop.left, 80);
  const EvalGeometry square = eval_geometry(eval, 256, 256);
  EXPECT_EQ(square.resized_width, 256);
  EXPECT_EQ(square.crop.left, 16);
}

// Full decode + resize of the whole image + crop, by hand: the torchvision eval pipeline.
TEST(ImagenetTransform, EvalRenderIsResizeThenCenterCrop) {
  const test::JpegImage original = test::make_detailed_image(150, 113, JpegColor::Rgb, 8);
  const std::vector<std::uint8_t> bytes = test::encode_jpeg(original, 90);
  JpegTransform eval;
  eval.phase = JpegPhase::Eval;
  eval.resize_size = 64;
  eval.crop_size = 56;
  eval.normalization = Normalization{{0.0f, 0.0f, 0.0f}, {1.0f, 1.0f, 1.0f}};
  DecodedImage image;
  ASSERT_EQ(decode_jpeg(bytes.data(), bytes.size(), image), "");
  const EvalGeometry geometry = eval_geometry(eval, 150, 113);
  ASSERT_EQ(geometry.resized_width, 84);
  RgbView view{image.pixels.data(), 150, 113, 150 * 3};
  std::vector<std::uint8_t> resized(static_cast<std::size_t>(84 * 64 * 3));
  ResizeScratch scratch;
  resize_bilinear(view, whole_view(view), 84, 64, resized.data(), scratch);
  std::vector<float> out(3 * 56 * 56);
  Rng rng(0);
  ASSERT_EQ(JpegRenderer(eval).render(bytes.data(), bytes.size(), rng, out.data()), "");
  int max_abs = 0;
  for (int c = 0; c < 3; ++c) {
    for (int y = 0; y < 56; ++y) {
      for (int x = 0; x < 56; ++x) {
        const int ours = static_cast<int>(
            std::lround(out[static_cast<std::size_t>((c * 56 + y) * 56 + x)] * 255.0f));
        const int expected = resized[static_cast<std::size_t>(
            ((y + geometry.crop.top) * 84 + x + geometry.crop.left) * 3 + c)];
        max_abs = std::max(max_abs, std::abs(ours - expected));
      }
    }
  }
  EXPECT_LE(max_abs, 1);
}

TEST(ImagenetTransform, SameSeedSameSampleOtherSeedOtherSample) {
  const test::JpegImage original = test::make_detailed_image(200, 150, JpegColor::Rgb, 4);
  const std::vector<std::uint8_t> bytes = test::encode_jpeg(original, 90);
  JpegTransform train;
  train.crop_size = 64;
  const JpegRenderer renderer(train);
  std::vector<float> first(3 * 64 * 64), second(first.size()), other(first.size());
  Rng rng_a(42, 7), rng_b(42, 7), rng_c(43, 7);
  ASSERT_EQ(renderer.render(bytes.data(), bytes.size(), rng_a, first.data()), "");
  ASSERT_EQ(renderer.render(bytes.data(), bytes.size(), rng_b, second.data()), "");
  ASSERT_EQ(renderer.render(bytes.data(), bytes.size(), rng_c, other.data()), "");
  EXPECT_EQ(first, second);
  EXPECT_NE(first, other);
  EXPECT_EQ(rng_a.next_u64(), rng_b.next_u64());  // the same number of draws
}

TEST(ImagenetTransform, FlipHappensAboutHalfTheTime) {
  const test::JpegImage original = test::make_detailed_image(48, 48, JpegColor::Rgb, 4);
  const std::vector<std::uint8_t> bytes = test::encode_jpeg(original, 90);
  JpegTransform train;
  train.crop_size = 16;
  train.min_scale = 1.0;  // the whole image every time: only the flip varies
  train.min_ratio = 1.0;
  train.max_ratio = 1.0;
  const JpegRenderer renderer(train);
  std::vector<float> plain(3 * 16 * 16), out(plain.size());
  ASSERT_EQ(renderer.render_resized_crop(bytes.data(), bytes.size(), CropWindow{0, 0, 48, 48},
                                         false, plain.data()),
            "");
  int flipped = 0;
  for (int seed = 0; seed < 200; ++seed) {
    Rng rng(static_cast<std::uint64_t>(seed));
    ASSERT_EQ(renderer.render(bytes.data(), bytes.size(), rng, out.data()), "");
    if (out != plain) ++flipped;
  }
  EXPECT_GT(flipped, 70);
  EXPECT_LT(flipped, 130);
}

// Mean absolute difference in pixel levels between two normalized renders (identity std 1).
double level_difference(const std::vector<float>& a, const std::vector<float>& b) {
  double total = 0.0;
  for (std::size_t i = 0; i < a.size(); ++i) total += std::fabs(a[i] - b[i]) * 255.0;
  return total / static_cast<double>(a.size());
}

TEST(ImagenetTransform, DctScaledRenderIsCloseToFullSize) {
  const test::JpegImage original = test::make_test_image(1200, 900, JpegColor::Rgb, 12);
  const std::vector<std::uint8_t> bytes = test::encode_jpeg(original, 90);
  const Normalization identity{{0.0f, 0.0f, 0.0f}, {1.0f, 1.0f, 1.0f}};
  JpegTransform eval;
  eval.phase = JpegPhase::Eval;
  eval.normalization = identity;
  std::vector<float> scaled(3 * 224 * 224), full(scaled.size());
  Rng rng(0);
  ASSERT_EQ(JpegRenderer(eval).render(bytes.data(), bytes.size(), rng, scaled.data()), "");
  ASSERT_EQ(
      JpegRenderer(eval, {DctScaling::Off}).render(bytes.data(), bytes.size(), rng, full.data()),
      "");
  EXPECT_LT(level_difference(scaled, full), 3.0);
  EXPECT_NE(scaled, full);  // 900 / 256 > 2: this really went through the 1/2 decode

  JpegTransform train;
  train.normalization = identity;
  for (const CropWindow window :
       {CropWindow{50, 70, 800, 1000}, CropWindow{10, 300, 480, 460}, CropWindow{3, 5, 240, 900}}) {
    ASSERT_EQ(JpegRenderer(train).render_resized_crop(bytes.data(), bytes.size(), window, true,
                                                      scaled.data()),
              "");
    ASSERT_EQ(JpegRenderer(train, {DctScaling::Off})
                  .render_resized_crop(bytes.data(), bytes.size(), window, true, full.data()),
              "");
    EXPECT_LT(level_difference(scaled, full), 3.0) << window.width << "x" << window.height;
  }
}

TEST(ImagenetTransform, InvalidTransformsAreInputErrors) {
  JpegTransform transform;
  transform.crop_size = 0;
  EXPECT_THROW(JpegRenderer{transform}, InputError);
  transform = JpegTransform{};
  transform.min_scale = 0.5;
  transform.max_scale = 0.2;
  EXPECT_THROW(JpegRenderer{transform}, InputError);
  transform = JpegTransform{};
  transform.phase = JpegPhase::Eval;
  transform.resize_size = 200;
  EXPECT_THROW(JpegRenderer{transform}, InputError);
  transform = JpegTransform{};
  transform.normalization = Normalization{{0.5f}, {0.5f}};
  EXPECT_THROW(JpegRenderer{transform}, InputError);
}

}  // namespace
}  // namespace md::data
