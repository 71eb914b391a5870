// metadistill: entry point. Dispatches to a subcommand and maps exceptions to exit statuses:
// 0 success, 1 failure, 2 bad input (config, data, arguments), 3 interrupted after a checkpoint.
#include <boost/program_options/errors.hpp>
#include <cstdio>
#include <exception>
#include <functional>
#include <map>
#include <string>

#include "backend/backend.h"
#include "cli/commands.h"
#include "cli/omp_policy.h"
#include "core/error.h"
#include "core/interrupt.h"

namespace {

const char* kUsage =
    "usage: metadistill <command> [options]\n"
    "\n"
    "commands:\n"
    "  train    --config TRIAL.yaml [--set key.path=value ...] --out DIR\n"
    "  sweep    SWEEP.yaml --out DIR [--dry-run] [--list] [--trial-index I] [--no-resume]\n"
    "  predict  --checkpoint CKPT.h5 (--input X.h5 | --config TRIAL.yaml) --out Y.h5\n"
    "  bench    --arch NAME [--method M] [--batch B] [--steps N] [--device cpu|cuda]\n"
    "  report   DIR [--group-by k1,k2] [--metric NAME] [--format md|csv|json]\n"
    "  pack-imagenet SRC DST [--shards N] [--val-labels FILE] [--verify]\n"
    "  config   --schema | --defaults | --markdown\n"
    "\n"
    "Run 'metadistill <command> --help' for the options of a command.\n";

}  // namespace

int main(int argc, char** argv) {
  md::cli::apply_omp_wait_policy(argv);
  if (argc < 2 || std::string(argv[1]) == "--help" || std::string(argv[1]) == "-h") {
    std::fputs(kUsage, argc < 2 ? stderr : stdout);
    return argc < 2 ? 2 : 0;
  }
  const std::map<std::string, std::function<int(const md::cli::Arguments&)>> commands{
      {"train", md::cli::train_command},     {"sweep", md::cli::sweep_command},
      {"predict", md::cli::predict_command}, {"bench", md::cli::bench_command},
      {"report", md::cli::report_command},   {"pack-imagenet", md::cli::pack_command},
      {"config", md::cli::config_command},
  };
  const std::string name = argv[1];
  auto command = commands.find(name);
  if (command == commands.end()) {
    std::fprintf(stderr, "metadistill: unknown command '%s'\n\n%s", name.c_str(), kUsage);
    return 2;
  }
  md::cli::Arguments arguments(argv + 2, argv + argc);
  try {
    md::backend::init();
    md::install_interrupt_handlers();
    return command->second(arguments);
  } catch (const md::InputError& error) {
    std::fprintf(stderr, "metadistill %s: error: %s\n", name.c_str(), error.what());
    return 2;
  } catch (const boost::program_options::error& error) {
    std::fprintf(stderr, "metadistill %s: error: %s (see --help)\n", name.c_str(), error.what());
    return 2;
  } catch (const md::Interrupted& error) {
    std::fprintf(stderr, "metadistill %s: %s\n", name.c_str(), error.what());
    return 3;
  } catch (const std::exception& error) {
    std::fprintf(stderr, "metadistill %s: failed: %s\n", name.c_str(), error.what());
    return 1;
  }
}
