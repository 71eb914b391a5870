// Readers and set-level helpers: CIFAR-100 binary files written here load exactly; IDX raw and
// gzip; the real Fashion-MNIST; every bad input is an InputError naming the file; the holdout
// split; normalization statistics.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <set>

#include "core/error.h"
#include "data/cifar100.h"
#include "data/idx.h"
#include "data/image_set.h"
#include "data_files.h"

namespace md::data {
namespace {

using testing::cifar_record;
using testing::gzip_bytes;
using testing::idx_bytes;
using testing::input_error_message;
using testing::TempDir;
using testing::write_bytes;

constexpr std::size_t kCifarImageBytes = 3 * 32 * 32;

std::vector<std::uint8_t> cifar_pixels(int record) {
  std::vector<std::uint8_t> pixels(kCifarImageBytes);
  for (std::size_t i = 0; i < pixels.size(); ++i) {
    pixels[i] = static_cast<std::uint8_t>((static_cast<std::size_t>(record) * 31 + i * 7) % 256);
  }
  return pixels;
}

std::vector<std::uint8_t> cifar_file(const std::vector<std::pair<int, int>>& coarse_fine_labels) {
  std::vector<std::uint8_t> bytes;
  for (std::size_t r = 0; r < coarse_fine_labels.size(); ++r) {
    const auto record = cifar_record(static_cast<std::uint8_t>(coarse_fine_labels[r].first),
                                     static_cast<std::uint8_t>(coarse_fine_labels[r].second),
                                     cifar_pixels(static_cast<int>(r)));
    bytes.insert(bytes.end(), record.begin(), record.end());
  }
  return bytes;
}

bool contains(const std::string& text, const std::string& part) {
  return text.find(part) != std::string::npos;
}

TEST(Cifar100, LoadsRecordsExactly) {
  TempDir dir;
  write_bytes(dir.file("train.bin"), cifar_file({{3, 17}, {0, 99}, {19, 0}}));
  const ImageSet set = load_cifar100(dir.path().string(), Split::Train);
  EXPECT_EQ(set.count, 3);
  EXPECT_EQ(set.channels, 3);
  EXPECT_EQ(set.height, 32);
  EXPECT_EQ(set.width, 32);
  EXPECT_EQ(set.num_classes, 100);
  EXPECT_EQ(set.labels, (std::vector<std::int32_t>{17, 99, 0}));
  ASSERT_EQ(set.pixels.size(), 3 * kCifarImageBytes);
  for (int r = 0; r < 3; ++r) {
    const std::vector<std::uint8_t> expected = cifar_pixels(r);
    EXPECT_TRUE(std::equal(expected.begin(), expected.end(), set.image(r))) << "record " << r;
  }
  // Channel-major: pixel (c=1, y=2, x=5) of record 1 is byte 1024 + 2 * 32 + 5 of its image.
  EXPECT_EQ(set.image(1)[1024 + 69], cifar_pixels(1)[1024 + 69]);
}

TEST(Cifar100, FindsTheOfficialArchiveLayout) {
  TempDir dir;
  std::filesystem::create_directories(dir.path() / "cifar-100-binary");
  write_bytes(dir.file("cifar-100-binary/test.bin"), cifar_file({{1, 42}, {2, 7}}));
  const ImageSet set = load_cifar100(dir.path().string(), Split::Test);
  EXPECT_EQ(set.count, 2);
  EXPECT_EQ(set.labels, (std::vector<std::int32_t>{42, 7}));
  EXPECT_TRUE(contains(set.source, "test.bin"));
}

TEST(Cifar100, SizeNotWholeRecordsNamesFileAndSize) {
  TempDir dir;
  std::vector<std::uint8_t> bytes = cifar_file({{0, 1}, {0, 2}});
  bytes.resize(bytes.size() + 5);
  write_bytes(dir.file("train.bin"), bytes);
  const std::string message =
      input_error_message([&] { load_cifar100(dir.path().string(), Split::Train); });
  EXPECT_TRUE(contains(message, dir.file("train.bin"))) << message;
  EXPECT_TRUE(contains(message, "6153")) << message;
}

TEST(Cifar100, LabelOutOfRangeNamesRecord) {
  TempDir dir;
  write_bytes(dir.file("train.bin"), cifar_file({{0, 5}, {0, 100}, {0, 3}}));
  const std::string message =
      input_error_message([&] { load_cifar100(dir.path().string(), Split::Train); });
  EXPECT_TRUE(contains(message, dir.file("train.bin"))) << message;
  EXPECT_TRUE(contains(message, "record 1")) << message;
}

TEST(Cifar100, MissingFileNamesIt) {
  TempDir dir;
  write_bytes(dir.file("train.bin"), cifar_file({{0, 1}}));
  const std::string message =
      input_error_message([&] { load_cifar100(dir.path().string(), Split::Test); });
  EXPECT_TRUE(contains(message, dir.file("test.bin"))) << message;
}

// 5 images of 4 x 3, pixel value 10 * n + position, labels 0..4 in a known order.
std::vector<std::uint8_t> small_image_values() {
  std::vector<std::uint8_t> values;
  for (int n = 0; n < 5; ++n) {
    for (int p = 0; p < 12; ++p) values.push_back(static_cast<std::uint8_t>(10 * n + p));
  }
  return values;
}
const std::vector<std::uint8_t> kSmallLabels = {3, 0, 4, 1, 1};

TEST(Idx, RawAndGzipLoadTheSame) {
  TempDir dir;
  const auto images = idx_bytes({5, 4, 3}, small_image_values());
  const auto labels = idx_bytes({5}, kSmallLabels);
  write_bytes(dir.file("images"), images);
  write_bytes(dir.file("labels"), labels);
  write_bytes(dir.file("images.gz"), gzip_bytes(images));
  write_bytes(dir.file("labels.gz"), gzip_bytes(labels));
  const ImageSet raw = load_idx(dir.file("images"), dir.file("labels"));
  // gzip is detected by content, not by name: a gzip file without .gz loads too.
  write_bytes(dir.file("images_no_suffix"), gzip_bytes(images));
  const ImageSet gzipped = load_idx(dir.file("images.gz"), dir.file("labels.gz"));
  const ImageSet unnamed = load_idx(dir.file("images_no_suffix"), dir.file("labels"));
  for (const ImageSet* set : {&raw, &gzipped, &unnamed}) {
    EXPECT_EQ(set->count, 5);
    EXPECT_EQ(set->channels, 1);
    EXPECT_EQ(set->height, 4);
    EXPECT_EQ(set->width, 3);
    EXPECT_EQ(set->num_classes, 5);
    EXPECT_EQ(set->pixels, small_image_values());
    EXPECT_EQ(set->labels, (std::vector<std::int32_t>{3, 0, 4, 1, 1}));
  }
}

TEST(Idx, RankFourIsConvertedToChannelMajor) {
  TempDir dir;
  // 2 images of 2 x 2 x 3 (H x W x C): value = 100 * n + 10 * c + position.
  std::vector<std::uint8_t> values;
  for (int n = 0; n < 2; ++n) {
    for (int p = 0; p < 4; ++p) {
      for (int c = 0; c < 3; ++c) values.push_back(static_cast<std::uint8_t>(100 * n + 10 * c + p));
    }
  }
  std::vector<std::uint8_t> images = idx_bytes({2, 2, 2, 3}, values);
  images[3] = 4;
  write_bytes(dir.file("images"), images);
  write_bytes(dir.file("labels"), idx_bytes({2}, {1, 0}));
  const ImageSet set = load_idx(dir.file("images"), dir.file("labels"));
  EXPECT_EQ(set.channels, 3);
  EXPECT_EQ(set.height, 2);
  EXPECT_EQ(set.width, 2);
  for (int n = 0; n < 2; ++n) {
    for (int c = 0; c < 3; ++c) {
      for (int p = 0; p < 4; ++p) {
        EXPECT_EQ(set.image(n)[c * 4 + p], 100 * n + 10 * c + p) << n << " " << c << " " << p;
      }
    }
  }
}

TEST(Idx, BadMagicNamesFile) {
  TempDir dir;
  std::vector<std::uint8_t> images = idx_bytes({5, 4, 3}, small_image_values());
  images[2] = 0x0d;  // float type
  write_bytes(dir.file("images"), images);
  write_bytes(dir.file("labels"), idx_bytes({5}, kSmallLabels));
  std::string message =
      input_error_message([&] { load_idx(dir.file("images"), dir.file("labels")); });
  EXPECT_TRUE(contains(message, dir.file("images"))) << message;
  EXPECT_TRUE(contains(message, "magic")) << message;
  // A labels file given as images (rank 1) is a bad magic for images too.
  message = input_error_message([&] { load_idx(dir.file("labels"), dir.file("labels")); });
  EXPECT_TRUE(contains(message, "magic")) << message;
}

TEST(Idx, LabelCountMismatchNamesBothFilesAndCounts) {
  TempDir dir;
  write_bytes(dir.file("images"), idx_bytes({5, 4, 3}, small_image_values()));
  write_bytes(dir.file("labels"), idx_bytes({4}, {0, 1, 2, 3}));
  const std::string message =
      input_error_message([&] { load_idx(dir.file("images"), dir.file("labels")); });
  EXPECT_TRUE(contains(message, dir.file("images"))) << message;
  EXPECT_TRUE(contains(message, dir.file("labels"))) << message;
  EXPECT_TRUE(contains(message, "4")) << message;
  EXPECT_TRUE(contains(message, "5")) << message;
}

TEST(Idx, TruncatedFileNamesIt) {
  TempDir dir;
  std::vector<std::uint8_t> images = idx_bytes({5, 4, 3}, small_image_values());
  images.resize(images.size() - 7);
  write_bytes(dir.file("images"), images);
  write_bytes(dir.file("labels"), idx_bytes({5}, kSmallLabels));
  std::string message =
      input_error_message([&] { load_idx(dir.file("images"), dir.file("labels")); });
  EXPECT_TRUE(contains(message, dir.file("images"))) << message;
  EXPECT_TRUE(contains(message, "truncated")) << message;

  // Truncated inside the header.
  write_bytes(dir.file("short"), {0, 0, 8, 3, 0, 0});
  message = input_error_message([&] { load_idx(dir.file("short"), dir.file("labels")); });
  EXPECT_TRUE(contains(message, dir.file("short"))) << message;

  // A truncated gzip stream.
  std::vector<std::uint8_t> gz = gzip_bytes(idx_bytes({5, 4, 3}, small_image_values()));
  gz.resize(gz.size() / 2);
  write_bytes(dir.file("images.gz"), gz);
  message = input_error_message([&] { load_idx(dir.file("images.gz"), dir.file("labels")); });
  EXPECT_TRUE(contains(message, dir.file("images.gz"))) << message;
  EXPECT_TRUE(contains(message, "truncated")) << message;

  // Extra bytes after the data disagree with the header too.
  std::vector<std::uint8_t> long_labels = idx_bytes({5}, kSmallLabels);
  long_labels.push_back(0);
  write_bytes(dir.file("long_labels"), long_labels);
  write_bytes(dir.file("images"), idx_bytes({5, 4, 3}, small_image_values()));
  message = input_error_message([&] { load_idx(dir.file("images"), dir.file("long_labels")); });
  EXPECT_TRUE(contains(message, dir.file("long_labels"))) << message;
}

TEST(Idx, ZeroDimensionIsAnError) {
  TempDir dir;
  write_bytes(dir.file("images"), idx_bytes({0, 4, 3}, {}));
  write_bytes(dir.file("labels"), idx_bytes({0}, {}));
  const std::string message =
      input_error_message([&] { load_idx(dir.file("images"), dir.file("labels")); });
  EXPECT_TRUE(contains(message, dir.file("images"))) << message;
}

TEST(Idx, MissingFileNamesIt) {
  TempDir dir;
  write_bytes(dir.file("labels"), idx_bytes({5}, kSmallLabels));
  const std::string message =
      input_error_message([&] { load_idx(dir.file("nonexistent-images"), dir.file("labels")); });
  EXPECT_TRUE(contains(message, dir.file("nonexistent-images"))) << message;
}

TEST(Idx, CorruptGzipNamesFile) {
  TempDir dir;
  write_bytes(dir.file("labels"), idx_bytes({5}, kSmallLabels));
  // The gzip magic followed by garbage.
  write_bytes(dir.file("garbage.gz"), {0x1f, 0x8b, 0x08, 0x00, 0xde, 0xad, 0xbe, 0xef, 0x00, 0x03,
                                       0xff, 0xff, 0xff, 0xff, 0x12, 0x34, 0x56, 0x78});
  std::string message =
      input_error_message([&] { load_idx(dir.file("garbage.gz"), dir.file("labels")); });
  EXPECT_TRUE(contains(message, dir.file("garbage.gz"))) << message;

  // A valid stream with one payload byte changed: the deflate data or the CRC check fails.
  std::vector<std::uint8_t> gz = gzip_bytes(idx_bytes({5, 4, 3}, small_image_values()));
  gz[gz.size() - 8 - 3] ^= 0x55;
  write_bytes(dir.file("flipped.gz"), gz);
  message = input_error_message([&] { load_idx(dir.file("flipped.gz"), dir.file("labels")); });
  EXPECT_TRUE(contains(message, dir.file("flipped.gz"))) << message;
  EXPECT_TRUE(contains(message, "gzip")) << message;
}

TEST(FashionMnist, RealFilesLoad) {
  const std::filesystem::path root = testing::kFashionMnistDir;
  if (!std::filesystem::exists(root / "train-images-idx3-ubyte.gz")) {
    GTEST_SKIP() << "Fashion-MNIST not installed under " << root;
  }
  const ImageSet train = load_idx((root / "train-images-idx3-ubyte.gz").string(),
                                  (root / "train-labels-idx1-ubyte.gz").string());
  const ImageSet test = load_idx((root / "t10k-images-idx3-ubyte.gz").string(),
                                 (root / "t10k-labels-idx1-ubyte.gz").string());
  EXPECT_EQ(train.count, 60000);
  EXPECT_EQ(test.count, 10000);
  for (const ImageSet* set : {&train, &test}) {
    EXPECT_EQ(set->channels, 1);
    EXPECT_EQ(set->height, 28);
    EXPECT_EQ(set->width, 28);
    EXPECT_EQ(set->num_classes, 10);
    std::vector<int> per_class(10, 0);
    for (std::int32_t label : set->labels) per_class[static_cast<std::size_t>(label)]++;
    for (int count : per_class) EXPECT_EQ(count, set->count / 10);
  }
  // Known values (checked with numpy): the first images of each split are ankle boots.
  EXPECT_EQ(train.labels[0], 9);
  EXPECT_EQ(train.labels[3], 3);
  EXPECT_EQ(test.labels[1], 2);
  long long first_sum = 0;
  for (std::int64_t p = 0; p < 784; ++p) first_sum += train.image(0)[p];
  EXPECT_EQ(first_sum, 76247);
  const std::vector<int> row14 = {0, 0, 1, 4, 6, 7, 2, 0};
  for (int x = 0; x < 8; ++x)
    EXPECT_EQ(train.image(0)[14 * 28 + x], row14[static_cast<std::size_t>(x)]);

  const Normalization normalization = compute_normalization(train);
  ASSERT_EQ(normalization.mean.size(), 1u);
  EXPECT_NEAR(normalization.mean[0], 0.2860406, 1e-6);
  EXPECT_NEAR(normalization.std[0], 0.3530242, 1e-6);
}

TEST(Normalization, KnownStatistics) {
  ImageSet set = testing::synthetic_set(4, 2, 2, 2, 2, 0);
  // Channel 0: half 0, half 255 -> mean 0.5, std 0.5. Channel 1: all 51 -> mean 0.2, std 0 -> 1.
  for (std::int64_t n = 0; n < 4; ++n) {
    for (int p = 0; p < 4; ++p) {
      set.pixels[static_cast<std::size_t>(n * 8 + p)] = p % 2 == 0 ? 0 : 255;
      set.pixels[static_cast<std::size_t>(n * 8 + 4 + p)] = 51;
    }
  }
  const Normalization normalization = compute_normalization(set);
  ASSERT_EQ(normalization.mean.size(), 2u);
  EXPECT_FLOAT_EQ(normalization.mean[0], 0.5f);
  EXPECT_FLOAT_EQ(normalization.std[0], 0.5f);
  EXPECT_FLOAT_EQ(normalization.mean[1], 0.2f);
  EXPECT_FLOAT_EQ(normalization.std[1], 1.0f);
}

TEST(SplitHoldout, DeterministicDisjointAndComplete) {
  ImageSet set = testing::synthetic_set(1000, 1, 2, 2, 1000, 5);  // label i identifies sample i
  const auto [train, holdout] = split_holdout(set, 0.1, 42);
  EXPECT_EQ(holdout.count, 100);
  EXPECT_EQ(train.count, 900);
  EXPECT_EQ(holdout.num_classes, set.num_classes);
  std::set<std::int32_t> seen;
  for (const ImageSet* part : {&train, &holdout}) {
    EXPECT_TRUE(std::is_sorted(part->labels.begin(), part->labels.end()));
    for (std::int64_t i = 0; i < part->count; ++i) {
      const std::int32_t source = part->labels[static_cast<std::size_t>(i)];
      EXPECT_TRUE(seen.insert(source).second) << "sample " << source << " in both parts";
      EXPECT_TRUE(std::equal(part->image(i), part->image(i) + 4, set.image(source)));
    }
  }
  EXPECT_EQ(seen.size(), 1000u);
  // Holdout samples are spread over the set, not the first or last 100.
  EXPECT_LT(holdout.labels.front(), 100);
  EXPECT_GT(holdout.labels.back(), 900);

  const auto again = split_holdout(set, 0.1, 42);
  EXPECT_EQ(again.second.labels, holdout.labels);
  const auto other_seed = split_holdout(set, 0.1, 43);
  EXPECT_NE(other_seed.second.labels, holdout.labels);

  EXPECT_THROW(split_holdout(set, 0.0, 1), InputError);
  EXPECT_THROW(split_holdout(set, 1.0, 1), InputError);
  EXPECT_THROW(split_holdout(testing::synthetic_set(3, 1, 1, 1, 3, 0), 0.01, 1), InputError);
}

}  // namespace
}  // namespace md::data
