// Trial states from their logs (see status.h).
#include "sweep/status.h"

#include <filesystem>

#include "core/logging.h"
#include "io/trial_log.h"

namespace md::sweep {

namespace fs = std::filesystem;

const char* state_name(TrialState state) {
  switch (state) {
    case TrialState::Pending:
      return "pending";
    case TrialState::Running:
      return "running";
    case TrialState::Complete:
      return "complete";
    case TrialState::Failed:
      return "failed";
    case TrialState::Diverged:
      return "diverged";
    case TrialState::Interrupted:
      return "interrupted";
  }
  return "pending";
}

std::string log_path(const std::string& out_dir, const std::string& trial_id) {
  return (fs::path(out_dir) / (trial_id + ".h5")).string();
}

std::string checkpoint_path(const std::string& out_dir, const std::string& trial_id) {
  return (fs::path(out_dir) / (trial_id + ".ckpt.h5")).string();
}

TrialState read_trial_state(const std::string& out_dir, const std::string& trial_id) {
  const std::string path = log_path(out_dir, trial_id);
  std::error_code error;
  if (!fs::exists(path, error)) return TrialState::Pending;
  std::string status;
  try {
    const io::TrialLogContents contents = io::read_trial_log(path);
    const auto found = contents.attributes.find("status");
    if (found != contents.attributes.end()) status = io::attr_to_string(found->second);
  } catch (const Error& failure) {
    log_warning("treating trial ", trial_id, " as pending: ", failure.what());
    return TrialState::Pending;
  }
  for (TrialState state : {TrialState::Running, TrialState::Complete, TrialState::Failed,
                           TrialState::Diverged, TrialState::Interrupted}) {
    if (status == state_name(state)) return state;
  }
  log_warning("treating trial ", trial_id, " as pending: ", path, " has status '", status, "'");
  return TrialState::Pending;
}

}  // namespace md::sweep
