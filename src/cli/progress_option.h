// The --progress option of `train` and `sweep`: one spelling of its values for both commands.
#pragma once

#include <string>

#include "train/trainer.h"

namespace md::cli {

// "auto" | "terminal" | "lines" | "off"; anything else is an InputError naming the value.
train::Progress parse_progress(const std::string& value);

}  // namespace md::cli
