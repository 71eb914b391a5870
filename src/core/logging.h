// Logging: one line per message on stderr, prefixed with time and (when set) the MPI rank, so
// that Slurm logs of many ranks can be read. No MPI here: the sweep layer sets the prefix.
#pragma once

#include <string>

#include "core/error.h"

namespace md {

enum class LogLevel { Debug, Info, Warning, Error };

void set_log_prefix(const std::string& prefix);
void set_log_level(LogLevel level);
void log_message(LogLevel level, const std::string& message);

template <typename... Args>
void log_info(const Args&... args) {
  log_message(LogLevel::Info, detail::concat(args...));
}
template <typename... Args>
void log_warning(const Args&... args) {
  log_message(LogLevel::Warning, detail::concat(args...));
}
template <typename... Args>
void log_error(const Args&... args) {
  log_message(LogLevel::Error, detail::concat(args...));
}
template <typename... Args>
void log_debug(const Args&... args) {
  log_message(LogLevel::Debug, detail::concat(args...));
}

}  // namespace md
