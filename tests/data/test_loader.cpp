// Epoch orders, the prefetching loader (coverage, remainder, rank parts, independence from
// threads / prefetch depth / resume position) and augmentation semantics.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <numeric>
#include <set>

#include "core/error.h"
#include "data/augment.h"
#include "data/image_set_source.h"
#include "data/loader.h"
#include "data_files.h"

namespace md::data {
namespace {

std::vector<Batch> whole_epoch(BatchLoader& loader, std::int64_t epoch,
                               std::int64_t first_batch = 0) {
  loader.start_epoch(epoch, first_batch);
  std::vector<Batch> batches;
  Batch batch;
  while (loader.next(batch)) batches.push_back(batch);
  return batches;
}

bool bit_identical(const Tensor& a, const Tensor& b) {
  return a.shape() == b.shape() && a.dtype() == b.dtype() &&
         (a.numel() == 0 || std::memcmp(a.raw_data(), b.raw_data(), a.nbytes()) == 0);
}

void expect_same_batches(const std::vector<Batch>& a, const std::vector<Batch>& b) {
  ASSERT_EQ(a.size(), b.size());
  for (std::size_t i = 0; i < a.size(); ++i) {
    EXPECT_EQ(a[i].indices, b[i].indices) << "batch " << i;
    EXPECT_TRUE(bit_identical(a[i].images, b[i].images)) << "batch " << i;
    EXPECT_TRUE(bit_identical(a[i].labels, b[i].labels)) << "batch " << i;
  }
}

LoaderSpec augmenting_spec() {
  LoaderSpec spec;
  spec.batch_size = 16;
  spec.seed = 11;
  return spec;
}

// The source of the augmenting tests: crop, flip, Cutout and the set's own normalization.
ImageSetSource augmenting_source(const ImageSet& set) {
  return ImageSetSource(set, AugmentSpec{.crop_padding = 2, .flip = Flip::Horizontal, .cutout = 4},
                        compute_normalization(set));
}

TEST(EpochOrder, PermutationPerEpochAndSeed) {
  const std::vector<std::int64_t> order = epoch_order(1000, 7, 0, Shuffle::On);
  std::vector<std::int64_t> sorted = order;
  std::sort(sorted.begin(), sorted.end());
  std::vector<std::int64_t> identity(1000);
  std::iota(identity.begin(), identity.end(), 0);
  EXPECT_EQ(sorted, identity);
  EXPECT_NE(order, identity);
  EXPECT_EQ(epoch_order(1000, 7, 0, Shuffle::On), order);
  EXPECT_NE(epoch_order(1000, 7, 1, Shuffle::On), order);
  EXPECT_NE(epoch_order(1000, 8, 0, Shuffle::On), order);
  EXPECT_EQ(epoch_order(1000, 7, 3, Shuffle::Off), identity);
  EXPECT_TRUE(epoch_order(0, 7, 0, Shuffle::On).empty());
}

TEST(BatchLoader, EveryIndexOnceWithKeep) {
  const ImageSet set = testing::synthetic_set(103, 1, 3, 3, 7, 1);
  LoaderSpec spec;
  spec.batch_size = 10;
  const ImageSetSource loader_source(set, AugmentSpec{}, Normalization{});
  BatchLoader loader(loader_source, spec);
  EXPECT_EQ(loader.batches_per_epoch(), 11);
  const std::vector<Batch> batches = whole_epoch(loader, 0);
  ASSERT_EQ(batches.size(), 11u);
  EXPECT_EQ(loader.position(), 11);
  std::vector<std::int64_t> seen;
  for (std::size_t b = 0; b < batches.size(); ++b) {
    const Batch& batch = batches[b];
    const std::int64_t expected_size = b + 1 < batches.size() ? 10 : 3;
    EXPECT_EQ(batch.images.shape(), (Shape{expected_size, 1, 3, 3}));
    EXPECT_EQ(batch.labels.shape(), (Shape{expected_size}));
    EXPECT_EQ(batch.labels.dtype(), DType::Int32);
    const std::vector<std::int32_t> labels = batch.labels.to_vector<std::int32_t>();
    const std::vector<float> images = batch.images.to_vector<float>();
    for (std::size_t i = 0; i < batch.indices.size(); ++i) {
      const std::int64_t source = batch.indices[i];
      EXPECT_EQ(labels[i], set.labels[static_cast<std::size_t>(source)]);
      // No augmentation, identity normalization: images are pixel / 255.
      for (int p = 0; p < 9; ++p) {
        EXPECT_EQ(images[i * 9 + static_cast<std::size_t>(p)],
                  static_cast<float>(set.image(source)[p]) / 255.0f);
      }
    }
    seen.insert(seen.end(), batch.indices.begin(), batch.indices.end());
  }
  std::vector<std::int64_t> sorted = seen;
  std::sort(sorted.begin(), sorted.end());
  std::vector<std::int64_t> identity(103);
  std::iota(identity.begin(), identity.end(), 0);
  EXPECT_EQ(sorted, identity);
  EXPECT_EQ(seen, epoch_order(103, spec.seed, 0, Shuffle::On));
  Batch extra;
  EXPECT_FALSE(loader.next(extra));
  // The next epoch is another order of the same samples.
  const std::vector<Batch> next_epoch = whole_epoch(loader, 1);
  EXPECT_NE(next_epoch[0].indices, batches[0].indices);
}

TEST(BatchLoader, DropRemainder) {
  const ImageSet set = testing::synthetic_set(103, 1, 2, 2, 5, 2);
  LoaderSpec spec;
  spec.batch_size = 10;
  spec.remainder = Remainder::Drop;
  const ImageSetSource loader_source(set, AugmentSpec{}, Normalization{});
  BatchLoader loader(loader_source, spec);
  EXPECT_EQ(loader.batches_per_epoch(), 10);
  const std::vector<Batch> batches = whole_epoch(loader, 0);
  ASSERT_EQ(batches.size(), 10u);
  std::set<std::int64_t> seen;
  for (const Batch& batch : batches) {
    EXPECT_EQ(batch.images.dim(0), 10);
    seen.insert(batch.indices.begin(), batch.indices.end());
  }
  EXPECT_EQ(seen.size(), 100u);
  const std::vector<std::int64_t> order = epoch_order(103, spec.seed, 0, Shuffle::On);
  EXPECT_EQ(seen, std::set<std::int64_t>(order.begin(), order.begin() + 100));
}

TEST(BatchLoader, RankPartsAreDisjointAndCoverTheEpoch) {
  const ImageSet set = testing::synthetic_set(103, 1, 2, 2, 5, 3);
  for (Remainder remainder : {Remainder::Keep, Remainder::Drop}) {
    const int world_size = 3;
    std::vector<std::vector<Batch>> per_rank;
    for (int rank = 0; rank < world_size; ++rank) {
      LoaderSpec spec;
      spec.batch_size = 8;
      spec.rank = rank;
      spec.world_size = world_size;
      spec.remainder = remainder;
      spec.seed = 5;
      const ImageSetSource loader_source(set, AugmentSpec{}, Normalization{});
      BatchLoader loader(loader_source, spec);
      EXPECT_EQ(loader.batches_per_epoch(), remainder == Remainder::Keep ? 5 : 4);
      per_rank.push_back(whole_epoch(loader, 2));
    }
    std::multiset<std::int64_t> seen;
    for (std::size_t b = 0; b < per_rank[0].size(); ++b) {
      for (int rank = 0; rank < world_size; ++rank) {
        const Batch& batch = per_rank[static_cast<std::size_t>(rank)][b];
        if (b + 1 < per_rank[0].size() || remainder == Remainder::Drop) {
          EXPECT_EQ(batch.images.dim(0), 8);  // full global batches give each rank batch_size
        }
        seen.insert(batch.indices.begin(), batch.indices.end());
      }
    }
    const std::size_t expected = remainder == Remainder::Keep ? 103 : 96;
    EXPECT_EQ(seen.size(), expected);
    EXPECT_EQ(std::set<std::int64_t>(seen.begin(), seen.end()).size(), expected) << "overlap";
    // The concatenation of the ranks' parts, batch by batch, is the epoch order.
    std::vector<std::int64_t> concatenated;
    for (std::size_t b = 0; b < per_rank[0].size(); ++b) {
      for (int rank = 0; rank < world_size; ++rank) {
        const auto& indices = per_rank[static_cast<std::size_t>(rank)][b].indices;
        concatenated.insert(concatenated.end(), indices.begin(), indices.end());
      }
    }
    const std::vector<std::int64_t> order = epoch_order(103, 5, 2, Shuffle::On);
    EXPECT_EQ(concatenated,
              std::vector<std::int64_t>(order.begin(),
                                        order.begin() + static_cast<std::ptrdiff_t>(expected)));
  }
  // Last global batch of 7 over 3 ranks: parts of 2, 2, 3.
  LoaderSpec spec;
  spec.batch_size = 8;
  spec.world_size = 3;
  spec.rank = 2;
  const ImageSetSource loader_source(set, AugmentSpec{}, Normalization{});
  BatchLoader loader(loader_source, spec);
  EXPECT_EQ(whole_epoch(loader, 0).back().images.dim(0), 3);
}

TEST(BatchLoader, TinyRemainderGivesEmptyBatchesOnSomeRanks) {
  const ImageSet set = testing::synthetic_set(2, 1, 2, 2, 2, 4);
  std::set<std::int64_t> seen;
  for (int rank = 0; rank < 4; ++rank) {
    LoaderSpec spec;
    spec.batch_size = 1;
    spec.world_size = 4;
    spec.rank = rank;
    const ImageSetSource loader_source(set, AugmentSpec{}, Normalization{});
    BatchLoader loader(loader_source, spec);
    ASSERT_EQ(loader.batches_per_epoch(), 1);
    const std::vector<Batch> batches = whole_epoch(loader, 0);
    ASSERT_EQ(batches.size(), 1u);
    EXPECT_EQ(batches[0].images.shape(), (Shape{rank % 2 == 1 ? 1 : 0, 1, 2, 2}));
    seen.insert(batches[0].indices.begin(), batches[0].indices.end());
  }
  EXPECT_EQ(seen, (std::set<std::int64_t>{0, 1}));
}

TEST(BatchLoader, IdenticalForAnyThreadCountAndPrefetchDepth) {
  const ImageSet set = testing::synthetic_set(150, 3, 8, 8, 10, 6);
  LoaderSpec spec = augmenting_spec();
  const ImageSetSource source = augmenting_source(set);
  spec.threads = 1;
  spec.prefetch_batches = 1;
  BatchLoader serial(source, spec);
  spec.threads = 3;
  spec.prefetch_batches = 8;
  BatchLoader parallel(source, spec);
  for (std::int64_t epoch : {0, 1}) {
    expect_same_batches(whole_epoch(serial, epoch), whole_epoch(parallel, epoch));
  }
  // Augmentation differs between epochs for the same sample.
  const std::vector<Batch> epoch0 = whole_epoch(serial, 0);
  const std::vector<Batch> epoch1 = whole_epoch(serial, 1);
  const std::int64_t sample = epoch0[0].indices[0];
  const std::int64_t image_numel = set.image_numel();
  std::vector<float> first, second;
  for (const auto* batches : {&epoch0, &epoch1}) {
    for (const Batch& batch : *batches) {
      for (std::size_t i = 0; i < batch.indices.size(); ++i) {
        if (batch.indices[i] != sample) continue;
        const std::vector<float> all = batch.images.to_vector<float>();
        auto& target = batches == &epoch0 ? first : second;
        target.assign(all.begin() + static_cast<std::ptrdiff_t>(i) * image_numel,
                      all.begin() + static_cast<std::ptrdiff_t>(i + 1) * image_numel);
      }
    }
  }
  ASSERT_EQ(first.size(), static_cast<std::size_t>(image_numel));
  ASSERT_EQ(second.size(), static_cast<std::size_t>(image_numel));
  EXPECT_NE(first, second);
}

TEST(BatchLoader, ResumeMidEpochGivesTheRemainingBatches) {
  const ImageSet set = testing::synthetic_set(150, 3, 8, 8, 10, 7);
  const LoaderSpec spec = augmenting_spec();
  const ImageSetSource source = augmenting_source(set);
  BatchLoader full_loader(source, spec);
  const std::vector<Batch> full = whole_epoch(full_loader, 3);
  ASSERT_EQ(full.size(), 10u);
  for (std::int64_t first_batch : {1, 4, 9, 10}) {
    BatchLoader resumed_loader(source, spec);  // a fresh process after a checkpoint
    resumed_loader.start_epoch(3, first_batch);
    EXPECT_EQ(resumed_loader.position(), first_batch);
    std::vector<Batch> resumed;
    Batch batch;
    while (resumed_loader.next(batch)) resumed.push_back(batch);
    expect_same_batches(resumed, std::vector<Batch>(full.begin() + first_batch, full.end()));
  }
  // Restarting an epoch while batches are in flight discards them.
  BatchLoader restarted(source, spec);
  restarted.start_epoch(0);
  Batch batch;
  ASSERT_TRUE(restarted.next(batch));
  expect_same_batches(whole_epoch(restarted, 3, 2),
                      std::vector<Batch>(full.begin() + 2, full.end()));
  EXPECT_THROW(restarted.start_epoch(3, 11), InputError);
}

TEST(BatchLoader, NormalizedSetHasZeroMeanUnitStd) {
  const ImageSet set = testing::synthetic_set(64, 3, 6, 6, 4, 8);
  ImageSet skewed = set;
  for (std::size_t i = 0; i < skewed.pixels.size(); ++i) {
    // Different statistics per channel: channel 1 darker, channel 2 low contrast.
    const std::size_t channel = (i / 36) % 3;
    if (channel == 1) skewed.pixels[i] = static_cast<std::uint8_t>(skewed.pixels[i] / 4);
    if (channel == 2) skewed.pixels[i] = static_cast<std::uint8_t>(100 + skewed.pixels[i] / 8);
  }
  LoaderSpec spec;
  spec.batch_size = 64;
  const ImageSetSource source(skewed, AugmentSpec{}, compute_normalization(skewed));
  BatchLoader loader(source, spec);
  const std::vector<Batch> batches = whole_epoch(loader, 0);
  ASSERT_EQ(batches.size(), 1u);
  const std::vector<float> images = batches[0].images.to_vector<float>();
  for (int c = 0; c < 3; ++c) {
    double sum = 0, sum_squares = 0;
    int values = 0;
    for (int n = 0; n < 64; ++n) {
      for (int p = 0; p < 36; ++p) {
        const double value = images[static_cast<std::size_t>((n * 3 + c) * 36 + p)];
        sum += value;
        sum_squares += value * value;
        ++values;
      }
    }
    const double mean = sum / values;
    EXPECT_NEAR(mean, 0.0, 1e-5) << "channel " << c;
    EXPECT_NEAR(std::sqrt(sum_squares / values - mean * mean), 1.0, 1e-4) << "channel " << c;
  }
}

TEST(BatchLoader, RejectsBadSpecs) {
  const ImageSet set = testing::synthetic_set(10, 1, 2, 2, 2, 9);
  const ImageSetSource source(set, {}, {});
  LoaderSpec spec;
  spec.batch_size = 0;
  EXPECT_THROW(BatchLoader(source, spec), InputError);
  spec = LoaderSpec{};
  spec.rank = 2;
  spec.world_size = 2;
  EXPECT_THROW(BatchLoader(source, spec), InputError);
  spec = LoaderSpec{};
  spec.window_blocks = 0;
  EXPECT_THROW(BatchLoader(source, spec), InputError);
  EXPECT_THROW(ImageSetSource(set, AugmentSpec{.cutout = -1}, {}), InputError);
  // two channels for a 1-channel set
  EXPECT_THROW(ImageSetSource(set, {}, Normalization{{0.5f, 0.5f}, {0.2f, 0.2f}}), InputError);
  EXPECT_THROW(ImageSetSource(set, {}, Normalization{{0.5f}, {0.0f}}), InputError);
}

TEST(BatchLoader, WorkerErrorIsRethrownAtItsBatch) {
  ImageSet set = testing::synthetic_set(50, 1, 2, 2, 5, 9);
  set.labels[37] = 5;  // outside [0, num_classes)
  LoaderSpec spec;
  spec.batch_size = 10;
  spec.shuffle = Shuffle::Off;
  spec.threads = 3;
  spec.prefetch_batches = 5;
  const ImageSetSource loader_source(set, AugmentSpec{}, Normalization{});
  BatchLoader loader(loader_source, spec);
  loader.start_epoch(0);
  Batch batch;
  for (int b = 0; b < 3; ++b) ASSERT_TRUE(loader.next(batch)) << "batch " << b;
  const std::string message = testing::input_error_message([&] { loader.next(batch); });
  EXPECT_NE(message.find("sample 37"), std::string::npos) << message;
  EXPECT_EQ(loader.position(), 3);
  // start_epoch clears the failure: resuming after the bad batch gives the last one.
  loader.start_epoch(1, 4);
  ASSERT_TRUE(loader.next(batch));
  EXPECT_FALSE(loader.next(batch));
}

// A 1-channel 4 x 5 image with distinct pixels 10 + position, rendered with identity
// normalization so that out == pixel / 255 (and a padded pixel is 0).
struct RenderCase {
  ImageSet set = testing::synthetic_set(1, 1, 4, 5, 1, 0);
  std::vector<float> table = normalization_table(Normalization{}, 1);
  RenderCase() {
    for (int p = 0; p < 20; ++p)
      set.pixels[static_cast<std::size_t>(p)] = static_cast<std::uint8_t>(10 + p);
  }
  float source(int y, int x) const { return static_cast<float>(10 + y * 5 + x) / 255.0f; }
  std::vector<float> render(const AugmentSpec& spec, const AugmentDraw& draw) const {
    std::vector<float> out(20, -1.0f);
    render_sample(set.image(0), set, spec, draw, table, out.data());
    return out;
  }
};

TEST(Augment, CropWithPaddingShiftsContentAndPadsWithZero) {
  const RenderCase image;
  const AugmentSpec spec{.crop_padding = 2};
  EXPECT_EQ(image.render(spec, identity_draw(spec)), image.render(AugmentSpec{}, AugmentDraw{}));
  AugmentDraw draw = identity_draw(spec);
  draw.crop_top = 3;   // one row down into the padded image: out(y, x) = in(y + 1, x)
  draw.crop_left = 0;  // two columns left: out(y, x) = in(y, x - 2)
  const std::vector<float> out = image.render(spec, draw);
  for (int y = 0; y < 4; ++y) {
    for (int x = 0; x < 5; ++x) {
      const bool padded = y + 1 >= 4 || x - 2 < 0;
      const float expected = padded ? 0.0f : image.source(y + 1, x - 2);
      EXPECT_EQ(out[static_cast<std::size_t>(y * 5 + x)], expected) << y << "," << x;
    }
  }
}

TEST(Augment, FlipMirrorsColumnsAfterCrop) {
  const RenderCase image;
  const AugmentSpec spec{.crop_padding = 1, .flip = Flip::Horizontal};
  AugmentDraw draw = identity_draw(spec);
  draw.flipped = true;
  std::vector<float> out = image.render(spec, draw);
  for (int y = 0; y < 4; ++y) {
    for (int x = 0; x < 5; ++x)
      EXPECT_EQ(out[static_cast<std::size_t>(y * 5 + x)], image.source(y, 4 - x));
  }
  // Crop then flip (torchvision order): out(y, x) = cropped(y, W - 1 - x), cropped(y, x') =
  // in(y, x' + crop_left - padding).
  draw.crop_left = 2;
  out = image.render(spec, draw);
  for (int y = 0; y < 4; ++y) {
    for (int x = 0; x < 5; ++x) {
      const int source_x = 4 - x + 1;
      const float expected = source_x >= 5 ? 0.0f : image.source(y, source_x);
      EXPECT_EQ(out[static_cast<std::size_t>(y * 5 + x)], expected) << y << "," << x;
    }
  }
}

TEST(Augment, CutoutZeroesAClippedSquareAfterNormalization) {
  RenderCase image;
  image.table = normalization_table(Normalization{{0.5f}, {0.25f}}, 1);
  const AugmentSpec spec{.cutout = 2};
  AugmentDraw draw = identity_draw(spec);
  draw.cutout_center_y = 1;
  draw.cutout_center_x = 4;  // columns [3, 5) clipped at 5, rows [0, 2)
  const std::vector<float> out = image.render(spec, draw);
  int zeros = 0;
  for (int y = 0; y < 4; ++y) {
    for (int x = 0; x < 5; ++x) {
      const bool cut = y < 2 && x >= 3;
      const float normalized = (image.source(y, x) - 0.5f) / 0.25f;
      EXPECT_EQ(out[static_cast<std::size_t>(y * 5 + x)], cut ? 0.0f : normalized) << y << "," << x;
      zeros += out[static_cast<std::size_t>(y * 5 + x)] == 0.0f;
    }
  }
  EXPECT_EQ(zeros, 4);
  // Centered at a corner the square is clipped to a quarter: rows [0, 1), columns [0, 1) for
  // side 2.
  draw.cutout_center_y = 0;
  draw.cutout_center_x = 0;
  const std::vector<float> corner = image.render(spec, draw);
  EXPECT_EQ(std::count(corner.begin(), corner.end(), 0.0f), 1);
  EXPECT_EQ(corner[0], 0.0f);
}

TEST(Augment, DrawsCoverTheirRanges) {
  const AugmentSpec spec{.crop_padding = 4, .flip = Flip::Horizontal, .cutout = 8};
  std::set<int> tops, lefts, centers_y, centers_x;
  int flips = 0;
  const int samples = 4000;
  for (int i = 0; i < samples; ++i) {
    Rng rng(augment_seed(1, 0), static_cast<std::uint64_t>(i));
    const AugmentDraw draw = draw_augment(spec, 32, 30, rng);
    tops.insert(draw.crop_top);
    lefts.insert(draw.crop_left);
    centers_y.insert(draw.cutout_center_y);
    centers_x.insert(draw.cutout_center_x);
    flips += draw.flipped;
  }
  EXPECT_EQ(tops, (std::set<int>{0, 1, 2, 3, 4, 5, 6, 7, 8}));
  EXPECT_EQ(lefts.size(), 9u);
  EXPECT_EQ(centers_y.size(), 32u);
  EXPECT_EQ(centers_x.size(), 30u);
  EXPECT_EQ(*centers_x.rbegin(), 29);
  EXPECT_NEAR(static_cast<double>(flips) / samples, 0.5, 0.04);
  // Without augmentation nothing is drawn and the draw is the identity.
  Rng rng(3);
  const Rng::State before = rng.state();
  const AugmentDraw none = draw_augment(AugmentSpec{}, 32, 32, rng);
  EXPECT_EQ(rng.state().words, before.words);
  EXPECT_EQ(none.crop_top, 0);
  EXPECT_FALSE(none.flipped);
}

TEST(Augment, LoaderShapesAreKeptAndContentMoves) {
  const ImageSet set = testing::synthetic_set(40, 3, 8, 8, 4, 10);
  LoaderSpec plain;
  plain.batch_size = 40;
  plain.shuffle = Shuffle::Off;
  const ImageSetSource plain_source(set, AugmentSpec{}, Normalization{});
  const ImageSetSource augmented_source(
      set, AugmentSpec{.crop_padding = 2, .flip = Flip::Horizontal}, Normalization{});
  BatchLoader plain_loader(plain_source, plain);
  BatchLoader augmented_loader(augmented_source, plain);
  const Batch plain_batch = whole_epoch(plain_loader, 0)[0];
  const Batch augmented_batch = whole_epoch(augmented_loader, 0)[0];
  EXPECT_EQ(augmented_batch.images.shape(), (Shape{40, 3, 8, 8}));
  EXPECT_EQ(augmented_batch.indices, plain_batch.indices);
  const std::vector<float> a = plain_batch.images.to_vector<float>();
  const std::vector<float> b = augmented_batch.images.to_vector<float>();
  int changed = 0;
  for (int n = 0; n < 40; ++n) {
    changed += !std::equal(a.begin() + n * 192, a.begin() + (n + 1) * 192, b.begin() + n * 192);
  }
  // Each sample is unchanged only when it drew no shift and no flip: (1/25) * (1/2) of the time.
  EXPECT_GE(changed, 30);
}

// A block source (like packed shards): sample i renders as the constant i, its label is i % 7,
// and the samples listed in `corrupt` cannot be rendered.
class BlockSource : public SampleSource {
 public:
  BlockSource(std::vector<std::int64_t> blocks, std::set<std::int64_t> corrupt = {})
      : blocks_(std::move(blocks)), corrupt_(std::move(corrupt)) {
    for (std::int64_t size : blocks_) count_ += size;
  }
  std::int64_t count() const override { return count_; }
  int num_classes() const override { return 7; }
  SampleShape shape() const override { return {1, 1, 2}; }
  const std::string& description() const override { return description_; }
  std::vector<std::int64_t> block_sizes() const override { return blocks_; }
  RenderResult render(std::int64_t index, Rng&, float* out) const override {
    if (corrupt_.count(index) > 0) return {.ok = false, .label = -1, .error = "record corrupt"};
    out[0] = out[1] = static_cast<float>(index);
    return {.ok = true, .label = static_cast<std::int32_t>(index % 7), .error = {}};
  }

 private:
  std::vector<std::int64_t> blocks_;
  std::set<std::int64_t> corrupt_;
  std::int64_t count_ = 0;
  std::string description_ = "test blocks";
};

TEST(BatchLoader, BlockSourceRanksReadDisjointContiguousStreams) {
  const BlockSource source({10, 10, 10, 10, 9, 10, 10, 10});  // 79 samples
  for (Remainder remainder : {Remainder::Keep, Remainder::Drop}) {
    std::multiset<std::int64_t> seen;
    std::set<std::int64_t> blocks_per_rank_total;
    for (int rank = 0; rank < 3; ++rank) {
      LoaderSpec spec;
      spec.batch_size = 6;
      spec.rank = rank;
      spec.world_size = 3;
      spec.remainder = remainder;
      spec.window_blocks = 2;
      spec.seed = 4;
      BatchLoader loader(source, spec);
      // ranks get 26, 26, 27 samples: Keep ceil(27 / 6) = 5 batches, Drop floor(26 / 6) = 4
      EXPECT_EQ(loader.batches_per_epoch(), remainder == Remainder::Keep ? 5 : 4);
      std::set<std::int64_t> blocks;
      for (const Batch& batch : whole_epoch(loader, 1)) {
        for (std::size_t i = 0; i < batch.indices.size(); ++i) {
          const std::int64_t index = batch.indices[i];
          seen.insert(index);
          blocks.insert(index < 40 ? index / 10 : index < 49 ? 4 : 5 + (index - 49) / 10);
          EXPECT_EQ(batch.images.to_vector<float>()[2 * i], static_cast<float>(index));
          EXPECT_EQ(batch.labels.to_vector<std::int32_t>()[i], index % 7);
        }
      }
      // A third of 8 blocks, plus at most one block shared at each end of the range.
      EXPECT_LE(blocks.size(), 4u) << "rank " << rank;
    }
    EXPECT_EQ(std::set<std::int64_t>(seen.begin(), seen.end()).size(), seen.size()) << "overlap";
    if (remainder == Remainder::Keep) {
      EXPECT_EQ(seen.size(), 79u);
    }
  }
}

TEST(BatchLoader, BlockSourceShufflesPerEpochAndIsIndependentOfThreads) {
  const BlockSource source({16, 16, 16, 16, 16});
  LoaderSpec spec;
  spec.batch_size = 8;
  spec.window_blocks = 2;
  spec.threads = 1;
  BatchLoader serial(source, spec);
  spec.threads = 3;
  spec.prefetch_batches = 6;
  BatchLoader parallel(source, spec);
  const std::vector<Batch> epoch0 = whole_epoch(serial, 0);
  expect_same_batches(epoch0, whole_epoch(parallel, 0));
  const std::vector<Batch> epoch1 = whole_epoch(serial, 1);
  std::vector<std::int64_t> order0, order1;
  for (const Batch& batch : epoch0)
    order0.insert(order0.end(), batch.indices.begin(), batch.indices.end());
  for (const Batch& batch : epoch1)
    order1.insert(order1.end(), batch.indices.begin(), batch.indices.end());
  EXPECT_NE(order0, order1);
  std::vector<std::int64_t> sorted = order0;
  std::sort(sorted.begin(), sorted.end());
  std::vector<std::int64_t> identity(80);
  std::iota(identity.begin(), identity.end(), 0);
  EXPECT_EQ(sorted, identity);
  // Within a window of 2 blocks: the first 32 samples come from at most 2 (+1 partial) blocks.
  std::set<std::int64_t> first_window_blocks;
  for (std::size_t i = 0; i < 32; ++i) first_window_blocks.insert(order0[i] / 16);
  EXPECT_LE(first_window_blocks.size(), 2u);
  // Without shuffling (evaluation) the shards are read in order.
  LoaderSpec eval;
  eval.batch_size = 8;
  eval.shuffle = Shuffle::Off;
  BatchLoader eval_loader(source, eval);
  std::vector<std::int64_t> eval_order;
  for (const Batch& batch : whole_epoch(eval_loader, 3)) {
    eval_order.insert(eval_order.end(), batch.indices.begin(), batch.indices.end());
  }
  EXPECT_EQ(eval_order, identity);
}

TEST(BatchLoader, UnrenderableSamplesAreSkippedAndCounted) {
  const BlockSource source({10, 10}, {3, 12, 13});
  LoaderSpec spec;
  spec.batch_size = 5;
  spec.shuffle = Shuffle::Off;
  spec.threads = 2;
  BatchLoader loader(source, spec);
  const std::vector<Batch> batches = whole_epoch(loader, 0);
  ASSERT_EQ(batches.size(), 4u);
  EXPECT_EQ(batches[0].images.dim(0), 4);
  EXPECT_EQ(batches[0].indices, (std::vector<std::int64_t>{0, 1, 2, 4}));
  EXPECT_EQ(batches[0].labels.to_vector<std::int32_t>(), (std::vector<std::int32_t>{0, 1, 2, 4}));
  EXPECT_EQ(batches[0].images.to_vector<float>()[6], 4.0f);
  EXPECT_EQ(batches[2].images.dim(0), 3);
  EXPECT_EQ(loader.skipped_samples(), 3);
}

}  // namespace
}  // namespace md::data
