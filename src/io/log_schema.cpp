// The file schema of io/log_schema.h. MD_GIT_SHA (the build's commit) is defined for this file
// alone by src/io/CMakeLists.txt, so that a new commit recompiles one file of io/.
#include "io/log_schema.h"

#include "core/error.h"
#include "core/host.h"
#include "io/trial_log.h"

#ifndef MD_GIT_SHA
#define MD_GIT_SHA "unknown"
#endif

namespace md::io {

std::int64_t schema_version(FileKind kind) {
  switch (kind) {
    case FileKind::TrialLog:
      return kTrialLogSchemaVersion;
    case FileKind::Checkpoint:
      return kCheckpointSchemaVersion;
    case FileKind::ImagenetShard:
      return kImagenetShardSchemaVersion;
    case FileKind::ImagenetManifest:
      return kImagenetManifestFormatVersion;
  }
  return 1;
}

const char* file_kind_name(FileKind kind) {
  switch (kind) {
    case FileKind::TrialLog:
      return "trial log";
    case FileKind::Checkpoint:
      return "checkpoint";
    case FileKind::ImagenetShard:
      return "ImageNet shard";
    case FileKind::ImagenetManifest:
      return "ImageNet manifest";
  }
  return "file";
}

void check_schema_version(FileKind kind, const std::string& path, std::int64_t version) {
  const std::int64_t newest = schema_version(kind);
  const char* key = kind == FileKind::ImagenetManifest ? "format_version" : kSchemaVersionAttribute;
  if (version > newest) {
    throw InputError(detail::concat(path, ": ", file_kind_name(kind), " ", key, " ", version,
                                    " is newer than this build reads (", key, " 1 to ", newest,
                                    "): written by a newer metadistill"));
  }
  if (version < 1) {
    throw InputError(detail::concat(path, ": ", file_kind_name(kind), " ", key, " ", version,
                                    " is not a version (this build reads ", key, " 1 to ", newest,
                                    ")"));
  }
}

std::optional<TrialStatus> parse_status(std::string_view name) {
  for (TrialStatus status :
       {TrialStatus::Pending, TrialStatus::Running, TrialStatus::Complete, TrialStatus::Failed,
        TrialStatus::Diverged, TrialStatus::Interrupted, TrialStatus::Stopped}) {
    if (name == status_name(status)) return status;
  }
  return std::nullopt;
}

AttributeMap trial_log_root_attributes(const TrialLogHeader& header, TrialStatus status,
                                       const std::string& error) {
  const std::string now = now_iso8601();
  AttributeMap attributes{
      {kSchemaVersionAttribute, kTrialLogSchemaVersion},
      {"trial_id", header.trial_id},
      {"sweep", header.sweep},
      {"config", header.config},
      {"git_sha", std::string(MD_GIT_SHA)},
      {"host", hostname()},
      {"device_name", header.device_name},
      {"ranks", header.ranks},
      {"start_time", now},
      {kStatusAttribute, std::string(status_name(status))},
      {kErrorAttribute, error},
  };
  if (status != TrialStatus::Running) attributes[kEndTimeAttribute] = now;
  return attributes;
}

void record_status(TrialLog& log, TrialStatus status, const std::string& error) {
  log.set_attribute(kStatusAttribute, std::string(status_name(status)));
  if (status == TrialStatus::Failed || status == TrialStatus::Diverged ||
      status == TrialStatus::Interrupted) {
    log.set_attribute(kErrorAttribute, error);
  }
  if (status == TrialStatus::Complete || status == TrialStatus::Failed ||
      status == TrialStatus::Diverged || status == TrialStatus::Stopped) {
    log.set_attribute(kEndTimeAttribute, now_iso8601());
  }
  log.flush();
}

}  // namespace md::io
