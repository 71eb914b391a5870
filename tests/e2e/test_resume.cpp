// Stop-and-resume is bit-exact on the CPU (DESIGN.md §6): a short Fashion-MNIST run is done
// once without interruption and once interrupted by SIGTERM in the middle of its first epoch
// (the test watches the progress lines and signals the process) and rerun with the same
// command. The interrupted run exits with 3 and leaves a log marked `interrupted`; the rerun
// exits with 0; the final checkpoints hold bit-identical /model, /aux, /optim (and for
// MetaDistiller /gen and /gen_optim) tensors and the same position in training, and the logs
// the same accuracies and losses.
#include <gtest/gtest.h>
#include <signal.h>

#include <ostream>

#include "e2e_support.h"
#include "io/trial_log.h"

namespace md::e2e {
namespace {

struct ResumeCase {
  std::string name;
  std::string method;  // the config's method section
};

void PrintTo(const ResumeCase& resume_case, std::ostream* out) {
  *out << resume_case.name;
}

class ResumeTest : public ::testing::TestWithParam<ResumeCase> {};

TEST_P(ResumeTest, InterruptedAndResumedRunEqualsUninterruptedRun) {
  const ResumeCase& param = GetParam();
  TempDir dir("resume_" + param.name);
  const std::string config = dir.file("trial.yaml");
  // 2 epochs of 6 batches of 16; a /train row every 4 steps, so the interrupt (after the
  // progress line of step 4) falls inside a log interval.
  write_text(config,
             fashion_config({{"method", param.method},
                             {"runtime",
                              "{device: cpu, threads: 1, log_every: 4, max_train_batches: 6, "
                              "max_eval_batches: 1}"}}));

  const std::string whole_dir = dir.file("whole"), split_dir = dir.file("split");
  const ProcessResult whole =
      run_metadistill({"train", "--config", config, "--out", whole_dir, "--progress", "lines"});
  ASSERT_EQ(whole.exit_status, 0) << whole.err;

  bool signalled = false;
  RunOptions interrupt_after_batch_4;
  interrupt_after_batch_4.on_error_line = [&](const std::string& line, pid_t child) {
    if (!signalled && line.find("epoch 1/2 batch 4/6") != std::string::npos) {
      kill(child, SIGTERM);
      signalled = true;
    }
  };
  const std::vector<std::string> command{"train",   "--config",   config, "--out",
                                         split_dir, "--progress", "lines"};
  const ProcessResult first = run_metadistill(command, interrupt_after_batch_4);
  ASSERT_TRUE(signalled) << first.err;
  ASSERT_EQ(first.exit_status, 3) << first.err;
  EXPECT_NE(first.err.find("interrupted by signal 15"), std::string::npos) << first.err;
  const std::string split_log = only_file(split_dir, ".h5");
  const io::TrialLogContents interrupted = io::read_trial_log(split_log);
  EXPECT_EQ(io::attribute_string(interrupted.attributes, "status", split_log), "interrupted");
  const io::CheckpointData stopped = io::read_checkpoint(only_file(split_dir, ".ckpt.h5"));
  EXPECT_EQ(io::attribute_int(stopped.attributes, "epoch", "stopped"), 0);
  const std::int64_t stopped_batch =
      io::attribute_int(stopped.attributes, "batch_in_epoch", "stopped");
  EXPECT_GE(stopped_batch, 4);
  EXPECT_LT(stopped_batch, 6) << "the signal must stop the run inside its first epoch";

  const ProcessResult second = run_metadistill(command);
  ASSERT_EQ(second.exit_status, 0) << second.err;
  EXPECT_NE(second.err.find("resuming trial"), std::string::npos) << second.err;

  const io::CheckpointData expected = io::read_checkpoint(only_file(whole_dir, ".ckpt.h5"));
  const io::CheckpointData actual = io::read_checkpoint(only_file(split_dir, ".ckpt.h5"));
  EXPECT_TRUE(expected.groups.count("model") && expected.groups.count("optim"));
  if (param.name != "baseline") {
    EXPECT_TRUE(expected.groups.count("aux"));
  }
  if (param.name == "metadistiller") {
    EXPECT_TRUE(expected.groups.count("gen") && expected.groups.count("gen_optim"));
  }
  expect_same_tensors(expected, actual);
  for (const char* position :
       {"epoch", "batch_in_epoch", "step", "meta_epoch", "meta_position", "gen_adam_steps"}) {
    if (!expected.attributes.count(position)) continue;
    EXPECT_EQ(io::attribute_int(actual.attributes, position, "resumed"),
              io::attribute_int(expected.attributes, position, "whole"))
        << position;
  }
  EXPECT_EQ(io::attribute_int(actual.attributes, "step", "resumed"), 12);

  // The resumed log is complete, with one row per epoch and one /train row per 4 steps, and the
  // same final accuracies as the uninterrupted run.
  const io::TrialLogContents whole_log = io::read_trial_log(only_file(whole_dir, ".h5"));
  const io::TrialLogContents split = io::read_trial_log(split_log);
  EXPECT_EQ(io::attribute_string(split.attributes, "status", split_log), "complete");
  EXPECT_EQ(split.tables.at("epoch").at("epoch"), (std::vector<double>{1, 2}));
  EXPECT_EQ(split.tables.at("train").at("step"), (std::vector<double>{4, 8, 12}));
  EXPECT_EQ(split.tables.at("epoch").at("test_acc_final"),
            whole_log.tables.at("epoch").at("test_acc_final"));
  EXPECT_EQ(split.final_values.at("last_acc_final"), whole_log.final_values.at("last_acc_final"));
  // The logged losses too: the running sums of the interrupted log interval and epoch are in
  // the checkpoint.
  EXPECT_EQ(split.tables.at("epoch").at("train_loss"),
            whole_log.tables.at("epoch").at("train_loss"));
  EXPECT_EQ(split.tables.at("train").at("loss"), whole_log.tables.at("train").at("loss"));
}

INSTANTIATE_TEST_SUITE_P(
    Methods, ResumeTest,
    ::testing::Values(ResumeCase{"baseline", "{name: baseline}"},
                      ResumeCase{"byot", "{name: byot}"},
                      ResumeCase{"metadistiller",
                                 "{name: metadistiller, meta: {generator_width: 32}}"}),
    [](const ::testing::TestParamInfo<ResumeCase>& case_info) { return case_info.param.name; });

}  // namespace
}  // namespace md::e2e
