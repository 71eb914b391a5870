// ASHA's decision files (see asha_records.h): temporary file, fsync, link(2), unlink.
#include "sweep/asha_records.h"

#include <fcntl.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "core/error.h"

namespace md::sweep {
namespace {

namespace fs = std::filesystem;

std::string read_text(const std::string& path) {
  std::ifstream file(path, std::ios::binary);
  if (!file) return {};
  std::ostringstream text;
  text << file.rdbuf();
  return text.str();
}

// The decision of a record's text: its first line is "decision: promote|stop".
std::optional<AshaDecision> parse_decision(const std::string& text) {
  const std::string first = text.substr(0, text.find('\n'));
  if (first == "decision: promote") return AshaDecision::Promote;
  if (first == "decision: stop") return AshaDecision::Stop;
  return std::nullopt;
}

// The value of a record's "owner: " line; "" when there is none.
std::string owner_line(const std::string& text) {
  const std::string key = "\nowner: ";
  const std::size_t start = text.find(key);
  if (start == std::string::npos) return {};
  const std::size_t begin = start + key.size();
  return text.substr(begin, text.find('\n', begin) - begin);
}

// A worker name as a file name: every character but [A-Za-z0-9._-] becomes '_'.
std::string file_name_of(const std::string& worker) {
  std::string name = worker;
  for (char& c : name) {
    const bool plain = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                       c == '.' || c == '_' || c == '-';
    if (!plain) c = '_';
  }
  return name;
}

std::optional<double> age_seconds(const fs::path& path) {
  std::error_code error;
  const auto written = fs::last_write_time(path, error);
  if (error) return std::nullopt;
  return std::chrono::duration<double>(fs::file_time_type::clock::now() - written).count();
}

}  // namespace

const char* decision_name(AshaDecision decision) {
  return decision == AshaDecision::Promote ? "promote" : "stop";
}

AshaRecords::AshaRecords(std::string out_dir)
    : directory_((fs::path(std::move(out_dir)) / ".asha").string()) {}

std::string AshaRecords::start_path(const std::string& unit) const {
  return (fs::path(directory_) / "start" / unit).string();
}

std::string AshaRecords::decision_path(int level, const std::string& unit) const {
  return (fs::path(directory_) / ("level" + std::to_string(level)) / unit).string();
}

bool AshaRecords::publish(const std::string& path, const std::string& body) const {
  static std::atomic<unsigned long> counter{0};
  const fs::path temporary_dir = fs::path(directory_) / "tmp";
  fs::create_directories(temporary_dir);
  fs::create_directories(fs::path(path).parent_path());
  char host[256] = {};
  ::gethostname(host, sizeof host - 1);
  const std::string temporary =
      (temporary_dir / (fs::path(path).filename().string() + "." + host + "." +
                        std::to_string(::getpid()) + "." + std::to_string(counter++)))
          .string();
  const int fd = ::open(temporary.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  if (fd < 0) throw Error(temporary + ": cannot create: " + std::strerror(errno));
  std::size_t written = 0;
  while (written < body.size()) {
    const ssize_t count = ::write(fd, body.data() + written, body.size() - written);
    if (count < 0) {
      if (errno == EINTR) continue;
      const std::string reason = std::strerror(errno);
      ::close(fd);
      ::unlink(temporary.c_str());
      throw Error(temporary + ": write failed: " + reason);
    }
    written += static_cast<std::size_t>(count);
  }
  // The content is on disk before the name appears: a reader never sees a partial record.
  ::fsync(fd);
  ::close(fd);
  const int linked = ::link(temporary.c_str(), path.c_str());
  const int link_error = errno;
  ::unlink(temporary.c_str());
  if (linked == 0) return true;
  if (link_error == EEXIST) return false;
  throw Error(path + ": cannot publish the ASHA record: " + std::strerror(link_error));
}

bool AshaRecords::claim_start(const std::string& unit, const std::string& body) const {
  return publish(start_path(unit), body);
}

bool AshaRecords::started(const std::string& unit) const {
  std::error_code ignored;
  return fs::exists(start_path(unit), ignored);
}

AshaDecision AshaRecords::decide(int level, const std::string& unit, AshaDecision decision,
                                 const std::string& body, bool* created) const {
  const std::string path = decision_path(level, unit);
  const bool mine =
      publish(path, std::string("decision: ") + decision_name(decision) + "\n" + body);
  if (created != nullptr) *created = mine;
  if (mine) return decision;
  const std::optional<AshaDecision> standing = parse_decision(read_text(path));
  if (!standing) throw Error(path + ": unreadable ASHA record (expected 'decision: ...')");
  return *standing;
}

std::optional<AshaDecision> AshaRecords::decision(int level, const std::string& unit) const {
  return parse_decision(read_text(decision_path(level, unit)));
}

std::string AshaRecords::read_start(const std::string& unit) const {
  return read_text(start_path(unit));
}

std::string AshaRecords::read_decision(int level, const std::string& unit) const {
  return read_text(decision_path(level, unit));
}

std::string AshaRecords::claim_path(int level, const std::string& unit) const {
  return level == 0 ? start_path(unit) : decision_path(level - 1, unit);
}

std::string AshaRecords::current_owner(const std::string& unit, int level) const {
  std::string owner = owner_line(read_text(claim_path(level, unit)));
  // Follow the takeovers; each names the worker it took over from, so the chain ends.
  for (int hops = 0; hops < 10000 && !owner.empty(); ++hops) {
    const fs::path takeover = fs::path(directory_) / "takeover" /
                              (unit + ".level" + std::to_string(level) + "." + file_name_of(owner));
    const std::string text = read_text(takeover.string());
    if (text.empty()) break;
    owner = owner_line(text);
  }
  return owner;
}

bool AshaRecords::take_over(const std::string& unit, int level, const std::string& old_owner,
                            const std::string& new_owner) const {
  const fs::path takeover =
      fs::path(directory_) / "takeover" /
      (unit + ".level" + std::to_string(level) + "." + file_name_of(old_owner));
  return publish(takeover.string(), "takeover from: " + old_owner + "\nowner: " + new_owner + "\n");
}

void AshaRecords::heartbeat(const std::string& worker) const {
  const fs::path directory = fs::path(directory_) / "workers";
  std::error_code error;
  fs::create_directories(directory, error);
  const fs::path path = directory / file_name_of(worker);
  if (!fs::exists(path, error)) {
    std::ofstream(path) << worker << "\n";
  }
  fs::last_write_time(path, fs::file_time_type::clock::now(), error);
}

std::optional<double> AshaRecords::silence_seconds(const std::string& worker,
                                                   const std::string& unit, int level) const {
  if (auto age = age_seconds(fs::path(directory_) / "workers" / file_name_of(worker))) return age;
  return age_seconds(claim_path(level, unit));
}

}  // namespace md::sweep
