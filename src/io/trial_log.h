// The HDF5 trial log (DESIGN.md §6, `DIR/<trial-id>.h5`): root attributes (status, config,
// times...), tables of rows (/train/<metric>, /epoch/<metric>: 1-D extendible chunked float64
// datasets), and /final attributes. One writer per file (the trial's first rank).
//
// Durability and concurrent readers (see io/h5.h for the file policy):
// - append() only buffers the row in memory; flush() writes the buffered rows and calls H5Fflush.
//   The writer touches the file only inside flush(), set_attribute(), set_final(),
//   truncate_rows() and close(), and each of them ends with a flush, so between those calls the
//   file on disk is complete: a writer killed at any other moment (SIGKILL, node failure) leaves
//   a file that opens normally and holds every row up to its last flush. Flush at least once per
//   epoch (the trainer does); appending costs no I/O.
// - A reader (read_trial_log, the report, `h5dump`, h5py) may open the file while the writer has
//   it open: file locking is off in the writer, so no HDF5_USE_FILE_LOCKING=FALSE is needed; the
//   reader sees the rows of the writer's last flush. Not SWMR (metrics are created lazily).
// - A row is complete when every metric of its table has it: a file killed in the middle of a
//   flush may hold metrics of unequal lengths, and readers and Resume keep the complete rows only.
//
// Not thread-safe: one thread writes a TrialLog (HDF5 calls of io/ are serialized internally).
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "io/h5.h"
#include "io/log_schema.h"

namespace md::io {

enum class OpenMode {
  Create,  // create the file, replacing any file at the path
  Resume,  // open an existing log read-write, keeping its rows (md::InputError when missing)
};

// One row: metric name -> value. A metric absent from a row is NaN in that row.
using Row = std::map<std::string, double>;

class TrialLog {
 public:
  // Opens the log and writes `root_attributes` (plus schema_version, kTrialLogSchemaVersion of
  // io/log_schema.h) to the root group. A new log's attributes come from
  // trial_log_root_attributes (io/log_schema.h).
  static TrialLog open(const std::string& path, OpenMode mode,
                       const AttributeMap& root_attributes = {});

  TrialLog(TrialLog&&) noexcept;
  TrialLog& operator=(TrialLog&&) noexcept;
  TrialLog(const TrialLog&) = delete;
  TrialLog& operator=(const TrialLog&) = delete;
  // Flushes and closes; a failure is logged, never thrown (call close() to learn of it).
  ~TrialLog();

  const std::string& path() const;

  // Root attribute (status, error, end_time...): replaces any previous value; flushes.
  void set_attribute(const std::string& name, const AttrValue& value);

  // Buffers one row of `table` ("train", "epoch", or any other name without '/'). Each metric is
  // a dataset /<table>/<metric>; a metric first seen after earlier rows reads NaN in those rows.
  void append(const std::string& table, const Row& row);

  // Rows of `table`, written and buffered; 0 for a table never appended to.
  std::int64_t rows(const std::string& table) const;

  // Keeps the first `row_count` rows of `table` (<= rows(table)) and flushes: a resumed trial
  // drops the rows logged after its checkpoint.
  void truncate_rows(const std::string& table, std::int64_t row_count);

  // Attributes of group /final (best/last accuracies, total_wall_s, gpu_hours); flushes.
  void set_final(const std::map<std::string, double>& attributes);

  // Writes the buffered rows and flushes the file: everything so far survives a kill.
  void flush();

  // Flushes and closes; throws md::Error on failure. Any later call but the destructor throws.
  void close();

 private:
  struct Impl;
  explicit TrialLog(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

struct TrialLogContents {
  AttributeMap attributes;                                                   // root attributes
  std::map<std::string, std::map<std::string, std::vector<double>>> tables;  // table -> metric
  std::map<std::string, double> final_values;                                // /final attributes
};

// Reads a whole trial log (also one whose writer is still running, or was killed). Throws
// md::InputError naming the file (and the object) when it is missing, not HDF5, truncated,
// not a trial log (no schema_version), of a newer schema, or malformed.
TrialLogContents read_trial_log(const std::string& path);

}  // namespace md::io
