// Tests of the sweep spec (src/sweep/spec.h) and of `metadistill sweep --list/--dry-run`:
// grid expansion order, cases (several keys set together, crossed with the grid), seeded random
// sampling (reproducible, inside its ranges, grid x random), duplicate collapse, errors naming the
// sweep file and key (exit status 2 from the CLI), trial states from logs, and the --list line
// format that slurm/submit relies on.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <sys/wait.h>

#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "core/error.h"
#include "io/trial_log.h"
#include "models/model.h"
#include "sweep/spec.h"
#include "sweep/status.h"

namespace md::sweep {
namespace {

namespace fs = std::filesystem;
using ::testing::ElementsAre;
using ::testing::HasSubstr;

constexpr const char* kBase =
    "base:\n"
    "  dataset: {name: idx, root: /usr/share/datasets/fashion-mnist}\n"
    "  model: {arch: resnet20}\n";

SweepSpec parse(const std::string& text) {
  return parse_sweep(text, "test.yaml", ".");
}

std::string error_of(const std::string& text) {
  try {
    parse(text);
  } catch (const InputError& error) {
    return error.what();
  }
  return "no error";
}

class TempDir {
 public:
  TempDir() {
    path_ = fs::temp_directory_path() /
            ("md_sweep_test_" + std::to_string(::getpid()) + "_" +
             ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(path_);
    fs::create_directories(path_);
  }
  ~TempDir() { fs::remove_all(path_); }
  std::string file(const std::string& name, const std::string& text) const {
    std::ofstream(path_ / name) << text;
    return (path_ / name).string();
  }
  const fs::path& path() const { return path_; }

 private:
  fs::path path_;
};

TEST(SweepSpec, GridIsCartesianProductFirstKeySlowest) {
  const SweepSpec spec = parse(std::string(kBase) +
                               "grid:\n"
                               "  method.name: [baseline, byot]\n"
                               "  runtime.seed: [0, 1, 2]\n");
  ASSERT_EQ(spec.trials.size(), 6u);
  EXPECT_EQ(spec.name, "test");
  std::vector<std::string> rows;
  for (const SweepTrial& trial : spec.trials) {
    EXPECT_EQ(trial.index, static_cast<int>(rows.size()));
    EXPECT_EQ(trial.id, io::trial_id(trial.config));
    rows.push_back(trial.overrides[0] + " " + trial.overrides[1]);
  }
  EXPECT_THAT(
      rows,
      ElementsAre("method.name=baseline runtime.seed=0", "method.name=baseline runtime.seed=1",
                  "method.name=baseline runtime.seed=2", "method.name=byot runtime.seed=0",
                  "method.name=byot runtime.seed=1", "method.name=byot runtime.seed=2"));
  EXPECT_EQ(spec.trials[4].config.method.name, io::MethodName::Byot);
  EXPECT_EQ(spec.trials[4].config.runtime.seed, 1u);
  EXPECT_EQ(spec.trials[4].config.model.arch, "resnet20");
  std::set<std::string> ids;
  for (const SweepTrial& trial : spec.trials) ids.insert(trial.id);
  EXPECT_EQ(ids.size(), 6u);
}

TEST(SweepSpec, CasesSetSeveralKeysTogetherAndVarySlowerThanTheGrid) {
  const SweepSpec spec = parse(std::string(kBase) +
                               "cases:\n"
                               "  - {method.name: baseline}\n"
                               "  - {method.name: metadistiller, method.meta.frozen: true}\n"
                               "grid:\n"
                               "  runtime.seed: [0, 1]\n");
  std::vector<std::string> rows;
  for (const SweepTrial& trial : spec.trials) {
    std::string row;
    for (const std::string& assignment : trial.overrides)
      row += (row.empty() ? "" : " ") + assignment;
    rows.push_back(row);
  }
  EXPECT_THAT(
      rows,
      ElementsAre("method.name=baseline runtime.seed=0", "method.name=baseline runtime.seed=1",
                  "method.name=metadistiller method.meta.frozen=true runtime.seed=0",
                  "method.name=metadistiller method.meta.frozen=true runtime.seed=1"));
  EXPECT_TRUE(spec.trials[3].config.method.meta.frozen);
  EXPECT_EQ(spec.trials[3].config.runtime.seed, 1u);
  // A trial's id is its config's, however the sweep reached it.
  const SweepSpec by_grid = parse(std::string(kBase) +
                                  "grid:\n"
                                  "  method.name: [metadistiller]\n"
                                  "  method.meta.frozen: [true]\n"
                                  "  runtime.seed: [1]\n");
  EXPECT_EQ(spec.trials[3].id, by_grid.trials[0].id);
  // Seeds among the axes: ASHA's unit is a configuration by default.
  const SweepSpec asha = parse(std::string(kBase) +
                               "cases:\n"
                               "  - {method.name: baseline, runtime.seed: 0}\n"
                               "  - {method.name: baseline, runtime.seed: 1}\n"
                               "early_stop: {method: asha, rungs: [1]}\n");
  ASSERT_TRUE(asha.early_stop.has_value());
  EXPECT_EQ(asha.early_stop->by, EarlyStopUnit::Config);
}

TEST(SweepSpec, BadCasesNameTheSweepFileAndCase) {
  EXPECT_THAT(error_of(std::string(kBase) + "cases: {method.name: byot}\n"),
              AllOf(HasSubstr("test.yaml"), HasSubstr("cases"), HasSubstr("non-empty list")));
  EXPECT_THAT(error_of(std::string(kBase) + "cases: [{method.name: byot}, []]\n"),
              AllOf(HasSubstr("cases[1]"), HasSubstr("non-empty mapping")));
  EXPECT_THAT(
      error_of(std::string(kBase) + "cases: [{runtime.seed: 1}]\ngrid: {runtime.seed: [0, 1]}\n"),
      AllOf(HasSubstr("cases[0].runtime.seed"), HasSubstr("also a grid key")));
  EXPECT_THAT(error_of(std::string(kBase) + "cases: [{method.nam: byot}]\n"),
              AllOf(HasSubstr("method.nam"), HasSubstr("cases[0]")));
}

TEST(SweepSpec, NoGridIsTheBaseTrialAlone) {
  const SweepSpec spec = parse(std::string("name: one\n") + kBase);
  ASSERT_EQ(spec.trials.size(), 1u);
  EXPECT_EQ(spec.name, "one");
  EXPECT_TRUE(spec.trials[0].overrides.empty());
}

TEST(SweepSpec, RandomIsSeededReproducibleInRangeAndCrossedWithGrid) {
  const std::string text = std::string(kBase) +
                           "grid: {runtime.seed: [0, 1]}\n"
                           "random:\n"
                           "  n: 5\n"
                           "  seed: 7\n"
                           "  space:\n"
                           "    method.alpha: {uniform: [0.1, 0.9]}\n"
                           "    method.meta.optimizer.lr: {log_uniform: [1.0e-4, 1.0e-2]}\n"
                           "    method.temperature: {choice: [1, 3, 5]}\n";
  const SweepSpec first = parse(text);
  const SweepSpec second = parse(text);
  ASSERT_EQ(first.trials.size(), 10u);
  std::set<double> alphas;
  for (std::size_t i = 0; i < first.trials.size(); ++i) {
    EXPECT_EQ(first.trials[i].id, second.trials[i].id);
    EXPECT_EQ(first.trials[i].overrides, second.trials[i].overrides);
    const io::TrialConfig& config = first.trials[i].config;
    EXPECT_GE(config.method.alpha, 0.1);
    EXPECT_LT(config.method.alpha, 0.9);
    EXPECT_GE(config.method.meta.optimizer.lr, 1e-4);
    EXPECT_LE(config.method.meta.optimizer.lr, 1e-2);
    EXPECT_TRUE(config.method.temperature == 1 || config.method.temperature == 3 ||
                config.method.temperature == 5);
    // Grid x random: the same 5 samples for each seed, seed varying slowest.
    EXPECT_EQ(config.runtime.seed, i < 5 ? 0u : 1u);
    EXPECT_EQ(config.method.alpha, first.trials[i % 5].config.method.alpha);
    alphas.insert(config.method.alpha);
  }
  EXPECT_EQ(alphas.size(), 5u);
  // The printed override reads back as exactly the value used.
  const std::string& printed = first.trials[0].overrides[1];
  ASSERT_EQ(printed.rfind("method.alpha=", 0), 0u);
  EXPECT_EQ(std::stod(printed.substr(13)), first.trials[0].config.method.alpha);

  std::string reseeded = text;
  reseeded.replace(reseeded.find("seed: 7"), 7, "seed: 8");
  EXPECT_NE(parse(reseeded).trials[0].config.method.alpha, first.trials[0].config.method.alpha);
}

TEST(SweepSpec, DuplicateIdsCollapse) {
  // runtime.device does not enter the id, and seed 0 appears twice: 2 x 3 grid, 2 trials.
  const SweepSpec spec = parse(std::string(kBase) +
                               "grid:\n"
                               "  runtime.device: [cpu, auto]\n"
                               "  runtime.seed: [0, 1, 0]\n");
  ASSERT_EQ(spec.trials.size(), 2u);
  EXPECT_EQ(spec.trials[0].index, 0);
  EXPECT_EQ(spec.trials[1].index, 1);
  EXPECT_THAT(spec.trials[1].overrides, ElementsAre("runtime.device=cpu", "runtime.seed=1"));
}

TEST(SweepSpec, BadKeysNameTheSweepFileAndKeyPath) {
  EXPECT_THAT(error_of(std::string(kBase) + "grid: {model.archh: [resnet20]}\n"),
              AllOf(HasSubstr("test.yaml"), HasSubstr("model.archh"), HasSubstr("grid")));
  EXPECT_THAT(error_of(std::string(kBase) + "grid: {optim.lr: [fast]}\n"),
              AllOf(HasSubstr("test.yaml"), HasSubstr("optim.lr")));
  EXPECT_THAT(error_of(std::string(kBase) + "gird: {optim.lr: [0.1]}\n"),
              AllOf(HasSubstr("test.yaml"), HasSubstr("unknown key 'gird'")));
  EXPECT_THAT(error_of(std::string(kBase) + "grid: {optim.lr: 0.1}\n"),
              AllOf(HasSubstr("grid.optim.lr"), HasSubstr("non-empty list")));
  EXPECT_THAT(
      error_of(std::string(kBase) + "random: {n: 2, space: {method.alpha: {normal: [0, 1]}}}\n"),
      HasSubstr("unknown distribution 'normal'"));
  EXPECT_THAT(
      error_of(std::string(kBase) + "random: {n: 2, space: {optim.lr: {log_uniform: [0, 1]}}}\n"),
      HasSubstr("low > 0"));
  EXPECT_THAT(
      error_of(std::string(kBase) + "random: {n: 0, space: {optim.lr: {uniform: [0, 1]}}}\n"),
      HasSubstr("random.n"));
  EXPECT_THAT(error_of("grid: {runtime.seed: [0]}\n"), HasSubstr("missing key 'base'"));
  EXPECT_THAT(error_of(std::string(kBase) + "grid: {runtime.ranks_per_trial: [1, 2]}\n"),
              HasSubstr("ranks_per_trial must be the same"));
}

TEST(SweepSpec, BaseFileIsRelativeToTheSweepFile) {
  TempDir dir;
  dir.file("trial.yaml",
           "dataset: {name: idx, root: /usr/share/datasets/fashion-mnist}\n"
           "model: {arch: resnet20}\noptim: {epochs: 3}\n");
  const std::string sweep_path =
      dir.file("sweep.yaml", "base: trial.yaml\ngrid: {optim.lr: [0.1, 0.05]}\n");
  const SweepSpec spec = load_sweep(sweep_path);
  ASSERT_EQ(spec.trials.size(), 2u);
  EXPECT_EQ(spec.name, "sweep");
  EXPECT_EQ(spec.trials[1].config.optim.epochs, 3);
  EXPECT_EQ(spec.trials[1].config.optim.lr, 0.05);
  const std::string missing = dir.file("missing.yaml", "base: nowhere.yaml\n");
  EXPECT_THROW(load_sweep(missing), InputError);
  EXPECT_THROW(load_sweep((dir.path() / "absent.yaml").string()), InputError);
}

TEST(SweepSpec, FlowTextQuotesWhatWouldNotReadBack) {
  const SweepSpec spec = parse(std::string(kBase) +
                               "grid:\n"
                               "  optim.schedule.milestones: [[30, 60]]\n"
                               "  dataset.root: ['/data/with space']\n");
  ASSERT_EQ(spec.trials.size(), 1u);
  EXPECT_THAT(spec.trials[0].overrides,
              ElementsAre("optim.schedule.milestones=[30, 60]", "dataset.root='/data/with space'"));
}

TEST(SweepStatus, StatesComeFromTheLogs) {
  TempDir dir;
  const std::string out = dir.path().string();
  EXPECT_EQ(read_trial_state(out, "0000000000000001"), io::TrialStatus::Pending);
  for (const char* status : {"complete", "failed", "running"}) {
    io::TrialLog log = io::TrialLog::open(log_path(out, status), io::OpenMode::Create,
                                          {{"status", std::string(status)}});
    log.close();
  }
  EXPECT_EQ(read_trial_state(out, "complete"), io::TrialStatus::Complete);
  EXPECT_EQ(read_trial_state(out, "failed"), io::TrialStatus::Failed);
  EXPECT_EQ(read_trial_state(out, "running"), io::TrialStatus::Running);
  dir.file("garbage.h5", "not an HDF5 file");
  EXPECT_EQ(read_trial_state(out, "garbage"), io::TrialStatus::Pending);
}

TEST(SweepJobs, ShippedSweepsExpandToBuildableModels) {
  const std::pair<const char*, std::size_t> sweeps[] = {
      {"quickstart.yaml", 6}, {"cifar100_table.yaml", 45}, {"ablation_metadistiller.yaml", 144}};
  std::set<std::string> architectures;
  for (const auto& [file, count] : sweeps) {
    const SweepSpec spec = load_sweep(std::string(MD_SOURCE_DIR) + "/jobs/" + file);
    EXPECT_EQ(spec.trials.size(), count) << file;
    for (const SweepTrial& trial : spec.trials) architectures.insert(trial.config.model.arch);
  }
  for (const std::string& arch : architectures) {
    models::ModelSpec model;
    model.arch = arch;
    model.num_classes = 10;
    model.in_channels = 1;
    EXPECT_NO_THROW(models::make_network(model)) << arch;
  }
  EXPECT_EQ(architectures.size(), 6u);
}

// ---- the CLI: exit statuses and the --list contract

struct CommandResult {
  int status = -1;
  std::string out;
};

CommandResult run_cli(const std::string& arguments) {
  CommandResult result;
  const std::string command = std::string(MD_BINARY) + " sweep " + arguments + " 2>/dev/null";
  FILE* pipe = popen(command.c_str(), "r");
  if (pipe == nullptr) return result;
  char buffer[4096];
  std::size_t read = 0;
  while ((read = fread(buffer, 1, sizeof buffer, pipe)) > 0) result.out.append(buffer, read);
  const int status = pclose(pipe);
  result.status = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return result;
}

std::vector<std::string> split(const std::string& text, char separator) {
  std::vector<std::string> parts;
  std::stringstream stream(text);
  std::string part;
  while (std::getline(stream, part, separator)) parts.push_back(part);
  return parts;
}

TEST(SweepCli, ListPrintsIndexIdStatusOverridesAndNothingElse) {
  TempDir dir;
  const std::string sweep_path =
      dir.file("s.yaml", std::string(kBase) +
                             "grid: {method.name: [baseline, metadistiller], optim.lr: [0.1]}\n");
  const std::string out = (dir.path() / "out").string();
  fs::create_directories(out);
  const SweepSpec spec = load_sweep(sweep_path);
  io::TrialLog log = io::TrialLog::open(log_path(out, spec.trials[1].id), io::OpenMode::Create,
                                        {{"status", std::string("complete")}});
  log.close();

  const CommandResult result = run_cli(sweep_path + " --out " + out + " --list");
  ASSERT_EQ(result.status, 0);
  const std::vector<std::string> lines = split(result.out, '\n');
  ASSERT_EQ(lines.size(), 2u) << result.out;
  EXPECT_EQ(lines[0], "0\t" + spec.trials[0].id + "\tpending\tmethod.name=baseline optim.lr=0.1");
  EXPECT_EQ(lines[1],
            "1\t" + spec.trials[1].id + "\tcomplete\tmethod.name=metadistiller optim.lr=0.1");
}

TEST(SweepCli, DryRunPrintsTrialsAndFirstConfig) {
  TempDir dir;
  const std::string sweep_path =
      dir.file("s.yaml", std::string(kBase) + "grid: {runtime.seed: [4, 5]}\n");
  const CommandResult result =
      run_cli(sweep_path + " --out " + (dir.path() / "out").string() + " --dry-run");
  ASSERT_EQ(result.status, 0);
  EXPECT_THAT(result.out, HasSubstr("2 trials"));
  EXPECT_THAT(result.out, HasSubstr("runtime.seed=5"));
  EXPECT_THAT(result.out, HasSubstr("seed: 4"));
  EXPECT_FALSE(fs::exists(dir.path() / "out"));
}

TEST(SweepCli, BadKeyExitsWithStatus2) {
  TempDir dir;
  const std::string sweep_path =
      dir.file("s.yaml", std::string(kBase) + "grid: {optim.lrr: [0.1]}\n");
  EXPECT_EQ(run_cli(sweep_path + " --out " + dir.path().string() + " --list").status, 2);
  EXPECT_EQ(run_cli(sweep_path + " --out " + dir.path().string()).status, 2);
  EXPECT_EQ(run_cli(sweep_path).status, 2);  // --out missing
}

}  // namespace
}  // namespace md::sweep
