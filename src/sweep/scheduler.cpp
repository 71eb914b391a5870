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
#include <memory>
#include <sstream>
#include <stop_token>
#include <thread>
#include <type_traits>
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

// Where this rank runs: its place in the world, its group (the ranks that run a trial
// together; rank 0 of the group leads it) and its rank on the node (which GPU it takes).
struct Placement {
  Placement(const SweepSpec& spec, const SweepOptions& options)
      : world_rank(comm_rank(world)),
        world_size(comm_size(world)),
        group_size(checked_group_size(spec, options, world_rank, world_size)) {
    Communicator node;
    MD_MPI_CHECK(
        MPI_Comm_split_type(world, MPI_COMM_TYPE_SHARED, world_rank, MPI_INFO_NULL, node.out()));
    local_rank = comm_rank(node.get());
    MD_MPI_CHECK(MPI_Comm_split(world, world_rank / group_size, world_rank, group.out()));
    MD_MPI_CHECK(MPI_Comm_set_errhandler(group.get(), MPI_ERRORS_RETURN));
    leader = comm_rank(group.get()) == 0;
  }

  const MPI_Comm world = MPI_COMM_WORLD;
  const int world_rank;
  const int world_size;
  const int group_size;
  int local_rank = 0;
  bool leader = false;
  Communicator group;
};

// ASHA (an early_stop sweep): every group leader reads and records decisions in the output
// directory. nullptr without early_stop; InputError where the options do not fit the sweep.
// Collective over the world (a restart's files are removed by rank 0 before any rank reads).
std::unique_ptr<AshaQueue> open_asha(const SweepSpec& spec, const SweepOptions& options,
                                     const Placement& place) {
  if (options.worker && !spec.early_stop) {
    throw InputError(spec.source +
                     ": --worker runs an early_stop sweep's work as it is decided; "
                     "this sweep has no early_stop (use --trial-index)");
  }
  if (options.worker &&
      (place.world_size != place.group_size || options.resume == ResumePolicy::Restart)) {
    throw InputError(::md::detail::concat(
        spec.source, ": --worker is one worker of ", place.group_size, " rank(s) (",
        io::key_path::runtime_ranks_per_trial, "), without --no-resume"));
  }
  if (!spec.early_stop) return nullptr;
  if (options.trial_index) {
    throw InputError(spec.source +
                     ": --trial-index runs one fixed trial; an early_stop sweep "
                     "decides its work as it goes: run it on MPI ranks");
  }
  if (place.world_rank == 0 && options.resume == ResumePolicy::Restart) {
    std::error_code ignored;
    fs::remove_all(AshaRecords(options.out_dir).directory(), ignored);
    for (const SweepTrial& trial : spec.trials) {
      fs::remove(log_path(options.out_dir, trial.id), ignored);
      fs::remove(checkpoint_path(options.out_dir, trial.id), ignored);
    }
  }
  MD_MPI_CHECK(MPI_Barrier(place.world));
  char host[256] = {};
  ::gethostname(host, sizeof host - 1);
  auto asha = std::make_unique<AshaQueue>(
      spec, options.out_dir,
      options.worker ? *options.worker
                     : std::string(host) + " pid " + std::to_string(::getpid()) + " rank " +
                           std::to_string(place.world_rank));
  if (options.worker) asha->set_worker_mode(options.stale_seconds);
  return asha;
}

// A worker (Slurm array task) marks itself alive every 10 s while it runs, so that others take
// its work over only when it is gone. Nothing without a queue.
class Heartbeat {
 public:
  explicit Heartbeat(AshaQueue* asha) {
    if (!asha) return;
    thread_ = std::jthread([asha](std::stop_token stop) {
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

 private:
  std::jthread thread_;
};

// Rank 0's queue. Without early_stop: the trials to run, less those complete (counted in
// `skipped`). ASHA: the units whose recorded work a killed run left unfinished (no other worker
// runs them: this sweep owns the directory), taken before any new decision; none for a worker,
// which resumes its own work through the queue.
std::vector<int> first_queue(const SweepSpec& spec, const SweepOptions& options, AshaQueue* asha,
                             long& skipped) {
  if (!asha) return trials_to_run(spec, options, skipped);
  if (options.worker) return {};
  std::vector<int> queue = asha->unfinished_units();
  if (!queue.empty()) {
    log_info("ASHA: finishing the work of ", queue.size(), " unit(s) left by an earlier run");
  }
  return queue;
}

// Rank 0's `values` on every rank of `comm`.
template <typename Int>
std::vector<Int> broadcast_from_rank0(std::vector<Int> values, MPI_Comm comm) {
  static_assert(std::is_same_v<Int, int> || std::is_same_v<Int, std::int64_t>);
  const MPI_Datatype type = std::is_same_v<Int, int> ? MPI_INT : MPI_INT64_T;
  std::int64_t size = static_cast<std::int64_t>(values.size());
  MD_MPI_CHECK(MPI_Bcast(&size, 1, MPI_INT64_T, 0, comm));
  values.resize(static_cast<std::size_t>(size));
  if (size > 0) MD_MPI_CHECK(MPI_Bcast(values.data(), static_cast<int>(size), type, 0, comm));
  return values;
}

// The queue loop of one rank: its group's leader takes the next work (a trial of the queue, or
// ASHA's next unit to a rung) and the group runs it, until the queue is empty or an interrupt.
// Counts the outcomes and the time spent inside trials and taking work.
class TrialLoop {
 public:
  TrialLoop(const SweepSpec& spec, const SweepOptions& options, const Placement& place,
            AshaQueue* asha, const std::vector<int>& queue)
      : spec_(spec),
        options_(options),
        place_(place),
        asha_(asha),
        queue_(queue),
        progress_(options.progress
                      ? *options.progress
                      : (place.world_size > 1 ? train::Progress::Lines : train::Progress::Auto)) {}

  // Collective over the world (the queue position's window).
  void run() {
    start_ = Clock::now();
    end_ = start_;
    QueueCounter counter(place_.world);
    while (true) {
      const Clock::time_point queue_start = Clock::now();
      const std::vector<std::int64_t> work = next_work(counter);
      seconds_in_queue_ += std::chrono::duration<double>(Clock::now() - queue_start).count();
      if (work.empty()) {
        end_ = Clock::now();  // before the window's collective free waits for the others
        break;
      }
      for (std::size_t i = 1; i < work.size() && !stopped_; ++i) {
        run_here(spec_.trials[static_cast<std::size_t>(work[i])], static_cast<int>(work[0]));
      }
    }
  }

  // Dispatch overhead: the share of this rank's time in the queue loop spent outside run_trial
  // (queue access, logging, file removal). A trial's time includes its collective's setup and
  // the failure record of a trial that threw. The wait for the other ranks' last trials after
  // the queue ran dry is not counted.
  void log_dispatch_overhead() const {
    const double loop_seconds = std::chrono::duration<double>(end_ - start_).count();
    log_info("rank ", place_.world_rank, " ran ", trials_here_, " trial(s): ", seconds_in_trials_,
             " s inside trials of ", loop_seconds, " s in the queue loop (",
             loop_seconds > 0 ? 100.0 * seconds_in_trials_ / loop_seconds : 100.0, "%), of which ",
             seconds_in_queue_, " s taking trials from the queue");
  }

  const Counts& counts() const { return counts_; }

 private:
  using Clock = std::chrono::steady_clock;

  // The next work, the same on every rank of the group: [stop epoch, trial index, ...]; empty
  // when there is none.
  std::vector<std::int64_t> next_work(QueueCounter& counter) {
    std::vector<std::int64_t> work;
    const auto queue_length = static_cast<std::int64_t>(queue_.size());
    if (place_.leader && !stopped_ && !interrupt_requested()) {
      const std::int64_t position = counter.fetch_and_increment();
      if (!asha_) {
        if (position < queue_length) work = {0, queue_[static_cast<std::size_t>(position)]};
      } else {
        const std::optional<AshaWork> next =
            position < queue_length ? asha_->work_for(queue_[static_cast<std::size_t>(position)])
                                    : asha_->next([] { return interrupt_requested(); });
        if (next) {
          work.push_back(next->stop_epoch);
          work.insert(work.end(), next->trials.begin(), next->trials.end());
        }
      }
    }
    return broadcast_from_rank0(std::move(work), place_.group.get());
  }

  // One trial, on every rank of the group; stop_epoch > 0 halts it there (an ASHA rung).
  void run_here(const SweepTrial& trial, int stop_epoch) {
    // A device the trial cannot have (runtime.device: cuda without a GPU) fails the trial.
    Device device = Device::cpu();
    std::string device_error;
    try {
      device = train::resolve_device(trial.config.runtime.device, place_.local_rank);
    } catch (const Error& error) {
      device_error = error.what();
    }
    announce(trial, device_error.empty() ? device.str() : trial.config.runtime.device);
    MD_MPI_CHECK(MPI_Barrier(place_.group.get()));  // files removed before any rank reads them

    train::TrialContext context;
    context.out_dir = options_.out_dir;
    context.sweep_name = spec_.name;
    context.device = device;
    context.progress = progress_;
    context.label = progress_label(trial.index, static_cast<int>(spec_.trials.size()), trial.id);
    context.stop_epoch = stop_epoch;
    const Clock::time_point started = Clock::now();
    try {
      const std::string rank_error =
          device_error.empty() ? std::string() : trial.config.source + ": " + device_error;
      std::unique_ptr<train::Collective> collective;
      // The group's ranks agree before its collective exists: a rank that failed (its device)
      // ends the trial on every rank instead of leaving the others waiting.
      if (place_.group_size > 1) {
        collective = make_group_collective(place_.group.get(), device, rank_error);
      }
      if (!rank_error.empty()) throw InputError(rank_error);
      context.collective = collective.get();
      const train::TrialResult result = train::run_trial(trial.config, context);
      const double seconds = std::chrono::duration<double>(Clock::now() - started).count();
      if (result.status == io::TrialStatus::Complete) {
        ++counts_.complete;
      } else if (result.status == io::TrialStatus::Stopped) {
        ++counts_.stopped;
      } else {
        ++counts_.diverged;
      }
      if (place_.leader) {
        log_info("trial ", trial.index, " (", trial.id, ") ", io::status_name(result.status),
                 " in ", seconds, " s");
      }
    } catch (const Interrupted& interrupted) {
      ++counts_.interrupted;
      stopped_ = true;
      if (place_.leader) {
        log_warning("trial ", trial.index, " (", trial.id, "): ", interrupted.what());
      }
    } catch (const std::exception& error) {
      ++counts_.failed;
      if (place_.leader) {
        log_error("trial ", trial.index, " (", trial.id, ") failed: ", error.what());
        record_failure(spec_, trial, options_.out_dir, device, place_.group_size, error.what());
      }
    }
    seconds_in_trials_ += std::chrono::duration<double>(Clock::now() - started).count();
    ++trials_here_;
  }

  // The leader counts the start and, with --no-resume, removes the trial's files first (an
  // ASHA sweep removed them all at its start); each rank says where it runs the trial.
  void announce(const SweepTrial& trial, const std::string& device) {
    if (!place_.leader) {
      log_info("rank ", place_.world_rank, " joins trial ", trial.index, " (", trial.id, ") on ",
               device);
      return;
    }
    ++counts_.started;
    if (options_.resume == ResumePolicy::Restart && !asha_) {
      std::error_code ignored;  // a file that is not there is fine; one that stays fails later
      fs::remove(log_path(options_.out_dir, trial.id), ignored);
      fs::remove(checkpoint_path(options_.out_dir, trial.id), ignored);
    }
    log_info("rank ", place_.world_rank, " runs trial ", trial.index, " (", trial.id, ") on ",
             device);
  }

  const SweepSpec& spec_;
  const SweepOptions& options_;
  const Placement& place_;
  AshaQueue* const asha_;
  const std::vector<int>& queue_;
  const train::Progress progress_;
  Counts counts_;
  bool stopped_ = false;  // interrupted: this group takes no more work
  int trials_here_ = 0;
  double seconds_in_trials_ = 0.0;
  double seconds_in_queue_ = 0.0;  // taking the next work (fetch-and-add, group broadcast)
  Clock::time_point start_;
  Clock::time_point end_;
};

// The summary from the world's counts. With ASHA the stopped trials and those neither finished
// nor stopped for good (after an interrupt) come from the directory.
SweepSummary summarized(const SweepSpec& spec, const Counts& total, long queue_length,
                        AshaQueue* asha) {
  SweepSummary summary;
  summary.complete = total.complete;
  summary.failed = total.failed;
  summary.diverged = total.diverged;
  summary.interrupted = total.interrupted;
  summary.skipped_complete = total.skipped;
  summary.not_started = queue_length - total.started;
  if (asha) {
    const AshaTotals totals = asha->totals();
    summary.stopped = totals.stopped_trials;
    summary.not_started =
        interrupt_requested() || total.interrupted > 0
            ? static_cast<long>(spec.trials.size()) - totals.stopped_trials - totals.complete_trials
            : 0;
    summary.asha = totals;
  }
  return summary;
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
  const Placement place(spec, options);
  const std::unique_ptr<AshaQueue> asha = open_asha(spec, options, place);
  const Heartbeat heartbeat(options.worker ? asha.get() : nullptr);

  // The queue: decided by rank 0 from the logs, the same on every rank.
  long skipped = 0;
  std::vector<int> queue;
  if (place.world_rank == 0) queue = first_queue(spec, options, asha.get(), skipped);
  queue = broadcast_from_rank0(std::move(queue), place.world);

  TrialLoop loop(spec, options, place, asha.get(), queue);
  loop.run();
  loop.log_dispatch_overhead();
  Counts counts = loop.counts();
  counts.skipped = skipped;

  const Counts total = summed_over_world(counts, place.leader, place.world);
  const SweepSummary summary = summarized(spec, total, static_cast<long>(queue.size()), asha.get());
  if (place.world_rank == 0) {
    print_summary(std::cout, spec, summary, place.world_size / place.group_size, place.group_size,
                  asha.get());
  }
  return summary;
}

}  // namespace md::sweep
