// ASHA's decisions on disk, in the sweep's output directory: every start, promotion and stop is
// one immutable file, created before it is acted on, so that a kill -9 of the whole sweep and a
// rerun, or a requeued array task, never repeats or contradicts a decision.
//
//   DIR/.asha/start/<unit>        the unit was claimed for its first training (to rung 0)
//   DIR/.asha/level<k>/<unit>     the decision at level k: "promote" (train on to level k+1) or
//                                 "stop" (it ends at level k)
//
//   DIR/.asha/workers/<worker>    touched every few seconds by a live worker (--worker mode)
//   DIR/.asha/takeover/<unit>.level<k>.<old worker>
//                                 a worker took over the unit's work to level k from a worker
//                                 whose heartbeat went stale (one winner, by link(2) as well)
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

  // The worker that owns the unit's work to `level` (the `owner:` line of its start record for
  // level 0, of its promotion from level-1 otherwise), after any takeovers; "" when unknown.
  std::string current_owner(const std::string& unit, int level) const;
  // Records that `new_owner` takes the unit's work to `level` over from `old_owner`; false when
  // another worker did first.
  bool take_over(const std::string& unit, int level, const std::string& old_owner,
                 const std::string& new_owner) const;
  // Marks `worker` alive now.
  void heartbeat(const std::string& worker) const;
  // Seconds since `worker` last marked itself alive, or since the record of the unit's work to
  // `level` was written when the worker never did (an MPI run); nullopt when neither exists.
  std::optional<double> silence_seconds(const std::string& worker, const std::string& unit,
                                        int level) const;

  const std::string& directory() const { return directory_; }

 private:
  // Writes `body` to a temporary file and links it to `path`; false on EEXIST.
  bool publish(const std::string& path, const std::string& body) const;
  std::string start_path(const std::string& unit) const;
  std::string decision_path(int level, const std::string& unit) const;
  // The record that claimed the unit's work to `level`.
  std::string claim_path(int level, const std::string& unit) const;

  std::string directory_;  // DIR/.asha
};

}  // namespace md::sweep
