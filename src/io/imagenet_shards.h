// ILSVRC2012 shards (DESIGN.md §5): the packed form of the ImageNet tree that the trainer reads,
// written by io/imagenet_pack.h. Training must not open 1.28 M small files on a parallel file
// system; instead each split is a few hundred HDF5 files, each read whole with one large read.
// This header is the format and its reader; it knows nothing of JPEG decoding (data/ does that)
// and includes no HDF5 or data/ header (the trainer adapts ImagenetShards to data's
// EncodedShardStore, whose EncodedShard has the same fields as ImagenetShardContents).
//
// Layout of a pack directory DST:
//   DST/manifest.yaml                 written last (tmp + rename): its presence means complete
//   DST/train-00000-of-00008.h5 ...   the train shards, DST/val-00000-of-00001.h5 ... likewise
// manifest.yaml:
//   format_version: 1
//   classes: [n01440764, ...]         wnids in class-index order (sorted directory names)
//   splits:
//     train: {count: N, shards: [{file: train-00000-of-00008.h5, count: c, bytes: file size,
//                                 checksum: "16 hex digits"}, ...]}
//     val: ...                        (absent when the source had no val/)
// A shard file (schema_version 1):
//   /jpeg     uint8 (total bytes), contiguous: every record's JPEG bytes, concatenated
//   /offsets  int64 (count + 1): record i is jpeg[offsets[i], offsets[i + 1])
//   /labels   int32 (count): class index
//   /names    fixed-length UTF-8 strings, null padded (count): the record's path in the source
//             tree, e.g. "train/n01440764/n01440764_10026.JPEG"
//   root attributes: schema_version (int), split ("train" | "val"), shard_index, shard_count
//   (int), plan_hash (16 hex digits: imagenet_plan_hash of the records it holds), checksum (16 hex
//   digits: imagenet_content_checksum of labels, offsets and jpeg).
// Object time tracking is off, so a shard's bytes depend only on its content.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "io/log_schema.h"  // kImagenetShardSchemaVersion, kImagenetManifestFormatVersion

namespace md::io {

enum class ImagenetSplit { Train, Val };

inline constexpr const char* kImagenetManifestName = "manifest.yaml";

// "train" / "val".
const char* imagenet_split_name(ImagenetSplit split);

// One shard in memory: record i has the bytes [offsets[i], offsets[i + 1]) of `bytes`.
struct ImagenetShardContents {
  std::vector<std::uint8_t> bytes;    // (total bytes)
  std::vector<std::int64_t> offsets;  // (count + 1), offsets[0] = 0, non-decreasing
  std::vector<std::int32_t> labels;   // (count)
  std::vector<std::string> names;     // (count)
  std::int64_t count() const { return static_cast<std::int64_t>(labels.size()); }
};

// The 64-bit hash of the format (documented so that other tools can recompute it): 8-byte
// little-endian words w, h = rotl(h ^ (w * 0x87c37b91114253d5), 31) * 0x4cf5ad432745937f,
// then the tail bytes zero-padded into one last word, then the splitmix64 finalizer of
// h ^ size. `seed` chains calls: hash(b, hash(a)) hashes a then b.
std::uint64_t imagenet_hash64(const void* data, std::size_t size, std::uint64_t seed);

// The shard checksum: hash of the labels (int32 LE), then offsets (int64 LE), then the bytes.
std::uint64_t imagenet_content_checksum(const ImagenetShardContents& contents);

// A record as the plan sees it, before its bytes are read.
struct ImagenetRecordKey {
  std::string name;
  std::int64_t size = 0;
  std::int32_t label = 0;
};
// The plan hash of a shard: hash of the schema version, split, shard index and count, then each
// record's name, size and label in shard order. Resume compares it to decide that a shard on
// disk is the one the plan wants.
std::uint64_t imagenet_plan_hash(ImagenetSplit split, std::int64_t shard_index,
                                 std::int64_t shard_count,
                                 const std::vector<ImagenetRecordKey>& records);
// The same, recomputed from a shard's contents (names, offset differences, labels).
std::uint64_t imagenet_plan_hash(ImagenetSplit split, std::int64_t shard_index,
                                 std::int64_t shard_count, const ImagenetShardContents& contents);

std::string hash_to_hex(std::uint64_t hash);  // 16 lowercase hex digits

// "train-00003-of-00008.h5"
std::string imagenet_shard_file_name(ImagenetSplit split, std::int64_t shard_index,
                                     std::int64_t shard_count);

// ---- manifest

struct ImagenetShardEntry {
  std::string file;  // relative to the pack directory
  std::int64_t count = 0;
  std::int64_t bytes = 0;  // the shard file's size on disk
  std::uint64_t checksum = 0;
};

struct ImagenetSplitManifest {
  ImagenetSplit split = ImagenetSplit::Train;
  std::int64_t count = 0;
  std::vector<ImagenetShardEntry> shards;
};

struct ImagenetManifest {
  std::int64_t format_version = kImagenetManifestFormatVersion;
  std::vector<std::string> classes;
  std::vector<ImagenetSplitManifest> splits;  // train first, then val when present
  const ImagenetSplitManifest* find(ImagenetSplit split) const;  // nullptr when absent
};

std::string imagenet_manifest_path(const std::string& root);
// InputError naming the file (and key) when missing or malformed.
ImagenetManifest read_imagenet_manifest(const std::string& root);
// Writes root/manifest.yaml through a temporary file and a rename.
void write_imagenet_manifest(const std::string& root, const ImagenetManifest& manifest);

// ---- shard files

struct ImagenetShardHeader {
  ImagenetSplit split = ImagenetSplit::Train;
  std::int64_t shard_index = 0;
  std::int64_t shard_count = 0;
  std::uint64_t plan_hash = 0;
  std::uint64_t checksum = 0;
};

// Writes a shard to `path + ".tmp"`, flushes, fsyncs and renames it to `path` (the commit).
// header.checksum must equal imagenet_content_checksum(contents).
void write_imagenet_shard_file(const std::string& path, const ImagenetShardHeader& header,
                               const ImagenetShardContents& contents);

// Reads a shard file whole: its attributes and contents. InputError naming the file when it is
// missing, not a shard, truncated or internally inconsistent (dataset sizes, offsets). Does not
// compare the checksum (the caller decides what to trust). Thread-safe; the bulk JPEG bytes are
// read outside the HDF5 lock.
ImagenetShardContents read_imagenet_shard_file(const std::string& path,
                                               ImagenetShardHeader* header);
// Only the attributes (cheap).
ImagenetShardHeader read_imagenet_shard_header(const std::string& path);

// ---- the reader the trainer uses

class ImagenetShards {
 public:
  // Opens DST/manifest.yaml; InputError naming the file/key if missing or malformed, or the
  // split has no shards.
  static ImagenetShards open(const std::string& root, ImagenetSplit split);

  const std::vector<std::string>& class_names() const { return manifest_.classes; }  // wnids
  int num_classes() const { return static_cast<int>(manifest_.classes.size()); }
  std::vector<std::int64_t> shard_sizes() const;
  std::int64_t count() const { return split_manifest().count; }
  std::int64_t num_shards() const;
  const std::string& root() const { return root_; }
  ImagenetSplit split() const { return split_; }
  std::string shard_path(std::int64_t shard) const;

  // Reads one shard whole (one large read per dataset); thread-safe. InputError naming the shard
  // file when missing, truncated, its sizes or checksum disagree with the manifest, or it is
  // not the shard of this split and index.
  ImagenetShardContents read(std::int64_t shard) const;

 private:
  ImagenetShards(std::string root, ImagenetSplit split, ImagenetManifest manifest);
  const ImagenetSplitManifest& split_manifest() const;

  std::string root_;
  ImagenetSplit split_;
  ImagenetManifest manifest_;
};

// Copies the manifest and every shard of root to local_dir (each file tmp + rename; a file
// already there with the manifest's byte size is kept) and returns local_dir; used to stage
// shards on node-local storage ($SLURM_TMPDIR). Safe when several ranks of a node call it at
// once: they take turns on an flock()ed lock file in local_dir, so each shard is copied once;
// the manifest is copied last, so its presence in local_dir means the staging is complete.
std::string stage_imagenet_shards(const std::string& root, const std::string& local_dir);

}  // namespace md::io
