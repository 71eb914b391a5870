// Device-resident training batches: the augment_images op of the CPU backend against
// data::render_sample (the loader's renderer) on random and edge draws, 1 and 3 channels; and
// DeviceBatches against data::BatchLoader, batch for batch and bit for bit, over two epochs,
// resumed mid-epoch, and for both parts of a 2-rank trial (including a rank's empty part).
// On the CPU the device is the host, so these run everywhere; tests/gpu compares the CUDA op
// with the CPU op.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <string>
#include <vector>

#include "backend/backend.h"
#include "core/error.h"
#include "core/rng.h"
#include "data/augment.h"
#include "data/image_set_source.h"
#include "data/loader.h"
#include "train/device_batches.h"

namespace md::train {
namespace {

data::ImageSet random_set(std::int64_t count, int channels, int height, int width,
                          std::uint64_t seed) {
  data::ImageSet set;
  set.count = count;
  set.channels = channels;
  set.height = height;
  set.width = width;
  set.num_classes = 10;
  set.source = "random set";
  Rng rng(seed);
  set.pixels.resize(static_cast<std::size_t>(count * set.image_numel()));
  for (std::uint8_t& pixel : set.pixels) pixel = static_cast<std::uint8_t>(rng.below(256));
  for (std::int64_t i = 0; i < count; ++i) {
    set.labels.push_back(static_cast<std::int32_t>(rng.below(10)));
  }
  return set;
}

data::Normalization random_normalization(int channels, std::uint64_t seed) {
  Rng rng(seed);
  data::Normalization normalization;
  for (int c = 0; c < channels; ++c) {
    normalization.mean.push_back(static_cast<float>(rng.uniform()));
    normalization.std.push_back(static_cast<float>(0.1 + rng.uniform()));
  }
  return normalization;
}

bool bit_identical(const Tensor& a, const Tensor& b) {
  return a.shape() == b.shape() && a.dtype() == b.dtype() &&
         (a.numel() == 0 || std::memcmp(a.raw_data(), b.raw_data(), a.nbytes()) == 0);
}

Tensor set_pixels(const data::ImageSet& set) {
  return Tensor::from_vector<std::uint8_t>({set.count, set.channels, set.height, set.width},
                                           set.pixels);
}

// ---- the op against render_sample

struct OpCase {
  int channels;
  data::AugmentSpec spec;
};

TEST(AugmentImagesOp, CpuEqualsRenderSampleOnRandomAndEdgeDraws) {
  const OpCase cases[] = {
      {3, {.crop_padding = 4, .flip = data::Flip::Horizontal, .cutout = 4}},
      {1, {.crop_padding = 2, .flip = data::Flip::Horizontal, .cutout = 3}},
      {3, {.crop_padding = 0, .flip = data::Flip::None, .cutout = 0}},
      {1, {.crop_padding = 9, .flip = data::Flip::Horizontal, .cutout = 0}},  // beyond the image
      {3, {.crop_padding = 1, .flip = data::Flip::None, .cutout = 20}},       // covers it all
  };
  const int height = 9;
  const int width = 7;
  std::uint64_t seed = 100;
  for (const OpCase& test_case : cases) {
    const data::AugmentSpec& spec = test_case.spec;
    SCOPED_TRACE(testing::Message() << "channels " << test_case.channels << " padding "
                                    << spec.crop_padding << " cutout " << spec.cutout);
    const data::ImageSet set = random_set(6, test_case.channels, height, width, ++seed);
    const std::vector<float> table =
        data::normalization_table(random_normalization(test_case.channels, ++seed), set.channels);
    // Random draws, then the extremes: both crop ends, flips, cutout centers on the borders.
    std::vector<std::int64_t> sources;
    std::vector<data::AugmentDraw> draws;
    Rng rng(++seed);
    for (int i = 0; i < 24; ++i) {
      sources.push_back(static_cast<std::int64_t>(rng.below(6)));
      draws.push_back(data::draw_augment(spec, height, width, rng));
    }
    const int far = 2 * spec.crop_padding;
    for (int top : {0, far}) {
      for (int left : {0, far}) {
        for (bool flipped : {false, true}) {
          for (int cy : {0, height - 1}) {
            sources.push_back(static_cast<std::int64_t>(draws.size() % 6));
            draws.push_back({.crop_top = top,
                             .crop_left = left,
                             .flipped = flipped,
                             .cutout_center_y = cy,
                             .cutout_center_x = width - 1 - cy % width});
          }
        }
      }
    }
    const auto batch = static_cast<std::int64_t>(draws.size());
    std::vector<std::int32_t> rows;
    for (std::size_t i = 0; i < draws.size(); ++i) {
      rows.insert(rows.end(),
                  {static_cast<std::int32_t>(sources[i]), draws[i].crop_top, draws[i].crop_left,
                   draws[i].flipped ? 1 : 0, draws[i].cutout_center_y, draws[i].cutout_center_x});
    }
    Tensor out = Tensor::full({batch, set.channels, height, width}, std::nan(""));
    backend::get(Device::cpu())
        .augment_images(set_pixels(set),
                        Tensor::from_vector<std::int32_t>({batch, AugmentDrawColumn::count}, rows),
                        Tensor::from_vector<float>({set.channels, 256}, table), out,
                        AugmentParams{.crop_padding = spec.crop_padding, .cutout = spec.cutout});
    const std::int64_t numel = set.image_numel();
    std::vector<float> expected(static_cast<std::size_t>(numel));
    for (std::int64_t i = 0; i < batch; ++i) {
      const auto at = static_cast<std::size_t>(i);
      data::render_sample(set.image(sources[at]), set, spec, draws[at], table, expected.data());
      EXPECT_EQ(std::memcmp(out.data<float>() + i * numel, expected.data(),
                            expected.size() * sizeof(float)),
                0)
          << "sample " << i << " (source " << sources[at] << ", crop " << draws[at].crop_top << ","
          << draws[at].crop_left << ", flipped " << draws[at].flipped << ")";
    }
  }
}

TEST(AugmentImagesOp, RejectsASourceOutsideTheSetAndWrongShapes) {
  const data::ImageSet set = random_set(3, 1, 4, 4, 7);
  const Tensor pixels = set_pixels(set);
  const Tensor table = Tensor::zeros({1, 256});
  Tensor out = Tensor::empty({1, 1, 4, 4});
  Backend& cpu = backend::get(Device::cpu());
  const Tensor outside = Tensor::from_vector<std::int32_t>({1, 6}, {3, 0, 0, 0, 0, 0});
  EXPECT_THROW(cpu.augment_images(pixels, outside, table, out, AugmentParams{}), Error);
  const Tensor inside = Tensor::from_vector<std::int32_t>({1, 6}, {2, 0, 0, 0, 0, 0});
  Tensor wrong_out = Tensor::empty({1, 1, 4, 5});
  EXPECT_THROW(cpu.augment_images(pixels, inside, table, wrong_out, AugmentParams{}), Error);
  EXPECT_THROW(cpu.augment_images(pixels, inside, Tensor::zeros({2, 256}), out, AugmentParams{}),
               Error);
  EXPECT_NO_THROW(cpu.augment_images(pixels, inside, table, out, AugmentParams{}));
}

// ---- DeviceBatches against BatchLoader

std::vector<data::Batch> loader_epoch(data::BatchLoader& loader, std::int64_t epoch,
                                      std::int64_t first_batch) {
  loader.start_epoch(epoch, first_batch);
  std::vector<data::Batch> batches;
  data::Batch batch;
  while (loader.next(batch)) batches.push_back(batch);
  return batches;
}

std::vector<data::Batch> device_epoch(DeviceBatches& device_batches, std::int64_t epoch,
                                      std::int64_t first_batch) {
  device_batches.start_epoch(epoch, first_batch);
  EXPECT_EQ(device_batches.position(), first_batch);
  std::vector<data::Batch> batches;
  data::Batch batch;
  while (device_batches.next(batch)) batches.push_back(batch);
  EXPECT_EQ(device_batches.position(), device_batches.batches_per_epoch());
  return batches;
}

void expect_same_batches(const std::vector<data::Batch>& expected,
                         const std::vector<data::Batch>& actual) {
  ASSERT_EQ(expected.size(), actual.size());
  for (std::size_t i = 0; i < expected.size(); ++i) {
    EXPECT_EQ(expected[i].indices, actual[i].indices) << "batch " << i;
    EXPECT_TRUE(bit_identical(expected[i].images, actual[i].images)) << "batch " << i;
    EXPECT_TRUE(bit_identical(expected[i].labels, actual[i].labels)) << "batch " << i;
  }
}

struct LoaderCase {
  std::int64_t count;
  int channels;
  data::LoaderSpec spec;
};

TEST(DeviceBatches, EqualTheLoadersBatchesBitForBit) {
  const data::AugmentSpec augment{.crop_padding = 2, .flip = data::Flip::Horizontal, .cutout = 3};
  std::vector<LoaderCase> cases;
  for (data::Remainder remainder : {data::Remainder::Drop, data::Remainder::Keep}) {
    cases.push_back({37, 3, {.batch_size = 5, .seed = 11, .remainder = remainder}});
    // Two ranks; with 31 samples the last global batch has one, and rank 0's part is empty.
    for (std::int64_t count : {37, 31}) {
      for (int rank : {0, 1}) {
        cases.push_back(
            {count,
             1,
             {.batch_size = 5, .seed = 12, .remainder = remainder, .rank = rank, .world_size = 2}});
      }
    }
  }
  std::uint64_t seed = 500;
  for (const LoaderCase& test_case : cases) {
    const data::LoaderSpec& spec = test_case.spec;
    SCOPED_TRACE(testing::Message()
                 << "count " << test_case.count << " rank " << spec.rank << "/" << spec.world_size
                 << " keep " << (spec.remainder == data::Remainder::Keep));
    const data::ImageSet set = random_set(test_case.count, test_case.channels, 8, 6, ++seed);
    const data::ImageSetSource source(set, augment, random_normalization(set.channels, ++seed));
    data::BatchLoader loader(source, spec);
    DeviceBatches device_batches(source, spec, Device::cpu());
    ASSERT_EQ(device_batches.batches_per_epoch(), loader.batches_per_epoch());
    for (std::int64_t epoch : {0, 1}) {
      expect_same_batches(loader_epoch(loader, epoch, 0), device_epoch(device_batches, epoch, 0));
    }
    // Resumed mid-epoch, as from a checkpoint's batch index.
    const std::int64_t middle = loader.batches_per_epoch() / 2;
    expect_same_batches(loader_epoch(loader, 1, middle), device_epoch(device_batches, 1, middle));
  }
}

TEST(DeviceBatches, ImagesAndLabelsLiveOnTheDeviceAndBadLabelsAreNamed) {
  data::ImageSet set = random_set(10, 1, 4, 4, 3);
  set.labels[4] = 10;  // num_classes is 10
  const data::ImageSetSource source(set, data::AugmentSpec{}, data::Normalization{});
  DeviceBatches device_batches(source, {.batch_size = 10, .shuffle = data::Shuffle::Off},
                               Device::cpu());
  device_batches.start_epoch(0);
  data::Batch batch;
  try {
    device_batches.next(batch);
    ADD_FAILURE() << "no InputError for label 10";
  } catch (const InputError& error) {
    EXPECT_NE(std::string(error.what()).find("sample 4 of random set has label 10"),
              std::string::npos)
        << error.what();
  }
  EXPECT_THROW(device_batches.start_epoch(0, 2), InputError);  // one batch per epoch
  EXPECT_THROW(DeviceBatches(source, {.batch_size = 0}, Device::cpu()), InputError);
}

}  // namespace
}  // namespace md::train
