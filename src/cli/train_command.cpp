// metadistill train: one trial from a config file, with --set overrides, into --out DIR.
#include <boost/program_options.hpp>
#include <iostream>

#include "cli/commands.h"
#include "cli/progress_option.h"
#include "core/logging.h"
#include "io/config.h"
#include "io/config_keys.h"
#include "io/log_schema.h"
#include "train/trainer.h"

namespace md::cli {

namespace po = boost::program_options;

int train_command(const Arguments& arguments) {
  std::string config_path, out_dir, progress = "auto";
  std::vector<std::string> overrides;
  const std::string set_help =
      detail::concat("override a key: --set ", io::key_path::optim_lr, "=0.05 (repeatable)");
  po::options_description options("metadistill train");
  options.add_options()("help,h", "show this help")("config", po::value(&config_path)->required(),
                                                    "trial config (YAML)")(
      "set", po::value(&overrides)->composing(), set_help.c_str())(
      "out", po::value(&out_dir)->required(), "output directory for the log and checkpoint")(
      "progress", po::value(&progress), "auto | terminal | lines | off");
  po::variables_map values;
  po::store(po::command_line_parser(arguments).options(options).run(), values);
  if (values.count("help")) {
    std::cout << options << "\n";
    return 0;
  }
  po::notify(values);
  const train::Progress progress_mode = parse_progress(progress);
  io::TrialConfig config = io::load_trial_config(config_path, overrides);
  train::TrialContext context;
  context.out_dir = out_dir;
  context.device = train::resolve_device(config.runtime.device);
  context.progress = progress_mode;
  // Built piecewise: GCC 12 warns falsely (-Wrestrict) on "[" + std::string + "]".
  context.label = io::trial_id(config).substr(0, 8);
  context.label.insert(0, 1, '[');
  context.label.push_back(']');
  log_info("trial ", io::trial_id(config), ": ", config.model.arch, " on ", context.device.str());
  train::TrialResult result = train::run_trial(config, context);
  std::cout << "trial " << result.trial_id << " " << io::status_name(result.status) << " log "
            << result.log_path << "\n";
  for (const auto& [key, value] : result.final_values)
    std::cout << "  " << key << " " << value << "\n";
  return result.status == io::TrialStatus::Complete ? 0 : 1;
}

}  // namespace md::cli
