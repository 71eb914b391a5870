// Tests of pack-imagenet and the ImageNet shard reader (io/imagenet_pack.h, io/imagenet_shards.h)
// on small synthetic trees of real JPEG files (tests/support/imagenet_tree.h): contents and
// labels survive packing byte for byte, shards are near-equal and mix classes, bad input names
// its file, resume and interruption end byte-identical to an uninterrupted pack, verify finds
// corrupt records and damaged shards, staging copies once. The PackCli tests run the real
// binary when MD_METADISTILL is set (the pack_imagenet_cli ctest), and skip otherwise.
#include <sys/wait.h>

#include <algorithm>
#include <csignal>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <set>
#include <thread>

#include "core/error.h"
#include "core/interrupt.h"
#include "io/imagenet_pack.h"
#include "io/imagenet_shards.h"
#include "io_test_util.h"
#include "support/imagenet_tree.h"

namespace md::io {
namespace {

namespace fs = std::filesystem;
using test::expect_input_error;
using test::ImagenetTree;
using test::ImagenetTreeSpec;
using test::TempDir;
using test::ValLayout;
using test::write_imagenet_tree;

std::string read_all(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

ImagenetPackOptions pack_options(const std::string& source, const std::string& destination,
                                 std::int64_t train_shards) {
  ImagenetPackOptions options;
  options.source = source;
  options.destination = destination;
  options.plan.train_shards = train_shards;
  return options;
}

// Every file of a directory (name -> bytes).
std::map<std::string, std::string> directory_files(const std::string& dir) {
  std::map<std::string, std::string> files;
  for (const auto& entry : fs::directory_iterator(dir)) {
    files[entry.path().filename().string()] = read_all(entry.path().string());
  }
  return files;
}

int class_index(const ImagenetTree& tree, const std::string& name) {
  const std::string& wnid = tree.class_of.at(name);
  return static_cast<int>(std::find(tree.classes.begin(), tree.classes.end(), wnid) -
                          tree.classes.begin());
}

// Reads every shard of a split and checks each record against the source tree.
void expect_split_matches_tree(const std::string& pack, ImagenetSplit split,
                               const std::string& source, const ImagenetTree& tree,
                               std::int64_t expected_count) {
  const ImagenetShards shards = ImagenetShards::open(pack, split);
  EXPECT_EQ(shards.count(), expected_count);
  EXPECT_EQ(shards.class_names(), tree.classes);
  std::set<std::string> seen;
  for (std::int64_t shard = 0; shard < shards.num_shards(); ++shard) {
    const ImagenetShardContents contents = shards.read(shard);
    EXPECT_EQ(contents.count(), shards.shard_sizes()[static_cast<std::size_t>(shard)]);
    for (std::int64_t i = 0; i < contents.count(); ++i) {
      const auto index = static_cast<std::size_t>(i);
      const std::string& name = contents.names[index];
      ASSERT_TRUE(tree.class_of.count(name)) << name;
      EXPECT_TRUE(seen.insert(name).second) << name << " appears twice";
      EXPECT_EQ(contents.labels[index], class_index(tree, name)) << name;
      const std::string bytes(
          reinterpret_cast<const char*>(contents.bytes.data()) + contents.offsets[index],
          static_cast<std::size_t>(contents.offsets[index + 1] - contents.offsets[index]));
      EXPECT_EQ(bytes, read_all(source + "/" + name)) << name;
    }
  }
  EXPECT_EQ(static_cast<std::int64_t>(seen.size()), expected_count);
}

TEST(ImagenetPack, PacksEveryRecordWithItsLabelAndBytes) {
  TempDir dir;
  const std::string source = dir.file("src"), pack = dir.file("pack");
  ImagenetTree tree = write_imagenet_tree(source, {.classes = 5,
                                                   .train_per_class = 9,
                                                   .val_per_class = 3,
                                                   .val_layout = ValLayout::PerClassDirs,
                                                   .corrupt_files = 1});
  std::vector<std::string> lines;
  ImagenetPackOptions options = pack_options(source, pack, 3);
  options.progress = [&](const std::string& line) { lines.push_back(line); };
  const ImagenetPackSummary summary = pack_imagenet(options);
  EXPECT_EQ(summary.shards_written, 4);  // 3 train + 1 val (15 records per shard, 15 val images)
  EXPECT_EQ(summary.shards_kept, 0);
  EXPECT_EQ(summary.records, 60);

  expect_split_matches_tree(pack, ImagenetSplit::Train, source, tree, 45);
  expect_split_matches_tree(pack, ImagenetSplit::Val, source, tree, 15);

  const ImagenetShards train = ImagenetShards::open(pack, ImagenetSplit::Train);
  EXPECT_EQ(train.shard_sizes(), (std::vector<std::int64_t>{15, 15, 15}));
  EXPECT_EQ(train.shard_path(1), pack + "/train-00001-of-00003.h5");
  for (std::int64_t shard = 0; shard < 3; ++shard) {
    const ImagenetShardContents contents = train.read(shard);
    std::set<std::int32_t> labels(contents.labels.begin(), contents.labels.end());
    EXPECT_GE(labels.size(), 3u) << "shard " << shard << " does not mix classes";
  }
  ASSERT_FALSE(lines.empty());
  EXPECT_EQ(lines.back().rfind("pack val: 1/1 shards, 15/15 images, ", 0), 0u) << lines.back();
  EXPECT_NE(std::find_if(lines.begin(), lines.end(),
                         [](const std::string& line) {
                           return line.rfind("pack train: 3/3 shards, 45/45 images, ", 0) == 0 &&
                                  line.find("B/s") != std::string::npos;
                         }),
            lines.end());
}

TEST(ImagenetPack, ManifestListsClassesSplitsAndShards) {
  TempDir dir;
  const std::string source = dir.file("src"), pack = dir.file("pack");
  ImagenetTree tree = write_imagenet_tree(source, {.classes = 4, .train_per_class = 6});
  pack_imagenet(pack_options(source, pack, 2));
  const ImagenetManifest manifest = read_imagenet_manifest(pack);
  EXPECT_EQ(manifest.format_version, 1);
  EXPECT_EQ(manifest.classes, tree.classes);
  ASSERT_EQ(manifest.splits.size(), 2u);
  const ImagenetSplitManifest& train = manifest.splits[0];
  EXPECT_EQ(train.split, ImagenetSplit::Train);
  EXPECT_EQ(train.count, 24);
  ASSERT_EQ(train.shards.size(), 2u);
  for (std::size_t i = 0; i < 2; ++i) {
    const ImagenetShardEntry& entry = train.shards[i];
    EXPECT_EQ(entry.file, imagenet_shard_file_name(ImagenetSplit::Train, static_cast<int>(i), 2));
    EXPECT_EQ(entry.count, 12);
    EXPECT_EQ(entry.bytes, static_cast<std::int64_t>(fs::file_size(pack + "/" + entry.file)));
    EXPECT_EQ(entry.checksum, read_imagenet_shard_header(pack + "/" + entry.file).checksum);
  }
  ASSERT_NE(manifest.find(ImagenetSplit::Val), nullptr);
  EXPECT_EQ(manifest.find(ImagenetSplit::Val)->count, 8);
  EXPECT_EQ(manifest.find(ImagenetSplit::Val)->shards.size(), 1u);  // round(8 / 12) = 1
  const std::string text = read_all(pack + "/manifest.yaml");
  EXPECT_NE(text.find("train-00001-of-00002.h5"), std::string::npos) << text;
  EXPECT_NE(text.find(tree.classes[3]), std::string::npos) << text;

  const ImagenetShardHeader header = read_imagenet_shard_header(pack + "/train-00001-of-00002.h5");
  EXPECT_EQ(header.split, ImagenetSplit::Train);
  EXPECT_EQ(header.shard_index, 1);
  EXPECT_EQ(header.shard_count, 2);
}

TEST(ImagenetPack, ShardsAreNearEqualAndDefaultCountFollowsRecordsPerShard) {
  TempDir dir;
  const std::string source = dir.file("src");
  write_imagenet_tree(source, {.classes = 5, .train_per_class = 9, .val_per_class = 2});
  ImagenetSource scanned = scan_imagenet_source(source, "");
  const ImagenetPackPlan plan = plan_imagenet_pack(scanned, {.train_shards = 4});
  ASSERT_EQ(plan.splits[0].shards.size(), 4u);
  std::vector<std::size_t> sizes;
  for (const auto& shard : plan.splits[0].shards) sizes.push_back(shard.records.size());
  EXPECT_LE(
      *std::max_element(sizes.begin(), sizes.end()) - *std::min_element(sizes.begin(), sizes.end()),
      1u);
  const ImagenetPackPlan by_target =
      plan_imagenet_pack(scanned, {.train_shards = 0, .records_per_shard = 10});
  EXPECT_EQ(by_target.splits[0].shards.size(), 5u);  // round(45 / 10) -> 4.5 -> 5 (llround)
  EXPECT_EQ(by_target.splits[1].shards.size(), 1u);  // 10 val images at 9 per shard
  expect_input_error([&] { plan_imagenet_pack(scanned, {.train_shards = 46}); },
                     {"--shards 46", "45 train images"});

  const std::vector<std::int64_t> order = imagenet_shuffle(1000, kImagenetShuffleSeed);
  std::vector<std::int64_t> sorted = order;
  std::sort(sorted.begin(), sorted.end());
  for (std::int64_t i = 0; i < 1000; ++i) ASSERT_EQ(sorted[static_cast<std::size_t>(i)], i);
  EXPECT_NE(order, sorted);
  EXPECT_EQ(order, imagenet_shuffle(1000, kImagenetShuffleSeed));
}

TEST(ImagenetPack, FlatValWithWnidLabels) {
  TempDir dir;
  const std::string source = dir.file("src"), pack = dir.file("pack");
  ImagenetTree tree = write_imagenet_tree(source, {.classes = 4,
                                                   .train_per_class = 3,
                                                   .val_per_class = 3,
                                                   .val_layout = ValLayout::FlatWithWnidLabels});
  pack_imagenet(pack_options(source, pack, 1));
  expect_split_matches_tree(pack, ImagenetSplit::Val, source, tree, 12);
}

TEST(ImagenetPack, FlatValWithIndexLabelsFromAnotherFile) {
  TempDir dir;
  const std::string source = dir.file("src"), pack = dir.file("pack");
  ImagenetTree tree = write_imagenet_tree(source, {.classes = 4,
                                                   .train_per_class = 3,
                                                   .val_per_class = 3,
                                                   .val_layout = ValLayout::FlatWithIndexLabels});
  const std::string moved = dir.file("labels_elsewhere.txt");
  fs::rename(tree.val_labels, moved);
  expect_input_error([&] { pack_imagenet(pack_options(source, pack, 1)); },
                     {"val_labels.txt", "--val-labels"});
  ImagenetPackOptions options = pack_options(source, pack, 1);
  options.val_labels = moved;
  pack_imagenet(options);
  expect_split_matches_tree(pack, ImagenetSplit::Val, source, tree, 12);
}

TEST(ImagenetPack, BadInputNamesTheFile) {
  TempDir dir;
  const std::string pack = dir.file("pack");
  auto pack_source = [&](const std::string& source) {
    return [source, pack] { pack_imagenet(pack_options(source, pack, 0)); };
  };
  // No SRC, no SRC/train, no classes.
  expect_input_error(pack_source(dir.file("missing")), {dir.file("missing")});
  fs::create_directories(dir.file("no_train/val"));
  expect_input_error(pack_source(dir.file("no_train")), {dir.file("no_train/train")});
  fs::create_directories(dir.file("no_classes/train"));
  expect_input_error(pack_source(dir.file("no_classes")),
                     {dir.file("no_classes/train"), "no class directories"});
  // A class without images.
  write_imagenet_tree(dir.file("empty_class"), {.classes = 2});
  fs::create_directories(dir.file("empty_class/train/n09999999"));
  std::ofstream(dir.file("empty_class/train/n09999999/readme.txt")) << "not an image";
  expect_input_error(pack_source(dir.file("empty_class")),
                     {dir.file("empty_class/train/n09999999"), "no images"});
  // A val class directory that train does not have.
  write_imagenet_tree(dir.file("val_class"), {.classes = 2});
  fs::create_directories(dir.file("val_class/val/n09999999"));
  expect_input_error(pack_source(dir.file("val_class")),
                     {dir.file("val_class/val/n09999999"), "not among train's classes"});

  // Flat val labels: count, unknown wnid, index out of range, empty line.
  const std::string flat = dir.file("flat");
  ImagenetTree tree = write_imagenet_tree(
      flat, {.classes = 3, .val_per_class = 1, .val_layout = ValLayout::FlatWithWnidLabels});
  const std::string labels = tree.val_labels;
  std::ofstream(labels) << tree.classes[0] << "\n" << tree.classes[1] << "\n";
  expect_input_error(pack_source(flat), {labels, "2 labels for 3 images"});
  std::ofstream(labels) << tree.classes[0] << "\nn00000000\n" << tree.classes[1] << "\n";
  expect_input_error(pack_source(flat), {labels + ":2", "unknown wnid 'n00000000'"});
  std::ofstream(labels) << "3\n0\n1\n";
  expect_input_error(pack_source(flat), {labels + ":1", "class index 3 out of range [0, 3)"});
  std::ofstream(labels) << "0\n\n1\n";
  expect_input_error(pack_source(flat), {labels + ":2", "empty label"});
  std::ofstream(labels) << "0\n2\n1\n\n";  // trailing blank lines are fine
  EXPECT_NO_THROW(pack_imagenet(pack_options(flat, pack, 0)));
}

TEST(ImagenetPack, WithoutValPacksTrainOnly) {
  TempDir dir;
  const std::string source = dir.file("src"), pack = dir.file("pack");
  write_imagenet_tree(source, {.classes = 2, .val_layout = ValLayout::None});
  const ImagenetSource scanned = scan_imagenet_source(source, "");
  ASSERT_EQ(scanned.warnings.size(), 1u);
  EXPECT_NE(scanned.warnings[0].find("train split only"), std::string::npos);
  pack_imagenet(pack_options(source, pack, 0));
  EXPECT_EQ(ImagenetShards::open(pack, ImagenetSplit::Train).count(), 8);
  expect_input_error([&] { ImagenetShards::open(pack, ImagenetSplit::Val); },
                     {pack + "/manifest.yaml", "'val' has no shards"});
}

TEST(ImagenetPack, ResumeIsByteIdenticalToAnUninterruptedPack) {
  TempDir dir;
  const std::string source = dir.file("src"), full = dir.file("full"),
                    resumed = dir.file("resumed");
  write_imagenet_tree(source,
                      {.classes = 4, .train_per_class = 8, .val_per_class = 2, .corrupt_files = 2});
  pack_imagenet(pack_options(source, full, 4));
  // A second apart, so that any time stamp in the HDF5 files would differ.
  std::this_thread::sleep_for(std::chrono::milliseconds(1100));
  pack_imagenet(pack_options(source, resumed, 4));
  fs::remove(resumed + "/train-00003-of-00004.h5");
  fs::remove(resumed + "/val-00000-of-00001.h5");
  fs::remove(resumed + "/manifest.yaml");
  std::ofstream(resumed + "/train-00003-of-00004.h5.tmp") << "half-written shard";
  std::ofstream(resumed + "/manifest.yaml.tmp") << "half-written manifest";
  std::this_thread::sleep_for(std::chrono::milliseconds(1100));
  const ImagenetPackSummary summary = pack_imagenet(pack_options(source, resumed, 4));
  EXPECT_EQ(summary.shards_kept, 3);
  EXPECT_EQ(summary.shards_written, 2);
  const auto expected = directory_files(full);
  const auto actual = directory_files(resumed);
  ASSERT_EQ(expected.size(), 6u);  // 4 train + 1 val + manifest
  ASSERT_EQ(actual.size(), expected.size());
  for (const auto& [name, bytes] : expected) {
    ASSERT_TRUE(actual.count(name)) << name;
    EXPECT_TRUE(actual.at(name) == bytes) << name << " differs";
  }

  // A shard whose content was damaged is rewritten, not kept.
  {
    std::fstream file(resumed + "/train-00000-of-00004.h5",
                      std::ios::in | std::ios::out | std::ios::binary);
    file.seekp(
        static_cast<std::streamoff>(fs::file_size(resumed + "/train-00000-of-00004.h5") / 2));
    file.put('\x5a');
  }
  const ImagenetPackSummary repaired = pack_imagenet(pack_options(source, resumed, 4));
  EXPECT_EQ(repaired.shards_written, 1);
  EXPECT_TRUE(directory_files(resumed) == expected);
}

TEST(ImagenetPack, InterruptStopsBetweenShardsAndARerunCompletes) {
  TempDir dir;
  const std::string source = dir.file("src"), full = dir.file("full"), pack = dir.file("pack");
  write_imagenet_tree(source, {.classes = 3, .train_per_class = 6, .val_per_class = 2});
  pack_imagenet(pack_options(source, full, 3));
  request_interrupt(SIGTERM);
  try {
    pack_imagenet(pack_options(source, pack, 3));
    ADD_FAILURE() << "expected md::Interrupted";
  } catch (const Interrupted& error) {
    EXPECT_NE(std::string(error.what()).find("train shard 1 of 3"), std::string::npos)
        << error.what();
  }
  clear_interrupt();
  EXPECT_TRUE(fs::exists(pack + "/train-00000-of-00003.h5"));
  EXPECT_FALSE(fs::exists(pack + "/train-00001-of-00003.h5"));
  EXPECT_FALSE(fs::exists(pack + "/manifest.yaml"));
  expect_input_error([&] { ImagenetShards::open(pack, ImagenetSplit::Train); },
                     {pack + "/manifest.yaml"});
  const ImagenetPackSummary summary = pack_imagenet(pack_options(source, pack, 3));
  EXPECT_EQ(summary.shards_kept, 1);
  EXPECT_TRUE(directory_files(pack) == directory_files(full));
}

// A stand-in for data::check_jpeg: the SOI marker first, the EOI marker last.
std::string check_markers(const std::uint8_t* bytes, std::size_t size) {
  if (size < 4 || bytes[0] != 0xff || bytes[1] != 0xd8) return "not a JPEG";
  if (bytes[size - 2] != 0xff || bytes[size - 1] != 0xd9) return "premature end of data";
  return "";
}

TEST(ImagenetPack, VerifyReportsCorruptRecordsAndFailsOnADamagedShard) {
  TempDir dir;
  const std::string source = dir.file("src"), pack = dir.file("pack");
  ImagenetTree tree = write_imagenet_tree(
      source, {.classes = 4, .train_per_class = 5, .val_per_class = 2, .corrupt_files = 2});
  pack_imagenet(pack_options(source, pack, 2));
  ImagenetVerifyOptions options;
  options.check = check_markers;
  options.threads = 3;
  const ImagenetVerifyReport report = verify_imagenet_pack(pack, options);
  ASSERT_EQ(report.splits.size(), 2u);
  EXPECT_EQ(report.splits[0].records, 20);
  EXPECT_EQ(report.splits[0].shards, 2);
  EXPECT_EQ(report.splits[1].records, 8);
  std::set<std::string> corrupt;
  for (const ImagenetCorruptRecord& record : report.corrupt) {
    corrupt.insert(record.name);
    EXPECT_EQ(record.shard_file.rfind("train-0000", 0), 0u) << record.shard_file;
  }
  EXPECT_EQ(corrupt, std::set<std::string>(tree.corrupt.begin(), tree.corrupt.end()));
  ASSERT_EQ(report.corrupt.size(), 2u);
  EXPECT_NE(report.corrupt[0].reason, "");

  // Flip one byte of a record inside a shard file: the checksum no longer matches.
  const std::string shard = pack + "/train-00001-of-00002.h5";
  std::string bytes = read_all(shard);
  const ImagenetShardContents contents = ImagenetShards::open(pack, ImagenetSplit::Train).read(1);
  const std::string record(reinterpret_cast<const char*>(contents.bytes.data()) + 100, 64);
  const std::size_t at = bytes.find(record);
  ASSERT_NE(at, std::string::npos);
  bytes[at + 10] = static_cast<char>(bytes[at + 10] ^ 0x01);
  std::ofstream(shard, std::ios::binary | std::ios::trunc) << bytes;
  expect_input_error([&] { verify_imagenet_pack(pack, options); }, {shard, "checksum"});
  expect_input_error([&] { ImagenetShards::open(pack, ImagenetSplit::Train).read(1); },
                     {shard, "checksum"});
}

TEST(ImagenetShards, ReaderErrorsNameTheFile) {
  TempDir dir;
  const std::string source = dir.file("src"), pack = dir.file("pack");
  write_imagenet_tree(source, {.classes = 2, .train_per_class = 4});
  expect_input_error([&] { ImagenetShards::open(pack, ImagenetSplit::Train); },
                     {pack + "/manifest.yaml", "no such file"});
  pack_imagenet(pack_options(source, pack, 2));
  const ImagenetShards shards = ImagenetShards::open(pack, ImagenetSplit::Train);
  const std::string shard = pack + "/train-00000-of-00002.h5";
  test::truncate_file(shard, 0.7);
  expect_input_error([&] { shards.read(0); }, {shard});
  expect_input_error([&] { read_imagenet_shard_file(shard, nullptr); }, {shard});
  fs::remove(shard);
  expect_input_error([&] { shards.read(0); }, {shard});

  // Malformed manifests name the key.
  const std::string manifest = read_all(pack + "/manifest.yaml");
  auto write_manifest = [&](const std::string& text) {
    std::ofstream(pack + "/manifest.yaml", std::ios::trunc) << text;
  };
  std::string bad = manifest;
  bad.replace(bad.find("format_version: 1"), 17, "format_version: 7");
  write_manifest(bad);
  expect_input_error([&] { ImagenetShards::open(pack, ImagenetSplit::Train); },
                     {"manifest.yaml", "format_version 7"});
  bad = manifest;
  bad.replace(bad.find("count: 8"), 8, "count: 9");
  write_manifest(bad);
  expect_input_error([&] { ImagenetShards::open(pack, ImagenetSplit::Train); },
                     {"manifest.yaml", "splits.train.count"});
  write_manifest("format_version: 1\nclasses: [a]\n");
  expect_input_error([&] { ImagenetShards::open(pack, ImagenetSplit::Train); },
                     {"manifest.yaml", "'splits' is missing"});
  write_manifest("{ not yaml");
  expect_input_error([&] { ImagenetShards::open(pack, ImagenetSplit::Train); },
                     {"manifest.yaml", "not valid YAML"});
}

TEST(ImagenetShards, StagingCopiesOnceAndReadsLocally) {
  TempDir dir;
  const std::string source = dir.file("src"), pack = dir.file("pack"), local = dir.file("local");
  write_imagenet_tree(source, {.classes = 3, .train_per_class = 4, .val_per_class = 1});
  pack_imagenet(pack_options(source, pack, 2));
  EXPECT_EQ(stage_imagenet_shards(pack, local), local);
  auto staged = directory_files(local);
  staged.erase(".stage.lock");
  EXPECT_TRUE(staged == directory_files(pack));

  // A kept file (right size) is not copied again; a wrong-sized one is replaced.
  const std::string kept = local + "/train-00000-of-00002.h5";
  const auto old_time = fs::file_time_type::clock::now() - std::chrono::hours(24);
  fs::last_write_time(kept, old_time);
  std::ofstream(local + "/train-00001-of-00002.h5", std::ios::trunc) << "partial";
  // Several ranks of a node at once.
  std::vector<std::thread> ranks;
  for (int rank = 0; rank < 3; ++rank) {
    ranks.emplace_back([&] { stage_imagenet_shards(pack, local); });
  }
  for (std::thread& rank : ranks) rank.join();
  EXPECT_EQ(fs::last_write_time(kept), old_time);
  staged = directory_files(local);
  staged.erase(".stage.lock");
  EXPECT_TRUE(staged == directory_files(pack));
  const ImagenetShards shards = ImagenetShards::open(local, ImagenetSplit::Train);
  EXPECT_EQ(shards.read(1).count(), 6);
  expect_input_error([&] { stage_imagenet_shards(dir.file("nothing"), dir.file("local2")); },
                     {dir.file("nothing") + "/manifest.yaml"});
}

TEST(ImagenetShards, HashesAreStableAndSensitive) {
  const std::string text = "train/n01440764/n01440764_10026.JPEG";
  const std::uint64_t hash = imagenet_hash64(text.data(), text.size(), 0);
  EXPECT_EQ(hash, imagenet_hash64(text.data(), text.size(), 0));
  EXPECT_NE(hash, imagenet_hash64(text.data(), text.size() - 1, 0));
  EXPECT_NE(hash, imagenet_hash64(text.data(), text.size(), 1));
  const std::string zero_padded = std::string("abc") + '\0';
  EXPECT_NE(imagenet_hash64("abc", 3, 0), imagenet_hash64(zero_padded.data(), 4, 0));
  std::string flipped = text;
  flipped[5] = static_cast<char>(flipped[5] ^ 0x20);
  EXPECT_NE(hash, imagenet_hash64(flipped.data(), flipped.size(), 0));
  EXPECT_EQ(hash_to_hex(0x0123456789abcdefULL), "0123456789abcdef");
  EXPECT_EQ(imagenet_shard_file_name(ImagenetSplit::Val, 3, 128), "val-00003-of-00128.h5");
}

// ---- the real binary (the pack_imagenet_cli ctest sets MD_METADISTILL)

struct CommandResult {
  int exit_status = -1;
  std::string out;
};

CommandResult run_binary(const std::string& arguments, const TempDir& dir) {
  const char* binary = std::getenv("MD_METADISTILL");
  const std::string out = dir.file("cli_stdout.txt");
  const std::string command =
      std::string(binary) + " pack-imagenet " + arguments + " > " + out + " 2>&1";
  const int status = std::system(command.c_str());
  return {WIFEXITED(status) ? WEXITSTATUS(status) : -1, read_all(out)};
}

TEST(PackCli, MissingSourceIsBadInputAndAPackVerifies) {
  if (std::getenv("MD_METADISTILL") == nullptr) {
    GTEST_SKIP() << "MD_METADISTILL is not set (run by the pack_imagenet_cli ctest)";
  }
  TempDir dir;
  CommandResult missing = run_binary(dir.file("missing") + " " + dir.file("pack"), dir);
  EXPECT_EQ(missing.exit_status, 2) << missing.out;
  EXPECT_NE(missing.out.find(dir.file("missing")), std::string::npos) << missing.out;

  const std::string source = dir.file("src"), pack = dir.file("pack");
  ImagenetTree tree = write_imagenet_tree(
      source, {.classes = 3, .train_per_class = 4, .val_per_class = 2, .corrupt_files = 1});
  CommandResult packed = run_binary(source + " " + pack + " --shards 2", dir);
  EXPECT_EQ(packed.exit_status, 0) << packed.out;
  EXPECT_NE(packed.out.find("pack train: 2/2 shards, 12/12 images"), std::string::npos)
      << packed.out;
  CommandResult verified = run_binary("--verify " + pack, dir);
  EXPECT_EQ(verified.exit_status, 0) << verified.out;
  EXPECT_NE(verified.out.find("corrupt: " + tree.corrupt[0]), std::string::npos) << verified.out;
  EXPECT_NE(verified.out.find("corrupt images: 1 of 18"), std::string::npos) << verified.out;

  test::truncate_file(pack + "/val-00000-of-00001.h5", 0.5);
  CommandResult damaged = run_binary("--verify " + pack, dir);
  EXPECT_EQ(damaged.exit_status, 2) << damaged.out;
  EXPECT_NE(damaged.out.find("val-00000-of-00001.h5"), std::string::npos) << damaged.out;
}

}  // namespace
}  // namespace md::io
