// pack-imagenet: scan, plan, write, resume, manifest and verify (io/imagenet_pack.h). The shard
// format and its hashes live in imagenet_shards.cpp; this file decides which records go where
// and when a shard on disk can be kept. It must not decode images (verify calls a callback).
#include "io/imagenet_pack.h"

#include <algorithm>
#include <atomic>
#include <cctype>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <mutex>
#include <thread>

#include "core/error.h"
#include "core/interrupt.h"
#include "core/logging.h"

namespace md::io {

namespace fs = std::filesystem;

namespace {

// ---- scan helpers

bool is_jpeg_name(const std::string& name) {
  std::string extension = fs::path(name).extension().string();
  std::transform(extension.begin(), extension.end(), extension.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return extension == ".jpeg" || extension == ".jpg";
}

bool is_hidden(const std::string& name) {
  return !name.empty() && name.front() == '.';
}

struct DirectoryListing {
  std::vector<std::string> directories;  // sorted names
  std::vector<std::string> images;       // sorted names of JPEG files
  std::int64_t other_files = 0;
};

DirectoryListing list_directory(const fs::path& directory) {
  DirectoryListing listing;
  std::error_code error;
  fs::directory_iterator iterator(directory, error);
  MD_INPUT_CHECK(!error, directory.string(), ": cannot list the directory: ", error.message());
  for (const fs::directory_entry& entry : iterator) {
    const std::string name = entry.path().filename().string();
    if (is_hidden(name)) continue;
    std::error_code status_error;
    if (entry.is_directory(status_error)) {
      listing.directories.push_back(name);
    } else if (entry.is_regular_file(status_error) && is_jpeg_name(name)) {
      listing.images.push_back(name);
    } else {
      ++listing.other_files;
    }
  }
  std::sort(listing.directories.begin(), listing.directories.end());
  std::sort(listing.images.begin(), listing.images.end());
  return listing;
}

std::int64_t file_size_of(const fs::path& path) {
  std::error_code error;
  auto size = fs::file_size(path, error);
  MD_INPUT_CHECK(!error, path.string(), ": cannot read its size: ", error.message());
  return static_cast<std::int64_t>(size);
}

ImagenetSourceRecord make_record(const fs::path& source, const std::string& name,
                                 std::int32_t label) {
  ImagenetSourceRecord record;
  record.name = name;
  record.path = (source / name).string();
  record.size = file_size_of(record.path);
  record.label = label;
  return record;
}

std::string trim(const std::string& text) {
  std::size_t begin = text.find_first_not_of(" \t\r\n");
  if (begin == std::string::npos) return "";
  std::size_t end = text.find_last_not_of(" \t\r\n");
  return text.substr(begin, end - begin + 1);
}

std::vector<std::int32_t> read_val_labels(const std::string& labels_path,
                                          const std::vector<std::string>& classes,
                                          std::size_t image_count, const std::string& val_dir) {
  std::ifstream in(labels_path);
  MD_INPUT_CHECK(in.is_open(), labels_path,
                 ": cannot open the labels file of the flat val/ layout (one wnid or 0-based class "
                 "index per line; set it with --val-labels)");
  std::vector<std::string> lines;
  for (std::string line; std::getline(in, line);) lines.push_back(trim(line));
  while (!lines.empty() && lines.back().empty()) lines.pop_back();
  MD_INPUT_CHECK(lines.size() == image_count, labels_path, ": ", lines.size(), " labels for ",
                 image_count, " images in ", val_dir,
                 " (one label per image, in sorted file-name order)");
  std::map<std::string, std::int32_t> index_of;
  for (std::size_t i = 0; i < classes.size(); ++i) {
    index_of[classes[i]] = static_cast<std::int32_t>(i);
  }
  std::vector<std::int32_t> labels;
  labels.reserve(lines.size());
  for (std::size_t i = 0; i < lines.size(); ++i) {
    const std::string& text = lines[i];
    const std::size_t line_number = i + 1;
    MD_INPUT_CHECK(!text.empty(), labels_path, ":", line_number, ": empty label");
    if (std::all_of(text.begin(), text.end(), [](unsigned char c) { return std::isdigit(c); })) {
      MD_INPUT_CHECK(text.size() <= 9 && std::stoll(text) < static_cast<long long>(classes.size()),
                     labels_path, ":", line_number, ": class index ", text, " out of range [0, ",
                     classes.size(), ")");
      labels.push_back(static_cast<std::int32_t>(std::stoll(text)));
    } else {
      auto found = index_of.find(text);
      MD_INPUT_CHECK(found != index_of.end(), labels_path, ":", line_number, ": unknown wnid '",
                     text, "' (not a class directory of train/)");
      labels.push_back(found->second);
    }
  }
  return labels;
}

// ---- progress

std::string format_bytes(double bytes) {
  const char* units[] = {"B", "KB", "MB", "GB", "TB", "PB"};
  int unit = 0;
  while (bytes >= 1000.0 && unit < 5) {
    bytes /= 1000.0;
    ++unit;
  }
  char text[32] = {};
  std::snprintf(text, sizeof text, unit == 0 ? "%.0f %s" : "%.1f %s", bytes, units[unit]);
  return text;
}

// "pack train: 12/1024 shards, 15360/1281167 images, 1.2 GB, 180 MB/s", at most one line per
// interval, and always the final one.
class Progress {
 public:
  Progress(std::string label, std::int64_t total_shards, std::int64_t total_records,
           ProgressSink sink, double interval_s)
      : label_(std::move(label)),
        total_shards_(total_shards),
        total_records_(total_records),
        sink_(std::move(sink)),
        interval_s_(interval_s),
        start_(Clock::now()),
        last_(start_) {}

  void update(std::int64_t shards, std::int64_t records, std::int64_t bytes) {
    if (!sink_) return;
    const bool final = shards == total_shards_;
    const auto now = Clock::now();
    if (!final && std::chrono::duration<double>(now - last_).count() < interval_s_) return;
    last_ = now;
    const double elapsed = std::max(1e-6, std::chrono::duration<double>(now - start_).count());
    sink_(detail::concat(label_, ": ", shards, "/", total_shards_, " shards, ", records, "/",
                         total_records_, " images, ", format_bytes(static_cast<double>(bytes)),
                         ", ", format_bytes(static_cast<double>(bytes) / elapsed), "/s"));
  }

 private:
  using Clock = std::chrono::steady_clock;
  std::string label_;
  std::int64_t total_shards_;
  std::int64_t total_records_;
  ProgressSink sink_;
  double interval_s_;
  Clock::time_point start_;
  Clock::time_point last_;
};

// ---- shuffle

std::uint64_t splitmix64_next(std::uint64_t& state) {
  std::uint64_t value = (state += 0x9e3779b97f4a7c15ULL);
  value = (value ^ (value >> 30)) * 0xbf58476d1ce4e5b9ULL;
  value = (value ^ (value >> 27)) * 0x94d049bb133111ebULL;
  return value ^ (value >> 31);
}

std::uint64_t split_seed(ImagenetSplit split) {
  return kImagenetShuffleSeed + (split == ImagenetSplit::Train ? 0 : 1);
}

// ---- pack helpers

bool is_our_temporary(const std::string& name) {
  const bool temporary = name.size() > 4 && name.compare(name.size() - 4, 4, ".tmp") == 0;
  const bool ours = name.rfind("train-", 0) == 0 || name.rfind("val-", 0) == 0 ||
                    name == std::string(kImagenetManifestName) + ".tmp";
  return temporary && ours;
}

bool is_shard_file_name(const std::string& name) {
  const bool prefix = name.rfind("train-", 0) == 0 || name.rfind("val-", 0) == 0;
  return prefix && name.size() > 3 && name.compare(name.size() - 3, 3, ".h5") == 0 &&
         name.find("-of-") != std::string::npos;
}

// Whether the shard at `path` is the one `plan` wants, intact; fills `entry` when it is.
bool keep_existing_shard(const std::string& path, ImagenetSplit split,
                         const ImagenetShardPlan& plan, ImagenetShardEntry* entry) {
  if (!fs::exists(path)) return false;
  try {
    ImagenetShardHeader header = read_imagenet_shard_header(path);
    if (header.split != split || header.shard_index != plan.index ||
        header.shard_count != plan.shard_count || header.plan_hash != plan.plan_hash) {
      log_info(path, ": from another plan, rewriting it");
      return false;
    }
    ImagenetShardContents contents = read_imagenet_shard_file(path, &header);
    if (imagenet_content_checksum(contents) != header.checksum ||
        imagenet_plan_hash(split, plan.index, plan.shard_count, contents) != plan.plan_hash) {
      log_warning(path, ": content does not match its checksum or plan, rewriting it");
      return false;
    }
    entry->count = contents.count();
    entry->checksum = header.checksum;
    entry->bytes = static_cast<std::int64_t>(fs::file_size(path));
    return true;
  } catch (const InputError& error) {
    log_warning(path, ": unreadable (", error.what(), "), rewriting it");
    return false;
  }
}

ImagenetShardContents load_shard_records(const ImagenetShardPlan& plan) {
  ImagenetShardContents contents;
  contents.bytes.resize(static_cast<std::size_t>(plan.source_bytes()));
  contents.offsets.reserve(plan.records.size() + 1);
  contents.offsets.push_back(0);
  std::int64_t offset = 0;
  for (const ImagenetSourceRecord& record : plan.records) {
    std::ifstream in(record.path, std::ios::binary);
    MD_INPUT_CHECK(in.is_open(), record.path, ": cannot open");
    in.read(reinterpret_cast<char*>(contents.bytes.data() + offset), record.size);
    MD_INPUT_CHECK(in.gcount() == record.size && in.peek() == std::char_traits<char>::eof(),
                   record.path, ": changed while packing (its size is no longer ", record.size,
                   " bytes)");
    offset += record.size;
    contents.offsets.push_back(offset);
    contents.labels.push_back(record.label);
    contents.names.push_back(record.name);
  }
  return contents;
}

}  // namespace

// ---- scan

ImagenetSource scan_imagenet_source(const std::string& source, const std::string& val_labels) {
  const fs::path root(source);
  MD_INPUT_CHECK(fs::is_directory(root), source, ": no such directory (the ImageNet source tree)");
  const fs::path train_dir = root / "train";
  MD_INPUT_CHECK(fs::is_directory(train_dir), train_dir.string(),
                 ": no such directory (expected SRC/train/<wnid>/*.JPEG)");
  ImagenetSource result;
  DirectoryListing train = list_directory(train_dir);
  MD_INPUT_CHECK(!train.directories.empty(), train_dir.string(),
                 ": no class directories (expected train/<wnid>/*.JPEG)");
  if (!train.images.empty() || train.other_files > 0) {
    result.warnings.push_back(
        detail::concat(train_dir.string(), ": ignoring ",
                       train.images.size() + static_cast<std::size_t>(train.other_files),
                       " files outside class directories"));
  }
  result.classes = train.directories;
  std::map<std::string, std::int32_t> index_of;
  for (std::size_t i = 0; i < result.classes.size(); ++i) {
    index_of[result.classes[i]] = static_cast<std::int32_t>(i);
  }

  ImagenetSourceSplit train_split{ImagenetSplit::Train, {}};
  std::int64_t ignored_train_files = 0;
  for (std::size_t label = 0; label < result.classes.size(); ++label) {
    const std::string& wnid = result.classes[label];
    DirectoryListing images = list_directory(train_dir / wnid);
    MD_INPUT_CHECK(!images.images.empty(), (train_dir / wnid).string(),
                   ": no images (.JPEG, .jpg or .jpeg) in this class directory");
    ignored_train_files +=
        images.other_files + static_cast<std::int64_t>(images.directories.size());
    for (const std::string& file : images.images) {
      train_split.records.push_back(
          make_record(root, "train/" + wnid + "/" + file, static_cast<std::int32_t>(label)));
    }
  }
  if (ignored_train_files > 0) {
    result.warnings.push_back(
        detail::concat(train_dir.string(), ": ignoring ", ignored_train_files,
                       " entries of class directories that are not JPEG files"));
  }
  result.splits.push_back(std::move(train_split));

  const fs::path val_dir = root / "val";
  if (!fs::exists(val_dir)) {
    result.warnings.push_back(
        detail::concat(val_dir.string(), ": no such directory, packing the train split only"));
    return result;
  }
  MD_INPUT_CHECK(fs::is_directory(val_dir), val_dir.string(), ": not a directory");
  DirectoryListing val = list_directory(val_dir);
  ImagenetSourceSplit val_split{ImagenetSplit::Val, {}};
  if (!val.directories.empty()) {
    MD_INPUT_CHECK(val.images.empty(), val_dir.string(), ": has both class directories and ",
                   val.images.size(), " images at its top level; use one layout");
    for (const std::string& wnid : val.directories) {
      auto found = index_of.find(wnid);
      MD_INPUT_CHECK(found != index_of.end(), (val_dir / wnid).string(),
                     ": class directory not among train's classes");
      for (const std::string& file : list_directory(val_dir / wnid).images) {
        val_split.records.push_back(make_record(root, "val/" + wnid + "/" + file, found->second));
      }
    }
  } else {
    MD_INPUT_CHECK(!val.images.empty(), val_dir.string(),
                   ": no images (expected val/<wnid>/*.JPEG or val/*.JPEG with a labels file)");
    const std::string labels_path =
        val_labels.empty() ? (root / "val_labels.txt").string() : val_labels;
    std::vector<std::int32_t> labels =
        read_val_labels(labels_path, result.classes, val.images.size(), val_dir.string());
    for (std::size_t i = 0; i < val.images.size(); ++i) {
      val_split.records.push_back(make_record(root, "val/" + val.images[i], labels[i]));
    }
  }
  MD_INPUT_CHECK(!val_split.records.empty(), val_dir.string(), ": no images");
  result.splits.push_back(std::move(val_split));
  return result;
}

// ---- plan

std::int64_t ImagenetShardPlan::source_bytes() const {
  std::int64_t total = 0;
  for (const ImagenetSourceRecord& record : records) total += record.size;
  return total;
}

std::vector<std::int64_t> imagenet_shuffle(std::int64_t count, std::uint64_t seed) {
  std::vector<std::int64_t> order(static_cast<std::size_t>(count));
  for (std::int64_t i = 0; i < count; ++i) order[static_cast<std::size_t>(i)] = i;
  std::uint64_t state = seed;
  for (std::int64_t i = count - 1; i > 0; --i) {
    const unsigned __int128 product =
        static_cast<unsigned __int128>(splitmix64_next(state)) * static_cast<std::uint64_t>(i + 1);
    const auto j = static_cast<std::size_t>(product >> 64);
    std::swap(order[static_cast<std::size_t>(i)], order[j]);
  }
  return order;
}

ImagenetPackPlan plan_imagenet_pack(const ImagenetSource& source,
                                    const ImagenetPlanOptions& options) {
  MD_INPUT_CHECK(options.records_per_shard > 0, "--records-per-shard must be positive, got ",
                 options.records_per_shard);
  MD_INPUT_CHECK(options.train_shards >= 0, "--shards must be positive, got ",
                 options.train_shards);
  MD_CHECK(!source.splits.empty() && source.splits.front().split == ImagenetSplit::Train);
  ImagenetPackPlan plan;
  plan.classes = source.classes;
  double records_per_shard = static_cast<double>(options.records_per_shard);
  for (const ImagenetSourceSplit& split : source.splits) {
    const auto count = static_cast<std::int64_t>(split.records.size());
    std::int64_t shard_count = 0;
    if (split.split == ImagenetSplit::Train && options.train_shards > 0) {
      MD_INPUT_CHECK(options.train_shards <= count, "--shards ", options.train_shards,
                     " exceeds the ", count, " train images");
      shard_count = options.train_shards;
      records_per_shard = static_cast<double>(count) / static_cast<double>(shard_count);
    } else {
      shard_count = std::clamp<std::int64_t>(
          std::llround(static_cast<double>(count) / records_per_shard), 1, count);
      if (split.split == ImagenetSplit::Train) {
        records_per_shard = static_cast<double>(count) / static_cast<double>(shard_count);
      }
    }
    // Names sort as (wnid, file name): the documented record order before the shuffle.
    std::vector<const ImagenetSourceRecord*> sorted;
    for (const ImagenetSourceRecord& record : split.records) sorted.push_back(&record);
    std::sort(sorted.begin(), sorted.end(),
              [](const auto* a, const auto* b) { return a->name < b->name; });
    const std::vector<std::int64_t> order = imagenet_shuffle(count, split_seed(split.split));

    ImagenetSplitPlan split_plan;
    split_plan.split = split.split;
    split_plan.count = count;
    for (std::int64_t shard = 0; shard < shard_count; ++shard) {
      ImagenetShardPlan shard_plan;
      shard_plan.index = shard;
      shard_plan.shard_count = shard_count;
      shard_plan.file = imagenet_shard_file_name(split.split, shard, shard_count);
      const std::int64_t begin = shard * count / shard_count;
      const std::int64_t end = (shard + 1) * count / shard_count;
      std::vector<ImagenetRecordKey> keys;
      for (std::int64_t i = begin; i < end; ++i) {
        const ImagenetSourceRecord& record =
            *sorted[static_cast<std::size_t>(order[static_cast<std::size_t>(i)])];
        shard_plan.records.push_back(record);
        keys.push_back({record.name, record.size, record.label});
      }
      shard_plan.plan_hash = imagenet_plan_hash(split.split, shard, shard_count, keys);
      split_plan.shards.push_back(std::move(shard_plan));
    }
    plan.splits.push_back(std::move(split_plan));
  }
  return plan;
}

// ---- pack

ImagenetPackSummary pack_imagenet(const ImagenetPackOptions& options) {
  ImagenetSource source = scan_imagenet_source(options.source, options.val_labels);
  for (const std::string& warning : source.warnings) log_warning(warning);
  const ImagenetPackPlan plan = plan_imagenet_pack(source, options.plan);

  const fs::path destination(options.destination);
  std::error_code error;
  fs::create_directories(destination, error);
  MD_INPUT_CHECK(!error && fs::is_directory(destination), options.destination,
                 ": cannot create the output directory", error ? ": " + error.message() : "");
  // The pack is incomplete from here until the new manifest is renamed into place.
  fs::remove(imagenet_manifest_path(options.destination), error);
  std::vector<std::string> planned_files;
  for (const ImagenetSplitPlan& split : plan.splits) {
    for (const ImagenetShardPlan& shard : split.shards) planned_files.push_back(shard.file);
  }
  for (const fs::directory_entry& entry : fs::directory_iterator(destination)) {
    const std::string name = entry.path().filename().string();
    if (is_our_temporary(name)) {
      log_info(entry.path().string(), ": removing a leftover temporary file");
      fs::remove(entry.path());
    } else if (is_shard_file_name(name) &&
               std::find(planned_files.begin(), planned_files.end(), name) == planned_files.end()) {
      log_warning(entry.path().string(), ": not part of this pack's plan (left in place)");
    }
  }

  ImagenetPackSummary summary;
  ImagenetManifest manifest;
  manifest.classes = plan.classes;
  for (const ImagenetSplitPlan& split : plan.splits) {
    const char* split_name = imagenet_split_name(split.split);
    ImagenetSplitManifest split_manifest;
    split_manifest.split = split.split;
    split_manifest.count = split.count;
    Progress progress(detail::concat("pack ", split_name),
                      static_cast<std::int64_t>(split.shards.size()), split.count, options.progress,
                      options.progress_interval_s);
    std::int64_t records_done = 0, bytes_done = 0;
    progress.update(0, 0, 0);
    for (const ImagenetShardPlan& shard : split.shards) {
      const std::string path = (destination / shard.file).string();
      ImagenetShardEntry entry;
      entry.file = shard.file;
      if (keep_existing_shard(path, split.split, shard, &entry)) {
        ++summary.shards_kept;
      } else {
        ImagenetShardContents contents = load_shard_records(shard);
        ImagenetShardHeader header;
        header.split = split.split;
        header.shard_index = shard.index;
        header.shard_count = shard.shard_count;
        header.plan_hash = shard.plan_hash;
        header.checksum = imagenet_content_checksum(contents);
        write_imagenet_shard_file(path, header, contents);
        entry.count = contents.count();
        entry.checksum = header.checksum;
        entry.bytes = static_cast<std::int64_t>(fs::file_size(path));
        ++summary.shards_written;
      }
      records_done += entry.count;
      bytes_done += shard.source_bytes();
      split_manifest.shards.push_back(entry);
      progress.update(shard.index + 1, records_done, bytes_done);
      if (interrupt_requested()) {
        throw Interrupted(detail::concat("interrupted by signal ", interrupt_signal(), " after ",
                                         split_name, " shard ", shard.index + 1, " of ",
                                         shard.shard_count, " was committed to ", path,
                                         "; rerun the same command to resume"));
      }
    }
    summary.records += records_done;
    summary.bytes += bytes_done;
    manifest.splits.push_back(std::move(split_manifest));
  }
  write_imagenet_manifest(options.destination, manifest);
  return summary;
}

// ---- verify

ImagenetVerifyReport verify_imagenet_pack(const std::string& root,
                                          const ImagenetVerifyOptions& options) {
  const ImagenetManifest manifest = read_imagenet_manifest(root);
  const int threads = options.threads > 0
                          ? options.threads
                          : std::max(1, static_cast<int>(std::thread::hardware_concurrency()));
  ImagenetVerifyReport report;
  for (const ImagenetSplitManifest& split_manifest : manifest.splits) {
    const ImagenetShards shards = ImagenetShards::open(root, split_manifest.split);
    ImagenetVerifySplit totals;
    totals.split = split_manifest.split;
    Progress progress(detail::concat("verify ", imagenet_split_name(split_manifest.split)),
                      shards.num_shards(), shards.count(), options.progress,
                      options.progress_interval_s);
    progress.update(0, 0, 0);
    for (std::int64_t shard = 0; shard < shards.num_shards(); ++shard) {
      const std::string path = shards.shard_path(shard);
      ImagenetShardContents contents = shards.read(shard);
      const ImagenetShardHeader header = read_imagenet_shard_header(path);
      const std::uint64_t plan_hash =
          imagenet_plan_hash(split_manifest.split, shard, shards.num_shards(), contents);
      MD_INPUT_CHECK(plan_hash == header.plan_hash, path, ": plan_hash ",
                     hash_to_hex(header.plan_hash), " does not match its records (",
                     hash_to_hex(plan_hash), "): names, sizes or labels were altered");
      if (options.check) {
        std::vector<std::string> reasons(static_cast<std::size_t>(contents.count()));
        std::atomic<std::int64_t> next{0};
        auto worker = [&]() {
          for (std::int64_t i = next++; i < contents.count(); i = next++) {
            const auto index = static_cast<std::size_t>(i);
            const std::int64_t begin = contents.offsets[index];
            const auto size = static_cast<std::size_t>(contents.offsets[index + 1] - begin);
            try {
              reasons[index] = options.check(contents.bytes.data() + begin, size);
            } catch (const std::exception& check_error) {
              reasons[index] = detail::concat("image check failed: ", check_error.what());
            }
          }
        };
        std::vector<std::thread> pool;
        const auto extra = std::min<std::int64_t>(threads, contents.count()) - 1;
        for (std::int64_t t = 0; t < extra; ++t) pool.emplace_back(worker);
        worker();
        for (std::thread& thread : pool) thread.join();
        for (std::size_t i = 0; i < reasons.size(); ++i) {
          if (!reasons[i].empty()) {
            report.corrupt.push_back(
                {fs::path(path).filename().string(), contents.names[i], reasons[i]});
          }
        }
      }
      ++totals.shards;
      totals.records += contents.count();
      totals.bytes += static_cast<std::int64_t>(contents.bytes.size());
      progress.update(totals.shards, totals.records, totals.bytes);
    }
    report.splits.push_back(totals);
  }
  return report;
}

}  // namespace md::io
