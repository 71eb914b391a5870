// metadistill sweep: expands a sweep file into trials and lists them (--list, --dry-run) or runs
// them over the MPI ranks (under mpirun/srun; a single rank without). MPI is initialized only
// when trials run, so `--list` (used by slurm/submit) starts no MPI. The --list line format,
// INDEX<TAB>ID<TAB>STATUS<TAB>OVERRIDES (overrides space-separated key=value), is a contract
// with slurm/: nothing else goes to stdout with --list.
#include <boost/program_options.hpp>
#include <iostream>

#include "cli/commands.h"
#include "cli/progress_option.h"
#include "core/error.h"
#include "core/interrupt.h"
#include "core/logging.h"
#include "io/config.h"
#include "io/log_schema.h"
#include "sweep/asha_queue.h"
#include "sweep/projection.h"
#include "sweep/scheduler.h"
#include "sweep/spec.h"
#include "sweep/status.h"

namespace md::cli {
namespace {

namespace po = boost::program_options;

void print_trials(const sweep::SweepSpec& spec, const std::string& out_dir) {
  for (const sweep::SweepTrial& trial : spec.trials) {
    std::cout << trial.index << '\t' << trial.id << '\t'
              << io::status_name(sweep::read_trial_state(out_dir, trial.id)) << '\t';
    for (std::size_t i = 0; i < trial.overrides.size(); ++i) {
      std::cout << (i > 0 ? " " : "") << trial.overrides[i];
    }
    std::cout << '\n';
  }
}

int exit_status_of(const std::exception& error) {
  if (dynamic_cast<const InputError*>(&error) != nullptr) return 2;
  if (dynamic_cast<const Interrupted*>(&error) != nullptr) return 3;
  return 1;
}

}  // namespace

int sweep_command(const Arguments& arguments) {
  std::string sweep_path, out_dir, progress, worker;
  int trial_index = -1;
  double stale_after = 600.0;
  po::options_description options("metadistill sweep SWEEP.yaml");
  options.add_options()("help,h", "show this help")("sweep", po::value(&sweep_path)->required(),
                                                    "sweep spec (YAML)")(
      "out", po::value(&out_dir)->required(), "output directory: one log and checkpoint per trial")(
      "dry-run",
      "print the trials and the resolved config of the first one; for an early_stop sweep also "
      "the projected cost (from earlier logs in --out, else a short measurement of trial 0)")(
      "no-measure", "with --dry-run: project from earlier logs only, never train")(
      "list", "print INDEX<TAB>ID<TAB>STATUS<TAB>OVERRIDES per trial; run nothing")(
      "trial-index", po::value(&trial_index), "run trial I alone (a Slurm array task)")(
      "worker", po::value(&worker),
      "early_stop sweeps: run as the ASHA worker NAME (a Slurm array task, stable across "
      "requeues)")(
      "stale-after", po::value(&stale_after),
      "with --worker: take over the work of workers silent this many seconds (default 600)")(
      "no-resume",
      "delete each trial's log and checkpoint before running it (reruns complete ones)")(
      "progress", po::value(&progress),
      "auto | terminal | lines | off (default: lines with >1 rank)");
  po::positional_options_description positional;
  positional.add("sweep", 1);
  po::variables_map values;
  po::store(po::command_line_parser(arguments).options(options).positional(positional).run(),
            values);
  if (values.count("help")) {
    std::cout << options << "\n";
    return 0;
  }
  po::notify(values);
  if (values.count("trial-index") && trial_index < 0) {
    throw InputError("--trial-index " + std::to_string(trial_index) + ": expected an index >= 0");
  }
  sweep::SweepOptions sweep_options;
  sweep_options.out_dir = out_dir;
  if (values.count("trial-index")) sweep_options.trial_index = trial_index;
  if (values.count("no-resume")) sweep_options.resume = sweep::ResumePolicy::Restart;
  if (values.count("progress")) sweep_options.progress = parse_progress(progress);
  if (values.count("worker")) {
    if (worker.empty()) throw InputError("--worker: expected a worker name");
    sweep_options.worker = worker;
  }
  if (!(stale_after > 0.0)) throw InputError("--stale-after: expected seconds > 0");
  sweep_options.stale_seconds = stale_after;

  const sweep::SweepSpec spec = sweep::load_sweep(sweep_path);
  if (values.count("list")) {
    print_trials(spec, out_dir);
    return 0;
  }
  if (values.count("dry-run")) {
    std::cout << "sweep " << spec.name << ": " << spec.trials.size() << " trials, "
              << spec.ranks_per_trial << " rank(s) per trial, output " << out_dir;
    if (spec.early_stop) {
      // slurm/submit reads this line: an early_stop sweep is submitted as ASHA workers.
      const sweep::AshaQueue asha(spec, out_dir, "dry-run");
      std::cout << ", early_stop asha: " << asha.unit_count() << " units, " << asha.units_left()
                << " with work left";
    }
    std::cout << "\n";
    print_trials(spec, out_dir);
    if (!spec.trials.empty()) {
      std::cout << "\n# resolved config of trial 0 (" << spec.trials.front().id << ")\n"
                << io::to_yaml(spec.trials.front().config);
    }
    if (spec.early_stop && !spec.trials.empty()) {
      if (values.count("no-measure") && !sweep::has_logged_epochs(spec, out_dir)) {
        std::cout << "\n# projected cost: no earlier logs in " << out_dir
                  << " (and --no-measure): trial-epochs only\n"
                  << "  full sweep: " << sweep::full_trial_epochs(spec)
                  << ", ASHA worst case: " << sweep::asha_trial_epochs(spec, true)
                  << ", ASHA synchronous halving: " << sweep::asha_trial_epochs(spec, false)
                  << "\n";
      } else {
        std::cout.flush();
        sweep::print_projection(std::cout, spec, sweep::project_cost(spec, out_dir));
      }
    }
    return 0;
  }

  sweep::MpiSession session;
  install_interrupt_handlers();  // after MPI_Init, which may install handlers of its own
  try {
    return sweep::run_sweep(spec, sweep_options).exit_status();
  } catch (const std::exception& error) {
    // Outside a trial, a rank that fails alone would leave the others waiting in a collective.
    if (session.size() > 1) {
      log_error("sweep failed: ", error.what());
      session.abort(exit_status_of(error));
    }
    throw;
  }
}

}  // namespace md::cli
