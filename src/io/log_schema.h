// The schema of the files metadistill writes, declared once: the schema version of each file
// kind (trial log, checkpoint, ImageNet shard, ImageNet pack manifest) and the check every
// reader runs on load, the trial statuses and their names in a log's `status` attribute, and
// the root attributes of a new trial log with the one function that builds them (the trainer
// and the sweep scheduler, which writes the log of a trial that failed before training, both
// call it). The on-disk names and values are those docs/formats.md lists; readers outside C++
// (the Python package) rely on them, so a change here is a format change.
//
// Versions: a reader accepts every version from 1 to the one this build writes (older files
// keep loading); a newer one is an md::InputError naming the file and both versions.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "io/h5.h"

namespace md::io {

class TrialLog;

enum class FileKind { TrialLog, Checkpoint, ImagenetShard, ImagenetManifest };

// The version this build writes, and the newest it reads, of each file kind.
inline constexpr std::int64_t kTrialLogSchemaVersion = 1;
inline constexpr std::int64_t kCheckpointSchemaVersion = 1;
inline constexpr std::int64_t kImagenetShardSchemaVersion = 1;
inline constexpr std::int64_t kImagenetManifestFormatVersion = 1;

// The root attribute that holds the version in the HDF5 kinds (the manifest's YAML key is
// `format_version`).
inline constexpr const char* kSchemaVersionAttribute = "schema_version";

std::int64_t schema_version(FileKind kind);
// "trial log", "checkpoint", "ImageNet shard", "ImageNet manifest".
const char* file_kind_name(FileKind kind);

// md::InputError naming `path`, `version` and this build's version when `version` is newer than
// this build reads, or not a version at all (below 1). Returns quietly otherwise.
void check_schema_version(FileKind kind, const std::string& path, std::int64_t version);

// Where a trial stands. A log's `status` holds every state but Pending (a trial without a log).
// Stopped: halted at an ASHA rung with a checkpoint (docs/cluster.md#early-stopping-asha).
enum class TrialStatus { Pending, Running, Complete, Failed, Diverged, Interrupted, Stopped };

// pending, running, complete, failed, diverged, interrupted, stopped.
constexpr const char* status_name(TrialStatus status) {
  switch (status) {
    case TrialStatus::Pending:
      return "pending";
    case TrialStatus::Running:
      return "running";
    case TrialStatus::Complete:
      return "complete";
    case TrialStatus::Failed:
      return "failed";
    case TrialStatus::Diverged:
      return "diverged";
    case TrialStatus::Interrupted:
      return "interrupted";
    case TrialStatus::Stopped:
      return "stopped";
  }
  return "pending";
}

// The status a name denotes; nullopt for any other text.
std::optional<TrialStatus> parse_status(std::string_view name);

// Root attribute names of a trial log.
inline constexpr const char* kStatusAttribute = "status";
inline constexpr const char* kErrorAttribute = "error";
inline constexpr const char* kEndTimeAttribute = "end_time";

// What the caller knows of a trial when its log is created.
struct TrialLogHeader {
  std::string trial_id;
  std::string sweep;        // the sweep's name ("" for `metadistill train`)
  std::string config;       // the canonical YAML of the resolved config
  std::string device_name;  // e.g. "cpu", "cuda:0"
  std::int64_t ranks = 1;
};

// Every root attribute of a new trial log: schema_version, trial_id, sweep, config, git_sha (of
// this build), host, device_name, ranks, start_time (now), status, error, and end_time (= the
// start time) unless the status is Running.
AttributeMap trial_log_root_attributes(const TrialLogHeader& header, TrialStatus status,
                                       const std::string& error = "");

// Marks an open log: status; error for Failed, Diverged and Interrupted; end_time (now) for
// Complete, Failed, Diverged and Stopped (an interrupted trial resumes; a stopped one resumes
// when ASHA promotes it; the epoch it reached is its /epoch row count). Flushes.
void record_status(TrialLog& log, TrialStatus status, const std::string& error = "");

}  // namespace md::io
