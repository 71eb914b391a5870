// Facts about the running process's host and time, for the records a trial leaves (logs,
// checkpoints, sweep summaries).
#pragma once

#include <string>

namespace md {

// The current UTC time as ISO 8601, e.g. "2026-11-24T21:05:00Z".
std::string now_iso8601();
// This machine's host name ("" if it cannot be read).
std::string hostname();

}  // namespace md
