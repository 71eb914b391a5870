// `metadistill pack-imagenet` (DESIGN.md §5, §6): turns the standard ILSVRC2012 tree into the
// shards of io/imagenet_shards.h, and verifies a pack. Steps: scan the source tree (classes,
// records, sizes; bad input is an InputError naming the file and line), plan (a fixed shuffle
// per split, cut into near-equal contiguous shards), write (each shard tmp + rename, skipping
// shards already on disk that match the plan: an interrupted pack resumes and ends
// byte-identical to an uninterrupted one), then the manifest, last.
//
// Packing never decodes images (verify does, through a callback: io does not depend on data/).
//
// Source layouts:
//   SRC/train/<wnid>/*.JPEG        (.JPEG, .jpg, .jpeg, any case); classes are the sorted wnid
//                                  directory names of train/, the class index is the position
//   SRC/val/<wnid>/*.JPEG          per-class validation, or
//   SRC/val/*.JPEG + labels file   flat validation: one label per line for the images in sorted
//                                  file-name order, each a wnid or a 0-based class index
//   no SRC/val                     train only (a warning)
// Record names are paths relative to SRC: "train/n01440764/x.JPEG", "val/y.JPEG".
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "io/imagenet_shards.h"

namespace md::io {

// The fixed seed of the record shuffle (plus the split's index: train 0, val 1). The shuffle is
// Fisher-Yates driven by splitmix64, j = (splitmix64() * (i + 1)) >> 64 (high half of the 128-bit
// product), for i from count - 1 down to 1. Changing it changes every plan_hash.
inline constexpr std::uint64_t kImagenetShuffleSeed = 0x494c535652433132ULL;  // "ILSVRC12"
inline constexpr std::int64_t kDefaultImagenetRecordsPerShard = 1024;

// Receives one progress line at a time (without a newline).
using ProgressSink = std::function<void(const std::string& line)>;

// ---- scan

struct ImagenetSourceRecord {
  std::string name;  // relative to SRC, '/'-separated
  std::string path;  // the file to read
  std::int64_t size = 0;
  std::int32_t label = 0;
};

struct ImagenetSourceSplit {
  ImagenetSplit split = ImagenetSplit::Train;
  std::vector<ImagenetSourceRecord> records;  // sorted by name
};

struct ImagenetSource {
  std::vector<std::string> classes;         // wnids, sorted
  std::vector<ImagenetSourceSplit> splits;  // train, then val when present
  std::vector<std::string> warnings;
};

// val_labels: the labels file of a flat val/ ("" = SRC/val_labels.txt).
ImagenetSource scan_imagenet_source(const std::string& source, const std::string& val_labels);

// ---- plan

struct ImagenetShardPlan {
  std::string file;
  std::int64_t index = 0;
  std::int64_t shard_count = 0;
  std::vector<ImagenetSourceRecord> records;  // in shard order
  std::uint64_t plan_hash = 0;
  std::int64_t source_bytes() const;
};

struct ImagenetSplitPlan {
  ImagenetSplit split = ImagenetSplit::Train;
  std::int64_t count = 0;
  std::vector<ImagenetShardPlan> shards;
};

struct ImagenetPackPlan {
  std::vector<std::string> classes;
  std::vector<ImagenetSplitPlan> splits;
};

struct ImagenetPlanOptions {
  std::int64_t train_shards = 0;  // 0: about records_per_shard records per shard (at least 1)
  std::int64_t records_per_shard = kDefaultImagenetRecordsPerShard;
};

// Val gets the train shards' records-per-shard (count / shards): round(val count / that), >= 1.
// InputError when train_shards exceeds the train images or a count is not positive.
ImagenetPackPlan plan_imagenet_pack(const ImagenetSource& source,
                                    const ImagenetPlanOptions& options);

// The shuffle described at kImagenetShuffleSeed: a permutation of [0, count).
std::vector<std::int64_t> imagenet_shuffle(std::int64_t count, std::uint64_t seed);

// ---- pack

struct ImagenetPackOptions {
  std::string source;
  std::string destination;
  std::string val_labels;  // "" = SRC/val_labels.txt
  ImagenetPlanOptions plan;
  ProgressSink progress;             // throttled lines; empty = silent
  double progress_interval_s = 0.5;  // at most one line per interval (plus the final line)
};

struct ImagenetPackSummary {
  std::int64_t shards_written = 0;
  std::int64_t shards_kept = 0;  // already on disk and matching the plan (resume)
  std::int64_t records = 0;
  std::int64_t bytes = 0;  // JPEG bytes in the shards
};

// Packs SRC into DST. Resumable: shards already in DST whose plan_hash equals the plan's and
// whose checksum matches their content are kept; leftover temporary files are removed. Between
// shards, a requested interrupt (core/interrupt.h) throws md::Interrupted after the shard is
// committed; rerunning the same pack completes it.
ImagenetPackSummary pack_imagenet(const ImagenetPackOptions& options);

// ---- verify

// Returns "" when the image decodes, else the reason. Must be thread-safe.
using ImageCheck = std::function<std::string(const std::uint8_t* bytes, std::size_t size)>;

struct ImagenetVerifyOptions {
  ImageCheck check;  // empty: only the shard structure and checksums are verified
  int threads = 0;   // image checks in parallel; 0 = hardware concurrency
  ProgressSink progress;
  double progress_interval_s = 0.5;
};

struct ImagenetCorruptRecord {
  std::string shard_file;
  std::string name;
  std::string reason;
};

struct ImagenetVerifySplit {
  ImagenetSplit split = ImagenetSplit::Train;
  std::int64_t shards = 0;
  std::int64_t records = 0;
  std::int64_t bytes = 0;
};

struct ImagenetVerifyReport {
  std::vector<ImagenetVerifySplit> splits;
  std::vector<ImagenetCorruptRecord> corrupt;  // warnings: the loader skips them
};

// Reads the manifest and every shard; InputError naming the shard file when a checksum, count,
// size, label or plan_hash disagrees. Corrupt images are reported, not thrown.
ImagenetVerifyReport verify_imagenet_pack(const std::string& root,
                                          const ImagenetVerifyOptions& options);

}  // namespace md::io
