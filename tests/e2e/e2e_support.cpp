#include "e2e_support.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <fstream>
#include <sstream>

namespace md::e2e {

namespace fs = std::filesystem;

ProcessResult run_metadistill(const std::vector<std::string>& arguments,
                              const RunOptions& options) {
  int out_pipe[2], err_pipe[2];
  if (pipe(out_pipe) != 0 || pipe(err_pipe) != 0) {
    ADD_FAILURE() << "pipe: " << std::strerror(errno);
    return {};
  }
  std::vector<std::string> argv_strings = options.launcher;
  argv_strings.push_back(MD_METADISTILL);
  argv_strings.insert(argv_strings.end(), arguments.begin(), arguments.end());
  std::vector<char*> argv;
  for (std::string& argument : argv_strings) argv.push_back(argument.data());
  argv.push_back(nullptr);

  const pid_t child = fork();
  if (child == 0) {
    dup2(out_pipe[1], STDOUT_FILENO);
    dup2(err_pipe[1], STDERR_FILENO);
    close(out_pipe[0]);
    close(err_pipe[0]);
    close(out_pipe[1]);
    close(err_pipe[1]);
    // ctest -j runs these beside other tests: OpenMP threads that spin while waiting for a
    // core slow an oversubscribed run several times over; waiting passively does not.
    setenv("OMP_WAIT_POLICY", "passive", /*overwrite=*/0);
    execvp(argv[0], argv.data());
    _exit(127);
  }
  close(out_pipe[1]);
  close(err_pipe[1]);
  ProcessResult result;
  std::string pending;  // stderr not yet split into lines
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(options.timeout_s);
  bool out_open = true, err_open = true, killed = false;
  while (out_open || err_open) {
    pollfd fds[2] = {{out_open ? out_pipe[0] : -1, POLLIN, 0},
                     {err_open ? err_pipe[0] : -1, POLLIN, 0}};
    const int ready = poll(fds, 2, 1000);
    if (std::chrono::steady_clock::now() > deadline && !killed) {
      kill(child, SIGKILL);
      killed = true;
      ADD_FAILURE() << "metadistill ran longer than " << options.timeout_s << " s: killed";
    }
    if (ready <= 0) continue;
    char buffer[4096];
    if (fds[0].revents & (POLLIN | POLLHUP)) {
      const ssize_t n = read(out_pipe[0], buffer, sizeof buffer);
      if (n <= 0) {
        out_open = false;
      } else {
        result.out.append(buffer, static_cast<std::size_t>(n));
      }
    }
    if (fds[1].revents & (POLLIN | POLLHUP)) {
      const ssize_t n = read(err_pipe[0], buffer, sizeof buffer);
      if (n <= 0) {
        err_open = false;
      } else {
        result.err.append(buffer, static_cast<std::size_t>(n));
        pending.append(buffer, static_cast<std::size_t>(n));
        std::size_t end;
        while ((end = pending.find_first_of("\n\r")) != std::string::npos) {
          const std::string line = pending.substr(0, end);
          pending.erase(0, end + 1);
          if (options.on_error_line) options.on_error_line(line, child);
        }
      }
    }
  }
  close(out_pipe[0]);
  close(err_pipe[0]);
  int status = 0;
  waitpid(child, &status, 0);
  result.exit_status = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  return result;
}

TempDir::TempDir(const std::string& name)
    : path_(fs::temp_directory_path() / ("md_e2e_" + name + "_" + std::to_string(getpid()))) {
  fs::remove_all(path_);
  fs::create_directories(path_);
}

TempDir::~TempDir() {
  std::error_code ignored;
  fs::remove_all(path_, ignored);
}

void write_text(const std::string& path, const std::string& text) {
  std::ofstream file(path, std::ios::binary);
  file << text;
  ASSERT_TRUE(file.good()) << "cannot write " << path;
}

void write_idx(const std::string& path, std::uint32_t magic, const std::vector<std::uint32_t>& dims,
               const std::string& payload) {
  std::string bytes;
  auto put_u32 = [&](std::uint32_t value) {
    for (int shift = 24; shift >= 0; shift -= 8)
      bytes.push_back(static_cast<char>((value >> shift) & 0xff));
  };
  put_u32(magic);
  for (std::uint32_t dim : dims) put_u32(dim);
  write_text(path, bytes + payload);
}

void write_idx(const std::string& path, std::uint32_t magic, const std::vector<std::uint32_t>& dims,
               std::size_t payload_bytes) {
  write_idx(path, magic, dims, std::string(payload_bytes, '\1'));
}

std::string read_bytes(const std::string& path) {
  std::ifstream file(path, std::ios::binary);
  std::ostringstream bytes;
  bytes << file.rdbuf();
  return bytes.str();
}

std::string fashion_config(const std::map<std::string, std::string>& sections) {
  std::map<std::string, std::string> all{
      {"dataset", std::string("{name: idx, root: ") + kFashionMnist + "}"},
      {"model", "{arch: resnet20}"},
      {"method", "{name: baseline}"},
      {"optim", "{epochs: 2, batch_size: 16, lr: 0.05}"},
      {"augment", "{random_crop: 2, flip: true}"},
      {"runtime",
       "{device: cpu, threads: 1, log_every: 1, max_train_batches: 6, max_eval_batches: 1}"},
  };
  for (const auto& [section, text] : sections) all[section] = text;
  std::string yaml;
  for (const auto& [section, text] : all) {
    if (!text.empty()) yaml += section + ": " + text + "\n";
  }
  return yaml;
}

std::string only_file(const fs::path& dir, const std::string& suffix) {
  std::vector<std::string> found;
  for (const auto& entry : fs::directory_iterator(dir)) {
    const std::string name = entry.path().filename().string();
    const bool checkpoint = name.size() >= 8 && name.compare(name.size() - 8, 8, ".ckpt.h5") == 0;
    if (suffix == ".h5" && checkpoint) continue;
    if (name.size() >= suffix.size() &&
        name.compare(name.size() - suffix.size(), suffix.size(), suffix) == 0) {
      found.push_back(entry.path().string());
    }
  }
  EXPECT_EQ(found.size(), 1u) << "files ending in " << suffix << " in " << dir;
  return found.empty() ? std::string() : found.front();
}

void expect_same_tensors(const io::CheckpointData& expected, const io::CheckpointData& actual) {
  ASSERT_EQ(expected.groups.size(), actual.groups.size());
  for (const auto& [group, tensors] : expected.groups) {
    auto other = actual.groups.find(group);
    ASSERT_NE(other, actual.groups.end()) << "group /" << group;
    ASSERT_EQ(tensors.size(), other->second.size()) << "group /" << group;
    for (std::size_t i = 0; i < tensors.size(); ++i) {
      const auto& [name, tensor] = tensors[i];
      const auto& [other_name, other_tensor] = other->second[i];
      ASSERT_EQ(name, other_name) << "group /" << group;
      ASSERT_EQ(tensor.shape(), other_tensor.shape()) << "/" << group << "/" << name;
      ASSERT_EQ(tensor.dtype(), other_tensor.dtype()) << "/" << group << "/" << name;
      EXPECT_EQ(std::memcmp(tensor.raw_data(), other_tensor.raw_data(), tensor.nbytes()), 0)
          << "/" << group << "/" << name << " differs";
    }
  }
}

}  // namespace md::e2e
