#include "core/error.h"

namespace md::detail {

void throw_check_failure(const char* condition, const char* file, int line,
                         const std::string& message) {
  std::ostringstream out;
  out << "check failed: " << condition << " at " << file << ":" << line;
  if (!message.empty()) out << ": " << message;
  throw Error(out.str());
}

}  // namespace md::detail
