// JpegShardSource: the SampleSource of a packed ImageNet split. Samples are the records of an
// EncodedShardStore's shards, in order; rendering one loads its shard on demand (one load per
// shard however many threads want it at once), keeps the last `cached_shards` shards in memory
// (least recently used out first), and decodes + transforms on the calling thread. A record whose
// bytes do not decode is a failed RenderResult naming the record, never an exception; a shard
// that cannot be read (store->load throws) is an exception. No file formats here (the store).
#pragma once

#include <condition_variable>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "data/encoded_shards.h"
#include "data/imagenet_transform.h"
#include "data/sample_source.h"

namespace md::data {

class JpegShardSource : public SampleSource {
 public:
  // cached_shards: how many decoded-from-disk shards (EncodedShard) are kept in memory (LRU),
  // >= 1 (InputError otherwise, or for an invalid transform).
  JpegShardSource(std::shared_ptr<const EncodedShardStore> store, const JpegTransform& transform,
                  int cached_shards = 8, const JpegRenderOptions& options = {});

  std::int64_t count() const override { return cumulative_.back(); }
  int num_classes() const override { return num_classes_; }
  SampleShape shape() const override { return renderer_.shape(); }
  const std::string& description() const override { return description_; }
  std::vector<std::int64_t> block_sizes() const override { return shard_sizes_; }

  // out: (3, crop, crop) float32. Label and error from the record's shard; md::Error for an index
  // out of range or a record whose label is outside [0, num_classes).
  RenderResult render(std::int64_t index, Rng& rng, float* out) const override;

  // The shard holding sample `index` and the record's position in it.
  std::pair<std::int64_t, std::int64_t> locate(std::int64_t index) const;

 private:
  struct CacheEntry {
    std::shared_ptr<const EncodedShard> shard;  // null while loading
    std::uint64_t last_use = 0;
  };

  std::shared_ptr<const EncodedShard> acquire(std::int64_t shard) const;

  std::shared_ptr<const EncodedShardStore> store_;
  JpegRenderer renderer_;
  int cached_shards_;
  int num_classes_;
  std::string description_;
  std::vector<std::int64_t> shard_sizes_;
  std::vector<std::int64_t> cumulative_;  // (shards + 1): first sample index of each shard

  mutable std::mutex mutex_;
  mutable std::condition_variable loaded_;
  mutable std::map<std::int64_t, CacheEntry> cache_;
  mutable std::uint64_t clock_ = 0;
};

}  // namespace md::data
