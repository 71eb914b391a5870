// The MPI scheduler of a sweep (see scheduler.h). The queue is the list of trial indices to run,
// decided once by rank 0 (from the logs) and broadcast, so that every rank agrees on it even
// while trials finish; a 64-bit counter in an MPI window on rank 0 hands out positions in it
// with MPI_Fetch_and_op, so a group that finishes early takes the next trial at once and no
// manager rank is needed.
#include "sweep/scheduler.h"

#include <unistd.h>

#include <array>
#include <chrono>
#include <ctime>
#include <filesystem>
#include <iostream>
#include <sstream>
#include <stop_token>
#include <thread>
#include <vector>

#include "core/interrupt.h"
#include "core/logging.h"
#include "io/config_keys.h"
#include "io/log_schema.h"
#include "io/trial_log.h"
#include "sweep/asha_queue.h"
#include "sweep/group_collective.h"
#include "sweep/mpi_check.h"
#include "sweep/status.h"

namespace md::sweep {
namespace {

namespace fs = std::filesystem;

// A trial that threw: its log says failed, with the error. The trainer marks a log it opened;
// a trial that failed before opening one (a missing data file, a bad checkpoint) gets one here.
void record_failure(const SweepSpec& spec, const SweepTrial& trial, const std::string& out_dir,
                    const Device& device, int ranks, const std::string& error) {
  const std::string path = log_path(out_dir, trial.id);
  try {
    if (fs::exists(path)) {
      io::TrialLog log = io::TrialLog::open(path, io::OpenMode::Resume);
      io::record_status(log, io::TrialStatus::Failed, error);
      log.close();
      return;
    }
  } catch (const Error& unreadable) {
    log_warning("replacing the unreadable log ", path, ": ", unreadable.what());
  }
  fs::create_directories(out_dir);
  const io::TrialLogHeader header{.trial_id = trial.id,
                                  .sweep = spec.name,
                                  .config = io::to_yaml(trial.config),
                                  .device_name = device.str(),
                                  .ranks = ranks};
  io::TrialLog log =
      io::TrialLog::open(path, io::OpenMode::Create,
                         io::trial_log_root_attributes(header, io::TrialStatus::Failed, error));
  log.close();
}

// The counts one rank contributes to the summary. Every rank of a group counts the outcome of
// the trial it ran; only the leaders' outcomes are summed (see summed_over_world).
struct Counts {
  long complete = 0;
  long failed = 0;
  long diverged = 0;
  long interrupted = 0;
  long skipped = 0;  // complete in the logs, not run again (rank 0)
  long started = 0;  // trials begun (leaders)
  long stopped = 0;  // stopped at an ASHA rung

  static constexpr int kFields = 7;
  std::array<long, kFields> packed() const {
    return {complete, failed, diverged, interrupted, skipped, started, stopped};
  }
  static Counts unpacked(const std::array<long, kFields>& values) {
    return Counts{.complete = values[0],
                  .failed = values[1],
                  .diverged = values[2],
                  .interrupted = values[3],
                  .skipped = values[4],
                  .started = values[5],
                  .stopped = values[6]};
  }
};

// The sum over the world of each rank's counts, the outcomes only from group leaders (every
// member of a group counted the same trial). Collective over the world.
Counts summed_over_world(Counts counts, bool leader, MPI_Comm world) {
  if (!leader) {
    counts.complete = 0;
    counts.failed = 0;
    counts.diverged = 0;
    counts.interrupted = 0;
  }
  const std::array<long, Counts::kFields> mine = counts.packed();
  std::array<long, Counts::kFields> total{};
  MD_MPI_CHECK(MPI_Allreduce(mine.data(), total.data(), Counts::kFields, MPI_LONG, MPI_SUM, world));
  return Counts::unpacked(total);
}

// The shared queue position: a counter on rank 0 that every group leader increments atomically.
class QueueCounter {
 public:
  explicit QueueCounter(MPI_Comm world) : world_(world) {
    int rank = 0;
    MD_MPI_CHECK(MPI_Comm_rank(world_, &rank));
    const MPI_Aint bytes = rank == 0 ? static_cast<MPI_Aint>(sizeof(std::int64_t)) : 0;
    MD_MPI_CHECK(
        MPI_Win_allocate(bytes, sizeof(std::int64_t), MPI_INFO_NULL, world_, &base_, &window_));
    MD_MPI_CHECK(MPI_Win_set_errhandler(window_, MPI_ERRORS_RETURN));
    if (rank == 0) {
      MD_MPI_CHECK(MPI_Win_lock(MPI_LOCK_EXCLUSIVE, 0, 0, window_));
      *base_ = 0;
      MD_MPI_CHECK(MPI_Win_unlock(0, window_));
    }
    MD_MPI_CHECK(MPI_Barrier(world_));
  }
  QueueCounter(const QueueCounter&) = delete;
  QueueCounter& operator=(const QueueCounter&) = delete;
  // Collective over the world: every rank must reach it.
  ~QueueCounter() {
    if (MPI_Win_free(&window_) != MPI_SUCCESS) log_warning("MPI_Win_free failed");
  }

  std::int64_t fetch_and_increment() {
    const std::int64_t one = 1;
    std::int64_t previous = 0;
    MD_MPI_CHECK(MPI_Win_lock(MPI_LOCK_SHARED, 0, 0, window_));
    MD_MPI_CHECK(MPI_Fetch_and_op(&one, &previous, MPI_INT64_T, 0, 0, MPI_SUM, window_));
    MD_MPI_CHECK(MPI_Win_unlock(0, window_));
    return previous;
  }

 private:
  MPI_Comm world_;
  std::int64_t* base_ = nullptr;
  MPI_Win window_ = MPI_WIN_NULL;
};

// An MPI communicator freed at scope exit.
class Communicator {
 public:
  Communicator() = default;
  Communicator(const Communicator&) = delete;
  Communicator& operator=(const Communicator&) = delete;
  ~Communicator() {
    if (comm_ != MPI_COMM_NULL && MPI_Comm_free(&comm_) != MPI_SUCCESS) {
      log_warning("MPI_Comm_free failed");
    }
  }
  MPI_Comm* out() { return &comm_; }
  MPI_Comm get() const { return comm_; }

 private:
  MPI_Comm comm_ = MPI_COMM_NULL;
};

int comm_rank(MPI_Comm comm) {
  int rank = 0;
  MD_MPI_CHECK(MPI_Comm_rank(comm, &rank));
  return rank;
}

int comm_size(MPI_Comm comm) {
  int size = 0;
  MD_MPI_CHECK(MPI_Comm_size(comm, &size));
  return size;
}

// "[I/N id8]", the prefix of a trial's progress lines. A stream: GCC 12 warns falsely
// (-Wrestrict) on "[" + std::string + ..., also when appended piecewise inside a lambda.
std::string progress_label(int index, int count, const std::string& id) {
  std::ostringstream label;
  label << '[' << index << '/' << count << ' ' << id.substr(0, 8) << ']';
  return label.str();
}

// ASHA's figures at the end of a sweep: units per rung, trial-epochs and GPU-hours spent against
// those of the full sweep.
void print_asha_totals(std::ostream& out, const EarlyStopSpec& early_stop,
                       const std::vector<int>& levels, const AshaTotals& totals) {
  out << "  ASHA (" << early_stop.metric << ", reduction " << early_stop.reduction
      << "): units reaching each rung";
  for (std::size_t level = 0; level < levels.size(); ++level) {
    out << (level == 0 ? " " : ", ") << "epoch "
        << (levels[level] > 0 ? std::to_string(levels[level]) : std::string("end")) << ": "
        << totals.units_reaching[level] << "/" << totals.units;
  }
  const double fraction =
      totals.full_trial_epochs > 0
          ? static_cast<double>(totals.trial_epochs) / static_cast<double>(totals.full_trial_epochs)
          : 0.0;
  out << "\n  trial-epochs      " << totals.trial_epochs << " of " << totals.full_trial_epochs
      << " for the full sweep (" << 100.0 * fraction << "%)\n";
  if (totals.gpu_hours > 0.0) {
    out << "  GPU-hours         " << totals.gpu_hours << " (the full sweep: about "
        << (fraction > 0 ? totals.gpu_hours / fraction : 0.0) << ")\n";
  }
}

// The ranks per trial group: runtime.ranks_per_trial, at most the world's size; throws
// InputError where the world cannot be split so or --trial-index does not fit.
int checked_group_size(const SweepSpec& spec, const SweepOptions& options, int world_rank,
                       int world_size) {
  const int trial_count = static_cast<int>(spec.trials.size());
  int group_size = spec.ranks_per_trial;
  if (world_size < group_size) {
    if (world_rank == 0) {
      log_warning(spec.source, ": ", io::key_path::runtime_ranks_per_trial, " is ", group_size,
                  " but only ", world_size, " rank(s) run the sweep: each trial runs on ",
                  world_size);
    }
    group_size = world_size;
  }
  if (world_size % group_size != 0) {
    throw InputError(::md::detail::concat(
        spec.source, ": ", world_size, " ranks cannot be split into groups of ",
        io::key_path::runtime_ranks_per_trial, " = ", group_size));
  }
  if (options.trial_index && world_size != group_size) {
    throw InputError(::md::detail::concat(
        spec.source, ": --trial-index runs one trial: start it on ", group_size, " rank(s) (",
        io::key_path::runtime_ranks_per_trial, "), not ", world_size));
  }
  if (options.trial_index && (*options.trial_index < 0 || *options.trial_index >= trial_count)) {
    throw InputError(spec.source + ": --trial-index " + std::to_string(*options.trial_index) +
                     " is out of range: the sweep has " + std::to_string(trial_count) + " trials");
  }
  return group_size;
}

// The summary rank 0 prints at the end of a sweep (tests compare its text).
void print_summary(std::ostream& out, const SweepSpec& spec, const SweepSummary& summary,
                   int groups, int group_size, AshaQueue* asha) {
  out << "sweep " << spec.name << ": " << spec.trials.size() << " trials, " << groups
      << " group(s) of " << group_size << " rank(s)\n"
      << "  complete          " << summary.complete << "\n"
      << "  failed            " << summary.failed << "\n"
      << "  diverged          " << summary.diverged << "\n"
      << "  interrupted       " << summary.interrupted << "\n"
      << "  skipped-complete  " << summary.skipped_complete << "\n";
  if (asha) out << "  stopped           " << summary.stopped << "\n";
  if (summary.not_started > 0) {
    out << "  not-started       " << summary.not_started << "\n";
  }
  const long left = static_cast<long>(spec.trials.size()) - summary.asha.complete_trials -
                    summary.asha.stopped_trials;
  if (asha && summary.not_started == 0 && left > 0 && asha->budget_spent()) {
    out << "  not-started       " << left << " (the budget is spent)\n";
  }
  if (asha) print_asha_totals(out, *spec.early_stop, asha->levels(), summary.asha);
  out.flush();
}

// The queue of a sweep without early_stop: the trials to run (--trial-index: that one), less
// those complete in the logs when resuming, which are counted in `skipped`.
std::vector<int> trials_to_run(const SweepSpec& spec, const SweepOptions& options, long& skipped) {
  std::vector<int> candidates;
  if (options.trial_index) {
    candidates.push_back(*options.trial_index);
  } else {
    for (int index = 0; index < static_cast<int>(spec.trials.size()); ++index) {
      candidates.push_back(index);
    }
  }
  std::vector<int> queue;
  for (int index : candidates) {
    const auto& trial = spec.trials[static_cast<std::size_t>(index)];
    if (options.resume == ResumePolicy::Continue &&
        read_trial_state(options.out_dir, trial.id) == io::TrialStatus::Complete) {
      ++skipped;
    } else {
      queue.push_back(index);
    }
  }
  return queue;
}

}  // namespace

MpiSession::MpiSession() {
  int already = 0;
  MD_MPI_CHECK(MPI_Initialized(&already));
  if (!already) {
    int provided = 0;
    MD_MPI_CHECK(MPI_Init_thread(nullptr, nullptr, MPI_THREAD_FUNNELED, &provided));
    initialized_here_ = true;
    if (provided < MPI_THREAD_FUNNELED) {
      log_warning("MPI provides thread level ", provided, " < MPI_THREAD_FUNNELED");
    }
  }
  MD_MPI_CHECK(MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN));
  MD_MPI_CHECK(MPI_Comm_rank(MPI_COMM_WORLD, &rank_));
  MD_MPI_CHECK(MPI_Comm_size(MPI_COMM_WORLD, &size_));
  if (size_ > 1) set_log_prefix("rank " + std::to_string(rank_) + "/" + std::to_string(size_));
}

MpiSession::~MpiSession() {
  int finalized = 0;
  if (!initialized_here_ || MPI_Finalized(&finalized) != MPI_SUCCESS || finalized) return;
  if (MPI_Finalize() != MPI_SUCCESS) log_warning("MPI_Finalize failed");
}

void MpiSession::abort(int exit_status) const {
  MPI_Abort(MPI_COMM_WORLD, exit_status);
  std::_Exit(exit_status);  // MPI_Abort does not return; this only satisfies [[noreturn]]
}

int SweepSummary::exit_status() const {
  if (interrupted > 0 || not_started > 0) return 3;
  if (failed > 0 || diverged > 0) return 1;
  return 0;
}

SweepSummary run_sweep(const SweepSpec& spec, const SweepOptions& options) {
  const MPI_Comm world = MPI_COMM_WORLD;
  const int world_rank = comm_rank(world);
  const int world_size = comm_size(world);
  const int trial_count = static_cast<int>(spec.trials.size());

  const int group_size = checked_group_size(spec, options, world_rank, world_size);

  Communicator node;
  MD_MPI_CHECK(
      MPI_Comm_split_type(world, MPI_COMM_TYPE_SHARED, world_rank, MPI_INFO_NULL, node.out()));
  const int local_rank = comm_rank(node.get());
  Communicator group;
  MD_MPI_CHECK(MPI_Comm_split(world, world_rank / group_size, world_rank, group.out()));
  MD_MPI_CHECK(MPI_Comm_set_errhandler(group.get(), MPI_ERRORS_RETURN));
  const bool leader = comm_rank(group.get()) == 0;

  // ASHA: every group leader reads and records decisions in the output directory; the queue
  // holds the units whose recorded work a killed run left unfinished (no other worker runs them:
  // this sweep owns the directory), taken before any new decision.
  std::unique_ptr<AshaQueue> asha;
  if (options.worker && !spec.early_stop) {
    throw InputError(spec.source +
                     ": --worker runs an early_stop sweep's work as it is decided; "
                     "this sweep has no early_stop (use --trial-index)");
  }
  if (options.worker && (world_size != group_size || options.resume == ResumePolicy::Restart)) {
    throw InputError(::md::detail::concat(spec.source, ": --worker is one worker of ", group_size,
                                          " rank(s) (", io::key_path::runtime_ranks_per_trial,
                                          "), without --no-resume"));
  }
  if (spec.early_stop) {
    if (options.trial_index) {
      throw InputError(spec.source +
                       ": --trial-index runs one fixed trial; an early_stop sweep "
                       "decides its work as it goes: run it on MPI ranks");
    }
    if (world_rank == 0 && options.resume == ResumePolicy::Restart) {
      std::error_code ignored;
      fs::remove_all(AshaRecords(options.out_dir).directory(), ignored);
      for (const SweepTrial& trial : spec.trials) {
        fs::remove(log_path(options.out_dir, trial.id), ignored);
        fs::remove(checkpoint_path(options.out_dir, trial.id), ignored);
      }
    }
    MD_MPI_CHECK(MPI_Barrier(world));
    char host[256] = {};
    ::gethostname(host, sizeof host - 1);
    asha = std::make_unique<AshaQueue>(spec, options.out_dir,
                                       options.worker ? *options.worker
                                                      : std::string(host) + " pid " +
                                                            std::to_string(::getpid()) + " rank " +
                                                            std::to_string(world_rank));
    if (options.worker) asha->set_worker_mode(options.stale_seconds);
  }
  // A worker marks itself alive while it runs, so that others take its work over only when it
  // is gone.
  std::jthread heartbeat;
  if (options.worker) {
    heartbeat = std::jthread([&asha](std::stop_token stop) {
      while (!stop.stop_requested()) {
        try {
          asha->heartbeat();
        } catch (const std::exception& error) {
          log_warning("ASHA heartbeat: ", error.what());
        }
        for (int tick = 0; tick < 50 && !stop.stop_requested(); ++tick) {
          std::this_thread::sleep_for(std::chrono::milliseconds(200));
        }
      }
    });
  }

  // The queue: decided by rank 0 from the logs, the same on every rank.
  Counts counts;
  std::vector<int> queue;
  if (world_rank == 0 && asha && !options.worker) {
    queue = asha->unfinished_units();
    if (!queue.empty()) {
      log_info("ASHA: finishing the work of ", queue.size(), " unit(s) left by an earlier run");
    }
  } else if (world_rank == 0 && !asha) {
    queue = trials_to_run(spec, options, counts.skipped);
  }
  int queue_length = static_cast<int>(queue.size());
  MD_MPI_CHECK(MPI_Bcast(&queue_length, 1, MPI_INT, 0, world));
  queue.resize(static_cast<std::size_t>(queue_length));
  if (queue_length > 0) MD_MPI_CHECK(MPI_Bcast(queue.data(), queue_length, MPI_INT, 0, world));

  const train::Progress progress =
      options.progress ? *options.progress
                       : (world_size > 1 ? train::Progress::Lines : train::Progress::Auto);
  bool stopped = false;
  using Clock = std::chrono::steady_clock;
  const Clock::time_point loop_start = Clock::now();
  double seconds_in_trials = 0.0;
  double seconds_in_queue = 0.0;  // taking the next trial (fetch-and-add, group broadcast)
  int trials_here = 0;
  Clock::time_point loop_end = loop_start;
  {
    QueueCounter counter(world);
    // One trial, on every rank of the group; stop_epoch > 0 halts it there (an ASHA rung).
    const auto run_here = [&](const SweepTrial& trial, int stop_epoch) {
      // A device the trial cannot have (runtime.device: cuda without a GPU) fails the trial.
      Device device = Device::cpu();
      std::string device_error;
      try {
        device = train::resolve_device(trial.config.runtime.device, local_rank);
      } catch (const Error& error) {
        device_error = error.what();
      }
      if (leader) {
        ++counts.started;
        if (options.resume == ResumePolicy::Restart && !asha) {  // ASHA: removed at the start
          std::error_code ignored;  // a file that is not there is fine; one that stays fails below
          fs::remove(log_path(options.out_dir, trial.id), ignored);
          fs::remove(checkpoint_path(options.out_dir, trial.id), ignored);
        }
        log_info("rank ", world_rank, " runs trial ", trial.index, " (", trial.id, ") on ",
                 device_error.empty() ? device.str() : trial.config.runtime.device);
      } else {
        log_info("rank ", world_rank, " joins trial ", trial.index, " (", trial.id, ") on ",
                 device_error.empty() ? device.str() : trial.config.runtime.device);
      }
      MD_MPI_CHECK(MPI_Barrier(group.get()));  // files removed before any rank reads them

      train::TrialContext context;
      context.out_dir = options.out_dir;
      context.sweep_name = spec.name;
      context.device = device;
      context.progress = progress;
      context.label = progress_label(trial.index, trial_count, trial.id);
      context.stop_epoch = stop_epoch;
      const Clock::time_point started = Clock::now();
      try {
        const std::string rank_error =
            device_error.empty() ? std::string() : trial.config.source + ": " + device_error;
        std::unique_ptr<train::Collective> collective;
        // The group's ranks agree before its collective exists: a rank that failed (its device)
        // ends the trial on every rank instead of leaving the others waiting.
        if (group_size > 1) collective = make_group_collective(group.get(), device, rank_error);
        if (!rank_error.empty()) throw InputError(rank_error);
        context.collective = collective.get();
        const train::TrialResult result = train::run_trial(trial.config, context);
        const double seconds = std::chrono::duration<double>(Clock::now() - started).count();
        if (result.status == io::TrialStatus::Complete) {
          ++counts.complete;
        } else if (result.status == io::TrialStatus::Stopped) {
          ++counts.stopped;
        } else {
          ++counts.diverged;
        }
        if (leader) {
          log_info("trial ", trial.index, " (", trial.id, ") ", io::status_name(result.status),
                   " in ", seconds, " s");
        }
      } catch (const Interrupted& interrupted) {
        ++counts.interrupted;
        stopped = true;
        if (leader) log_warning("trial ", trial.index, " (", trial.id, "): ", interrupted.what());
      } catch (const std::exception& error) {
        ++counts.failed;
        if (leader) {
          log_error("trial ", trial.index, " (", trial.id, ") failed: ", error.what());
          record_failure(spec, trial, options.out_dir, device, group_size, error.what());
        }
      }
      seconds_in_trials += std::chrono::duration<double>(Clock::now() - started).count();
      ++trials_here;
    };

    while (true) {
      // The next work, the same on every rank of the group: [stop epoch, trial index, ...];
      // empty when there is none.
      std::vector<std::int64_t> work;
      const Clock::time_point queue_start = Clock::now();
      if (leader && !stopped && !interrupt_requested()) {
        const std::int64_t position = counter.fetch_and_increment();
        if (!asha) {
          if (position < queue_length) work = {0, queue[static_cast<std::size_t>(position)]};
        } else {
          const std::optional<AshaWork> next =
              position < queue_length ? asha->work_for(queue[static_cast<std::size_t>(position)])
                                      : asha->next([] { return interrupt_requested(); });
          if (next) {
            work.push_back(next->stop_epoch);
            work.insert(work.end(), next->trials.begin(), next->trials.end());
          }
        }
      }
      std::int64_t work_size = static_cast<std::int64_t>(work.size());
      MD_MPI_CHECK(MPI_Bcast(&work_size, 1, MPI_INT64_T, 0, group.get()));
      work.resize(static_cast<std::size_t>(work_size));
      if (work_size > 0) {
        MD_MPI_CHECK(
            MPI_Bcast(work.data(), static_cast<int>(work_size), MPI_INT64_T, 0, group.get()));
      }
      seconds_in_queue += std::chrono::duration<double>(Clock::now() - queue_start).count();
      if (work.empty()) {
        loop_end = Clock::now();  // before the window's collective free waits for the others
        break;
      }
      for (std::size_t i = 1; i < work.size() && !stopped; ++i) {
        run_here(spec.trials[static_cast<std::size_t>(work[i])], static_cast<int>(work[0]));
      }
    }
  }

  // Dispatch overhead: the share of this rank's time in the queue loop spent outside run_trial
  // (queue access, logging, file removal). A trial's time includes its collective's setup and
  // the failure record of a trial that threw. The wait for the other ranks' last trials after
  // the queue ran dry is not counted.
  const double loop_seconds = std::chrono::duration<double>(loop_end - loop_start).count();
  log_info("rank ", world_rank, " ran ", trials_here, " trial(s): ", seconds_in_trials,
           " s inside trials of ", loop_seconds, " s in the queue loop (",
           loop_seconds > 0 ? 100.0 * seconds_in_trials / loop_seconds : 100.0, "%), of which ",
           seconds_in_queue, " s taking trials from the queue");

  const Counts total = summed_over_world(counts, leader, world);
  SweepSummary summary;
  summary.complete = total.complete;
  summary.failed = total.failed;
  summary.diverged = total.diverged;
  summary.interrupted = total.interrupted;
  summary.skipped_complete = total.skipped;
  summary.not_started = queue_length - total.started;
  if (asha) {
    // Trials whose unit is neither finished nor stopped for good (after an interrupt, or left
    // unstarted by a spent budget), and those stopped for good, from the directory.
    const AshaTotals totals = asha->totals();
    summary.stopped = totals.stopped_trials;
    summary.not_started =
        interrupt_requested() || total.interrupted > 0
            ? static_cast<long>(spec.trials.size()) - totals.stopped_trials - totals.complete_trials
            : 0;
    summary.asha = totals;
  }
  if (world_rank == 0) {
    print_summary(std::cout, spec, summary, world_size / group_size, group_size, asha.get());
  }
  return summary;
}

}  // namespace md::sweep
