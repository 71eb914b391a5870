// JpegShardSource (see jpeg_source.h). The cache is a map from shard index to entry under one
// mutex; an entry with a null shard is a load in progress, which other threads wait for on the
// condition variable instead of loading again. The load itself runs without the lock. Eviction
// drops the least recently used loaded entries beyond `cached_shards`; a thread still rendering
// from an evicted shard keeps it alive through its shared_ptr.
#include "data/jpeg_source.h"

#include <algorithm>
#include <utility>

#include "core/error.h"

namespace md::data {

JpegShardSource::JpegShardSource(std::shared_ptr<const EncodedShardStore> store,
                                 const JpegTransform& transform, int cached_shards,
                                 const JpegRenderOptions& options)
    : store_(std::move(store)), renderer_(transform, options), cached_shards_(cached_shards) {
  MD_CHECK(store_ != nullptr, "JpegShardSource without a shard store");
  MD_INPUT_CHECK(cached_shards_ >= 1, "JpegShardSource over ", store_->description(),
                 ": cached_shards must be at least 1, got ", cached_shards_);
  num_classes_ = store_->num_classes();
  description_ = store_->description();
  shard_sizes_ = store_->shard_sizes();
  cumulative_.assign(1, 0);
  for (const std::int64_t size : shard_sizes_) {
    MD_INPUT_CHECK(size >= 0, description_, ": a shard of ", size, " records");
    cumulative_.push_back(cumulative_.back() + size);
  }
}

std::pair<std::int64_t, std::int64_t> JpegShardSource::locate(std::int64_t index) const {
  MD_CHECK(index >= 0 && index < count(), description_, ": sample ", index, " outside [0, ",
           count(), ")");
  // The last shard whose first index is <= index (empty shards share their start with the next).
  const auto after = std::upper_bound(cumulative_.begin(), cumulative_.end(), index);
  const std::int64_t shard = static_cast<std::int64_t>(after - cumulative_.begin()) - 1;
  return {shard, index - cumulative_[static_cast<std::size_t>(shard)]};
}

std::shared_ptr<const EncodedShard> JpegShardSource::acquire(std::int64_t shard) const {
  std::unique_lock<std::mutex> lock(mutex_);
  for (;;) {
    const auto found = cache_.find(shard);
    if (found == cache_.end()) break;
    if (found->second.shard != nullptr) {
      found->second.last_use = ++clock_;
      return found->second.shard;
    }
    loaded_.wait(lock);  // another thread is loading it (or gave up: then the entry is gone)
  }
  cache_[shard] = CacheEntry{};  // marks the load in progress
  lock.unlock();
  std::shared_ptr<const EncodedShard> loaded;
  try {
    loaded = std::make_shared<const EncodedShard>(store_->load(shard));
  } catch (...) {
    lock.lock();
    cache_.erase(shard);
    loaded_.notify_all();
    throw;
  }
  const EncodedShard& records = *loaded;
  const std::int64_t expected = shard_sizes_[static_cast<std::size_t>(shard)];
  const bool consistent =
      records.count() == expected &&
      records.offsets.size() == static_cast<std::size_t>(records.count() + 1) &&
      records.names.size() == static_cast<std::size_t>(records.count()) &&
      (records.offsets.empty() ||
       (records.offsets.front() == 0 &&
        std::is_sorted(records.offsets.begin(), records.offsets.end()) &&
        records.offsets.back() <= static_cast<std::int64_t>(records.bytes.size())));
  lock.lock();
  if (!consistent) {
    cache_.erase(shard);
    loaded_.notify_all();
    throw InputError(detail::concat(description_, ": shard ", shard, " holds ", records.count(),
                                    " records with ", records.offsets.size(), " offsets and ",
                                    records.names.size(), " names over ", records.bytes.size(),
                                    " bytes; the store lists ", expected, " records"));
  }
  cache_[shard] = CacheEntry{loaded, ++clock_};
  while (static_cast<int>(cache_.size()) > cached_shards_) {
    auto oldest = cache_.end();
    for (auto entry = cache_.begin(); entry != cache_.end(); ++entry) {
      if (entry->second.shard == nullptr || entry->first == shard) continue;
      if (oldest == cache_.end() || entry->second.last_use < oldest->second.last_use) {
        oldest = entry;
      }
    }
    if (oldest == cache_.end()) break;  // the rest are loads in progress
    cache_.erase(oldest);
  }
  loaded_.notify_all();
  return loaded;
}

RenderResult JpegShardSource::render(std::int64_t index, Rng& rng, float* out) const {
  const auto [shard_index, record] = locate(index);
  const std::shared_ptr<const EncodedShard> shard = acquire(shard_index);
  const auto at = static_cast<std::size_t>(record);
  RenderResult result;
  result.label = shard->labels[at];
  MD_INPUT_CHECK(result.label >= 0 && result.label < num_classes_, description_, " record ", index,
                 " (", shard->names[at], "): label ", result.label, " outside [0, ", num_classes_,
                 ")");
  const std::int64_t begin = shard->offsets[at];
  const std::int64_t end = shard->offsets[at + 1];
  const std::string reason = renderer_.render(shard->bytes.data() + begin,
                                              static_cast<std::size_t>(end - begin), rng, out);
  if (!reason.empty()) {
    result.error =
        detail::concat(description_, " record ", index, " (", shard->names[at], "): ", reason);
    return result;
  }
  result.ok = true;
  return result;
}

}  // namespace md::data
