// The file schema of io/log_schema.h: a file of a newer version than this build reads (trial log,
// checkpoint, ImageNet shard and manifest) is an md::InputError naming the file and both
// versions, older and current versions load, a checkpoint without a version (PyTorch) loads; the
// status names round-trip; a new trial log's root attributes are the documented set, and
// record_status marks a log as the trainer and the scheduler need.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <set>
#include <string>

#include "io/checkpoint.h"
#include "io/imagenet_shards.h"
#include "io/log_schema.h"
#include "io/trial_log.h"
#include "io_test_util.h"

namespace md::io {
namespace {

// The parts a newer-version error must name: the file, the version found and this build's.
std::vector<std::string> newer_parts(const std::string& path, const std::string& key,
                                     std::int64_t current) {
  return {path, key + " " + std::to_string(current + 1), "1 to " + std::to_string(current)};
}

TEST(LogSchema, NewerTrialLogIsAnInputErrorNamingFileAndVersions) {
  test::TempDir dir;
  const std::string path = dir.file("newer.h5");
  write_checkpoint(path, CheckpointData{{{"schema_version", kTrialLogSchemaVersion + 1}}, {}, {}});
  const auto parts = newer_parts(path, "schema_version", kTrialLogSchemaVersion);
  test::expect_input_error([&] { read_trial_log(path); }, parts);
  test::expect_input_error([&] { TrialLog::open(path, OpenMode::Resume); }, parts);
}

TEST(LogSchema, NewerCheckpointIsAnInputErrorAndOlderOrUnversionedOnesLoad) {
  test::TempDir dir;
  const std::string newer = dir.file("newer.ckpt.h5");
  CheckpointData data;
  data.attributes = {{"arch", std::string("resnet20")},
                     {"schema_version", kCheckpointSchemaVersion + 1}};
  data.groups["model"] = {{"fc.bias", Tensor::zeros({2})}};
  write_checkpoint(newer, data);
  test::expect_input_error([&] { read_checkpoint(newer); },
                           newer_parts(newer, "schema_version", kCheckpointSchemaVersion));

  for (std::int64_t version = 1; version <= kCheckpointSchemaVersion; ++version) {
    const std::string path = dir.file("v" + std::to_string(version) + ".ckpt.h5");
    data.attributes["schema_version"] = version;
    write_checkpoint(path, data);
    EXPECT_EQ(attribute_int(read_checkpoint(path).attributes, "schema_version", path), version);
  }
  const std::string unversioned = dir.file("torch.ckpt.h5");
  data.attributes.erase("schema_version");
  write_checkpoint(unversioned, data);
  EXPECT_EQ(read_checkpoint(unversioned).groups.at("model").size(), 1u);

  const std::string invalid = dir.file("zero.ckpt.h5");
  data.attributes["schema_version"] = std::int64_t{0};
  write_checkpoint(invalid, data);
  test::expect_input_error([&] { read_checkpoint(invalid); }, {invalid, "schema_version 0"});
}

TEST(LogSchema, NewerImagenetShardAndManifestAreInputErrors) {
  test::TempDir dir;
  const std::string shard = dir.file("train-00000-of-00001.h5");
  write_checkpoint(shard, CheckpointData{{{"schema_version", kImagenetShardSchemaVersion + 1},
                                          {"split", std::string("train")}},
                                         {},
                                         {}});
  test::expect_input_error([&] { read_imagenet_shard_header(shard); },
                           newer_parts(shard, "schema_version", kImagenetShardSchemaVersion));

  const std::string pack = dir.file("pack");
  std::filesystem::create_directories(pack);
  std::ofstream(imagenet_manifest_path(pack))
      << "format_version: " << kImagenetManifestFormatVersion + 1 << "\nclasses: [a]\n";
  test::expect_input_error(
      [&] { read_imagenet_manifest(pack); },
      newer_parts(imagenet_manifest_path(pack), "format_version", kImagenetManifestFormatVersion));
}

TEST(LogSchema, EveryKindReadsVersionsOneToCurrent) {
  for (FileKind kind : {FileKind::TrialLog, FileKind::Checkpoint, FileKind::ImagenetShard,
                        FileKind::ImagenetManifest}) {
    for (std::int64_t version = 1; version <= schema_version(kind); ++version) {
      EXPECT_NO_THROW(check_schema_version(kind, "f.h5", version)) << file_kind_name(kind);
    }
    test::expect_input_error([&] { check_schema_version(kind, "f.h5", schema_version(kind) + 1); },
                             {"f.h5", file_kind_name(kind), "newer"});
    test::expect_input_error([&] { check_schema_version(kind, "f.h5", 0); }, {"f.h5", " 0 "});
  }
}

TEST(LogSchema, StatusNamesRoundTrip) {
  const std::set<std::string> documented{"pending",  "running",     "complete", "failed",
                                         "diverged", "interrupted", "stopped"};
  std::set<std::string> names;
  for (TrialStatus status :
       {TrialStatus::Pending, TrialStatus::Running, TrialStatus::Complete, TrialStatus::Failed,
        TrialStatus::Diverged, TrialStatus::Interrupted, TrialStatus::Stopped}) {
    names.insert(status_name(status));
    ASSERT_TRUE(parse_status(status_name(status)).has_value()) << status_name(status);
    EXPECT_EQ(*parse_status(status_name(status)), status) << status_name(status);
  }
  EXPECT_EQ(names, documented);
  EXPECT_FALSE(parse_status("").has_value());
  EXPECT_FALSE(parse_status("Complete").has_value());
  EXPECT_FALSE(parse_status("done").has_value());
}

TEST(LogSchema, RootAttributesAreTheDocumentedSet) {
  const TrialLogHeader header{.trial_id = "0123456789abcdef",
                              .sweep = "study",
                              .config = "dataset: {name: idx}\n",
                              .device_name = "cpu",
                              .ranks = 2};
  const std::set<std::string> documented{"schema_version", "trial_id", "sweep",     "status",
                                         "error",          "config",   "git_sha",   "host",
                                         "device_name",    "ranks",    "start_time"};
  const AttributeMap running = trial_log_root_attributes(header, TrialStatus::Running);
  std::set<std::string> keys;
  for (const auto& [name, value] : running) keys.insert(name);
  EXPECT_EQ(keys, documented);
  EXPECT_EQ(attribute_int(running, "schema_version", "root"), kTrialLogSchemaVersion);
  EXPECT_EQ(attribute_string(running, "status", "root"), "running");
  EXPECT_EQ(attribute_string(running, "error", "root"), "");
  EXPECT_EQ(attribute_int(running, "ranks", "root"), 2);
  EXPECT_EQ(attribute_string(running, "trial_id", "root"), header.trial_id);
  EXPECT_EQ(attribute_string(running, "config", "root"), header.config);

  // A trial that failed before training: finished at its start, with the error.
  const AttributeMap failed = trial_log_root_attributes(header, TrialStatus::Failed, "no data");
  EXPECT_EQ(attribute_string(failed, "status", "root"), "failed");
  EXPECT_EQ(attribute_string(failed, "error", "root"), "no data");
  EXPECT_EQ(attribute_string(failed, "end_time", "root"),
            attribute_string(failed, "start_time", "root"));
}

TEST(LogSchema, RecordStatusMarksTheLog) {
  test::TempDir dir;
  const std::string path = dir.file("trial.h5");
  const TrialLogHeader header{.trial_id = "t", .sweep = "", .config = "", .device_name = "cpu"};
  {
    TrialLog log = TrialLog::open(path, OpenMode::Create,
                                  trial_log_root_attributes(header, TrialStatus::Running));
    record_status(log, TrialStatus::Interrupted, "signal 15");
  }
  AttributeMap attributes = read_trial_log(path).attributes;
  EXPECT_EQ(attribute_string(attributes, "status", path), "interrupted");
  EXPECT_EQ(attribute_string(attributes, "error", path), "signal 15");
  EXPECT_EQ(attributes.count("end_time"), 0u) << "an interrupted trial resumes";
  {
    TrialLog log = TrialLog::open(path, OpenMode::Resume);
    record_status(log, TrialStatus::Running);
    record_status(log, TrialStatus::Complete);
  }
  attributes = read_trial_log(path).attributes;
  EXPECT_EQ(attribute_string(attributes, "status", path), "complete");
  EXPECT_EQ(attributes.count("end_time"), 1u);
}

}  // namespace
}  // namespace md::io
