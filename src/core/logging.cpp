#include "core/logging.h"

#include <chrono>
#include <cstdio>
#include <ctime>
#include <mutex>

namespace md {
namespace {
std::mutex log_mutex;
std::string log_prefix;
LogLevel min_level = LogLevel::Info;
}  // namespace

void set_log_prefix(const std::string& prefix) {
  std::lock_guard<std::mutex> lock(log_mutex);
  log_prefix = prefix;
}

void set_log_level(LogLevel level) {
  min_level = level;
}

void log_message(LogLevel level, const std::string& message) {
  if (level < min_level) return;
  static const char* names[] = {"debug", "info", "warning", "error"};
  std::time_t now = std::chrono::system_clock::to_time_t(std::chrono::system_clock::now());
  std::tm local{};
  localtime_r(&now, &local);
  char stamp[32];
  std::strftime(stamp, sizeof stamp, "%Y-%m-%d %H:%M:%S", &local);
  std::lock_guard<std::mutex> lock(log_mutex);
  std::fprintf(stderr, "[%s]%s%s %s: %s\n", stamp, log_prefix.empty() ? "" : " ",
               log_prefix.c_str(), names[static_cast<int>(level)], message.c_str());
}

}  // namespace md
