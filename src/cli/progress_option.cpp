#include "cli/progress_option.h"

#include "core/error.h"

namespace md::cli {

train::Progress parse_progress(const std::string& value) {
  if (value == "auto") return train::Progress::Auto;
  if (value == "terminal") return train::Progress::Terminal;
  if (value == "lines") return train::Progress::Lines;
  if (value == "off") return train::Progress::Off;
  throw InputError("--progress " + value + ": expected auto, terminal, lines or off");
}

}  // namespace md::cli
