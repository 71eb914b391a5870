// JpegShardSource over an in-memory EncodedShardStore: counts, shapes, labels, a corrupt record
// reported by name, one load per shard under concurrent rendering, LRU eviction, and load
// failures that propagate and can be retried.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <memory>
#include <mutex>
#include <set>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "core/error.h"
#include "data/jpeg_source.h"
#include "jpeg_test_images.h"
#include "support/jpeg_writer.h"

namespace md::data {
namespace {

// Shards of small real JPEGs; label of sample i is i % num_classes; record `corrupt` is cut in
// half. Counts loads per shard; a load sleeps a little so concurrent requests overlap.
class MemoryShardStore : public EncodedShardStore {
 public:
  MemoryShardStore(std::vector<std::int64_t> sizes, std::int64_t corrupt, int num_classes)
      : sizes_(std::move(sizes)), num_classes_(num_classes), loads_(sizes_.size()) {
    std::int64_t index = 0;
    for (const std::int64_t size : sizes_) {
      EncodedShard shard;
      shard.offsets.push_back(0);
      for (std::int64_t r = 0; r < size; ++r, ++index) {
        const int width = 40 + static_cast<int>(index % 7) * 9;
        const int height = 30 + static_cast<int>(index % 5) * 11;
        std::vector<std::uint8_t> bytes =
            test::encode_jpeg(test::make_detailed_image(width, height, test::JpegColor::Rgb,
                                                        static_cast<std::uint64_t>(index)),
                              85);
        if (index == corrupt) bytes.resize(bytes.size() / 2);
        shard.bytes.insert(shard.bytes.end(), bytes.begin(), bytes.end());
        shard.offsets.push_back(static_cast<std::int64_t>(shard.bytes.size()));
        shard.labels.push_back(static_cast<std::int32_t>(index % num_classes));
        shard.names.push_back("train/n" + std::to_string(index % num_classes) + "/img_" +
                              std::to_string(index) + ".JPEG");
      }
      shards_.push_back(std::move(shard));
    }
    for (auto& count : loads_) count = 0;
  }

  std::vector<std::int64_t> shard_sizes() const override { return sizes_; }
  int num_classes() const override { return num_classes_; }
  const std::string& description() const override { return description_; }
  EncodedShard load(std::int64_t shard) const override {
    loads_[static_cast<std::size_t>(shard)]++;
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
    if (shard == failing_shard_) {
      throw InputError("cannot read shard " + std::to_string(shard));
    }
    return shards_[static_cast<std::size_t>(shard)];
  }

  int loads(std::size_t shard) const { return loads_[shard].load(); }
  void set_failing_shard(std::int64_t shard) { failing_shard_ = shard; }

 private:
  std::vector<std::int64_t> sizes_;
  int num_classes_;
  std::string description_ = "test shards in memory";
  std::vector<EncodedShard> shards_;
  mutable std::vector<std::atomic<int>> loads_;
  std::atomic<std::int64_t> failing_shard_{-1};
};

JpegTransform small_train() {
  JpegTransform transform;
  transform.crop_size = 32;
  return transform;
}

TEST(JpegShardSource, DescribesTheStore) {
  auto store = std::make_shared<MemoryShardStore>(std::vector<std::int64_t>{3, 0, 5, 2}, -1, 4);
  const JpegShardSource source(store, small_train(), 2);
  EXPECT_EQ(source.count(), 10);
  EXPECT_EQ(source.num_classes(), 4);
  EXPECT_EQ(source.shape().channels, 3);
  EXPECT_EQ(source.shape().height, 32);
  EXPECT_EQ(source.shape().width, 32);
  EXPECT_EQ(source.block_sizes(), (std::vector<std::int64_t>{3, 0, 5, 2}));
  EXPECT_EQ(source.description(), "test shards in memory");
  EXPECT_EQ(source.locate(0), (std::pair<std::int64_t, std::int64_t>{0, 0}));
  EXPECT_EQ(source.locate(2), (std::pair<std::int64_t, std::int64_t>{0, 2}));
  EXPECT_EQ(source.locate(3), (std::pair<std::int64_t, std::int64_t>{2, 0}));  // skips empty 1
  EXPECT_EQ(source.locate(8), (std::pair<std::int64_t, std::int64_t>{3, 0}));
  EXPECT_EQ(source.locate(9), (std::pair<std::int64_t, std::int64_t>{3, 1}));
  EXPECT_THROW(source.locate(10), Error);
  EXPECT_THROW(JpegShardSource(store, small_train(), 0), InputError);
}

TEST(JpegShardSource, ConcurrentRendersLoadEachShardOnce) {
  const std::vector<std::int64_t> sizes = {7, 5, 9, 6};
  const std::int64_t corrupt = 13;
  auto store = std::make_shared<MemoryShardStore>(sizes, corrupt, 3);
  const JpegShardSource source(store, small_train(), 4);
  const std::int64_t count = source.count();
  ASSERT_EQ(count, 27);

  constexpr int kThreads = 6;
  std::vector<std::vector<RenderResult>> results(kThreads);
  std::vector<std::vector<float>> first_pixels(kThreads);
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      std::vector<float> out(static_cast<std::size_t>(source.shape().numel()));
      for (std::int64_t i = 0; i < count; ++i) {
        const std::int64_t index = (i * 5 + t * 3) % count;  // every thread its own order
        Rng rng(static_cast<std::uint64_t>(index), 1);
        results[static_cast<std::size_t>(t)].push_back(source.render(index, rng, out.data()));
        if (index == 0) first_pixels[static_cast<std::size_t>(t)] = out;
      }
    });
  }
  for (auto& thread : threads) thread.join();

  for (int t = 0; t < kThreads; ++t) {
    int failures = 0;
    for (std::int64_t i = 0; i < count; ++i) {
      const std::int64_t index = (i * 5 + t * 3) % count;
      const RenderResult& result =
          results[static_cast<std::size_t>(t)][static_cast<std::size_t>(i)];
      EXPECT_EQ(result.label, index % 3) << "sample " << index;
      if (index == corrupt) {
        ++failures;
        EXPECT_FALSE(result.ok);
        const std::string prefix = "test shards in memory record 13 (train/n1/img_13.JPEG): ";
        EXPECT_EQ(result.error.rfind(prefix, 0), 0u) << result.error;
        EXPECT_GT(result.error.size(), prefix.size()) << "no reason after the name";
      } else {
        EXPECT_TRUE(result.ok) << result.error;
      }
    }
    EXPECT_EQ(failures, 1);
    EXPECT_EQ(first_pixels[static_cast<std::size_t>(t)], first_pixels[0]);  // same rng, same sample
  }
  for (std::size_t shard = 0; shard < sizes.size(); ++shard) {
    EXPECT_EQ(store->loads(shard), 1) << "shard " << shard;
  }
}

TEST(JpegShardSource, LeastRecentlyUsedShardsAreEvicted) {
  auto store = std::make_shared<MemoryShardStore>(std::vector<std::int64_t>{2, 2, 2}, -1, 2);
  const JpegShardSource source(store, small_train(), 2);
  std::vector<float> out(static_cast<std::size_t>(source.shape().numel()));
  Rng rng(1);
  const auto render = [&](std::int64_t index) {
    ASSERT_TRUE(source.render(index, rng, out.data()).ok);
  };
  render(0);  // loads shard 0
  render(2);  // loads shard 1
  render(1);  // shard 0 again: cached, now the most recent
  render(4);  // loads shard 2, evicts shard 1
  render(0);  // still cached
  EXPECT_EQ(store->loads(0), 1);
  EXPECT_EQ(store->loads(1), 1);
  EXPECT_EQ(store->loads(2), 1);
  render(3);  // shard 1 was evicted: loaded again
  EXPECT_EQ(store->loads(1), 2);
  EXPECT_EQ(store->loads(0), 1);
}

TEST(JpegShardSource, LoadFailuresPropagateAndAreRetried) {
  auto store = std::make_shared<MemoryShardStore>(std::vector<std::int64_t>{2, 2}, -1, 2);
  const JpegShardSource source(store, small_train(), 2);
  std::vector<float> out(static_cast<std::size_t>(source.shape().numel()));
  Rng rng(1);
  store->set_failing_shard(1);
  EXPECT_THROW(source.render(2, rng, out.data()), InputError);
  EXPECT_TRUE(source.render(0, rng, out.data()).ok);
  store->set_failing_shard(-1);
  EXPECT_TRUE(source.render(3, rng, out.data()).ok);
  EXPECT_EQ(store->loads(1), 2);
}

}  // namespace
}  // namespace md::data
