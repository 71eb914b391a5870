// EncodedShardStore: shards of encoded (JPEG) images with their labels, as the data layer sees
// them. The data layer does not know the file format (HDF5 lives in io/, DESIGN.md §2): the
// trainer adapts io's shard reader to this interface. A shard is loaded whole, one large
// sequential read, and kept in memory while the loader uses it.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace md::data {

// One shard, in memory. Record i has the bytes [offsets[i], offsets[i + 1]) of `bytes`, the
// label labels[i] and the name names[i] (its path in the source tree, e.g.
// "train/n01440764/n01440764_10026.JPEG").
struct EncodedShard {
  std::vector<std::uint8_t> bytes;
  std::vector<std::int64_t> offsets;  // (count + 1), offsets[0] = 0, non-decreasing
  std::vector<std::int32_t> labels;   // (count)
  std::vector<std::string> names;     // (count)
  std::int64_t count() const { return static_cast<std::int64_t>(labels.size()); }
};

class EncodedShardStore {
 public:
  virtual ~EncodedShardStore() = default;
  virtual std::vector<std::int64_t> shard_sizes() const = 0;  // records per shard, in order
  virtual int num_classes() const = 0;
  virtual const std::string& description() const = 0;  // e.g. "ILSVRC2012 train shards in DIR"
  // Reads shard `shard` whole. Thread-safe. InputError naming the shard's file when it is
  // missing, unreadable or inconsistent with its record count.
  virtual EncodedShard load(std::int64_t shard) const = 0;
};

}  // namespace md::data
