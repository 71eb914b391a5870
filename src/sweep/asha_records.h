// ASHA's decisions on disk, in the sweep's output directory: every start, promotion and stop is
// one immutable file, created before it is acted on, so that a kill -9 of the whole sweep and a
// rerun, or a requeued array task, never repeats or contradicts a decision.
//
//   DIR/.asha/start/<unit>        the unit was claimed for its first training (to rung 0)
//   DIR/.asha/level<k>/<unit>     the decision at level k: "promote" (train on to level k+1) or
//                                 "stop" (it ends at level k)
//
// <unit> is the id of the unit's first trial. A record is written to a temporary file in
// DIR/.asha/tmp/ and published with link(2) under its final name: link fails with EEXIST when
// the name exists, so of two writers the first wins and the loser reads the winner's record.
// link and rename are atomic on local file systems, NFS and Lustre (the server decides), which
// is all this needs; flock/fcntl locks are not used because on many cluster mounts they are
// disabled, local to a node, or not released when a node dies. No server, no database.
//
// Nothing here decides anything (sweep/early_stop.h) or reads a trial log (sweep/asha_queue.h).
#pragma once

#include <optional>
#include <string>

namespace md::sweep {

enum class AshaDecision { Promote, Stop };

const char* decision_name(AshaDecision decision);  // "promote", "stop"

class AshaRecords {
 public:
  explicit AshaRecords(std::string out_dir);

  // Creates DIR/.asha/start/<unit> with `body`; false when it existed (another worker claimed it).
  bool claim_start(const std::string& unit, const std::string& body) const;
  bool started(const std::string& unit) const;

  // Publishes the decision at `level` unless one exists; returns the decision that stands (this
  // one, or the earlier writer's). `created` (optional) says whether this call wrote it.
  AshaDecision decide(int level, const std::string& unit, AshaDecision decision,
                      const std::string& body, bool* created = nullptr) const;
  // The recorded decision at `level`; nullopt when there is none (or it cannot be read yet).
  std::optional<AshaDecision> decision(int level, const std::string& unit) const;

  // The text of a record ("" when absent), for messages and tests.
  std::string read_start(const std::string& unit) const;
  std::string read_decision(int level, const std::string& unit) const;

  const std::string& directory() const { return directory_; }

 private:
  // Writes `body` to a temporary file and links it to `path`; false on EEXIST.
  bool publish(const std::string& path, const std::string& body) const;
  std::string start_path(const std::string& unit) const;
  std::string decision_path(int level, const std::string& unit) const;

  std::string directory_;  // DIR/.asha
};

}  // namespace md::sweep
