// Trial states from their logs (see status.h).
#include "sweep/status.h"

#include <filesystem>
#include <optional>

#include "core/logging.h"
#include "io/trial_log.h"

namespace md::sweep {

namespace fs = std::filesystem;

std::string log_path(const std::string& out_dir, const std::string& trial_id) {
  return (fs::path(out_dir) / (trial_id + ".h5")).string();
}

std::string checkpoint_path(const std::string& out_dir, const std::string& trial_id) {
  return (fs::path(out_dir) / (trial_id + ".ckpt.h5")).string();
}

io::TrialStatus read_trial_state(const std::string& out_dir, const std::string& trial_id) {
  const std::string path = log_path(out_dir, trial_id);
  std::error_code error;
  if (!fs::exists(path, error)) return io::TrialStatus::Pending;
  std::string status;
  try {
    const io::TrialLogContents contents = io::read_trial_log(path);
    const auto found = contents.attributes.find(io::kStatusAttribute);
    if (found != contents.attributes.end()) status = io::attr_to_string(found->second);
  } catch (const Error& failure) {
    log_warning("treating trial ", trial_id, " as pending: ", failure.what());
    return io::TrialStatus::Pending;
  }
  if (const std::optional<io::TrialStatus> state = io::parse_status(status)) return *state;
  log_warning("treating trial ", trial_id, " as pending: ", path, " has status '", status, "'");
  return io::TrialStatus::Pending;
}

}  // namespace md::sweep
