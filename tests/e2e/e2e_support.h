// Support of the end-to-end tests: run the real `metadistill` binary (path given by CMake as
// MD_METADISTILL) as a child process, capture its output, watch its standard error line by line
// (to send it a signal mid-run), and write the small trial configs the tests use. Only POSIX
// fork/exec/poll: the tests must see exactly what a user's shell sees (exit status, stderr).
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <filesystem>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "io/checkpoint.h"

namespace md::e2e {

struct ProcessResult {
  int exit_status = -1;  // the exit code, or 128 + signal when killed by a signal
  std::string out;       // standard output
  std::string err;       // standard error
};

struct RunOptions {
  // Called for every complete line of standard error (without the newline; a line ending in
  // '\r' is split there too), with the child's pid, while the child runs.
  std::function<void(const std::string& line, pid_t child)> on_error_line;
  int timeout_s = 300;  // the child is killed (SIGKILL) after this, and the test fails
  // A command that starts the binary, e.g. {"mpirun", "-np", "2"} (looked up on PATH); empty:
  // the binary itself.
  std::vector<std::string> launcher;
};

// Runs MD_METADISTILL with `arguments` (and OMP_WAIT_POLICY=passive unless already set);
// never throws for a non-zero exit.
ProcessResult run_metadistill(const std::vector<std::string>& arguments,
                              const RunOptions& options = {});

// A fresh empty directory under the temporary directory, removed by the destructor.
class TempDir {
 public:
  explicit TempDir(const std::string& name);
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const std::filesystem::path& path() const { return path_; }
  std::string file(const std::string& name) const { return (path_ / name).string(); }

 private:
  std::filesystem::path path_;
};

void write_text(const std::string& path, const std::string& text);
// A raw (not gzipped) IDX file: big-endian magic and dimensions, then `payload` bytes.
void write_idx(const std::string& path, std::uint32_t magic, const std::vector<std::uint32_t>& dims,
               const std::string& payload);
// The same with `payload_bytes` bytes of value 1.
void write_idx(const std::string& path, std::uint32_t magic, const std::vector<std::uint32_t>& dims,
               std::size_t payload_bytes);
std::string read_bytes(const std::string& path);

inline const char* kFashionMnist = "/usr/share/datasets/fashion-mnist";

// A trial config (YAML text) on Fashion-MNIST: `sections` replaces or adds whole top-level
// sections, e.g. {{"method", "{name: byot}"}}.
std::string fashion_config(const std::map<std::string, std::string>& sections);

// The one file in `dir` whose name ends in `suffix` (".ckpt.h5", ".h5" excluding checkpoints).
std::string only_file(const std::filesystem::path& dir, const std::string& suffix);

// Every tensor of every group of two checkpoints is bit-identical (same groups, names, shapes).
void expect_same_tensors(const io::CheckpointData& expected, const io::CheckpointData& actual);

}  // namespace md::e2e
