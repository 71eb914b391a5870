// TrialLog and read_trial_log: round trips, NaN padding of late metrics, resume and truncation,
// reading while another process writes, a killed writer, and corrupt or foreign files.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmath>
#include <cstdio>
#include <filesystem>
#include <random>
#include <utility>

#include "io/checkpoint.h"
#include "io/trial_log.h"
#include "io_test_util.h"

namespace md::io {
namespace {

using Column = std::vector<double>;

// Element-wise equality where NaN equals NaN.
void expect_column(const Column& actual, const Column& expected, const std::string& what) {
  ASSERT_EQ(actual.size(), expected.size()) << what;
  for (std::size_t i = 0; i < expected.size(); ++i) {
    if (std::isnan(expected[i])) {
      EXPECT_TRUE(std::isnan(actual[i])) << what << " row " << i << " = " << actual[i];
    } else {
      EXPECT_EQ(actual[i], expected[i]) << what << " row " << i;
    }
  }
}

const double kNaN = std::numeric_limits<double>::quiet_NaN();

TEST(TrialLog, RowsAndAttributesRoundTrip) {
  test::TempDir dir;
  std::string path = dir.file("trial.h5");
  {
    TrialLog log = TrialLog::open(path, OpenMode::Create,
                                  {{"trial_id", std::string("abc123")},
                                   {"status", std::string("running")},
                                   {"ranks", std::int64_t{2}},
                                   {"start_time", 1700000000.25},
                                   {"config", std::string("model: {arch: resnet20}\nä: ü\n")}});
    for (int step = 0; step < 5; ++step) {
      log.append("train", {{"step", step * 50.0}, {"loss", 4.0 - 0.5 * step}, {"lr", 0.1}});
    }
    log.append("epoch", {{"epoch", 0}, {"test_acc_final", 0.25}, {"wall_s", 1.5}});
    EXPECT_EQ(log.rows("train"), 5);
    EXPECT_EQ(log.rows("epoch"), 1);
    EXPECT_EQ(log.rows("never"), 0);
    log.set_attribute("status", std::string("complete"));
    log.set_attribute("end_time", 1700000100.5);
    log.set_final({{"best_acc_final", 0.25}, {"gpu_hours", 0.001}});
    log.close();
  }
  TrialLogContents contents = read_trial_log(path);
  EXPECT_EQ(attribute_int(contents.attributes, "schema_version", path), kTrialLogSchemaVersion);
  EXPECT_EQ(attribute_string(contents.attributes, "trial_id", path), "abc123");
  EXPECT_EQ(attribute_string(contents.attributes, "status", path), "complete");
  EXPECT_EQ(attribute_string(contents.attributes, "config", path),
            "model: {arch: resnet20}\nä: ü\n");
  EXPECT_EQ(attribute_int(contents.attributes, "ranks", path), 2);
  EXPECT_EQ(attribute_double(contents.attributes, "start_time", path), 1700000000.25);
  EXPECT_EQ(attribute_double(contents.attributes, "end_time", path), 1700000100.5);
  ASSERT_EQ(contents.tables.size(), 2u);
  const auto& train = contents.tables.at("train");
  ASSERT_EQ(train.size(), 3u);
  expect_column(train.at("step"), {0, 50, 100, 150, 200}, "step");
  expect_column(train.at("loss"), {4.0, 3.5, 3.0, 2.5, 2.0}, "loss");
  expect_column(train.at("lr"), {0.1, 0.1, 0.1, 0.1, 0.1}, "lr");
  expect_column(contents.tables.at("epoch").at("test_acc_final"), {0.25}, "acc");
  EXPECT_EQ(contents.final_values.at("best_acc_final"), 0.25);
  EXPECT_EQ(contents.final_values.at("gpu_hours"), 0.001);
}

TEST(TrialLog, MetricAppearingLaterIsNaNPadded) {
  test::TempDir dir;
  std::string path = dir.file("trial.h5");
  {
    TrialLog log = TrialLog::open(path, OpenMode::Create);
    log.append("train", {{"loss", 1.0}});
    log.append("train", {{"loss", 2.0}});
    log.flush();  // loss exists in the file with 2 rows
    log.append("train", {{"loss", 3.0}, {"loss_meta", 30.0}});  // created after 2 written rows
    log.append("train", {{"loss_kd", 40.0}});  // first seen while rows are buffered
    log.append("train", {{"loss", 5.0}});
    EXPECT_EQ(log.rows("train"), 5);
  }  // the destructor flushes and closes
  auto train = read_trial_log(path).tables.at("train");
  ASSERT_EQ(train.size(), 3u);
  expect_column(train.at("loss"), {1, 2, 3, kNaN, 5}, "loss");
  expect_column(train.at("loss_meta"), {kNaN, kNaN, 30, kNaN, kNaN}, "loss_meta");
  expect_column(train.at("loss_kd"), {kNaN, kNaN, kNaN, 40, kNaN}, "loss_kd");
}

TEST(TrialLog, ResumeKeepsRowsAndTruncatesAfterCheckpoint) {
  test::TempDir dir;
  std::string path = dir.file("trial.h5");
  {
    TrialLog log = TrialLog::open(path, OpenMode::Create, {{"status", std::string("running")}});
    for (int epoch = 0; epoch < 4; ++epoch)
      log.append("epoch", {{"epoch", epoch}, {"acc", epoch * 0.1}});
    log.append("train", {{"step", 7}});
  }
  {
    TrialLog log = TrialLog::open(path, OpenMode::Resume, {{"status", std::string("running")}});
    EXPECT_EQ(log.rows("epoch"), 4);
    EXPECT_EQ(log.rows("train"), 1);
    log.truncate_rows("epoch", 2);  // the checkpoint was taken after epoch 1
    EXPECT_EQ(log.rows("epoch"), 2);
    EXPECT_THROW(log.truncate_rows("epoch", 3), Error);
    log.append("epoch", {{"epoch", 2}, {"acc", 0.25}});
    log.append("epoch", {{"epoch", 3}});
    log.set_attribute("status", std::string("complete"));
  }
  TrialLogContents contents = read_trial_log(path);
  expect_column(contents.tables.at("epoch").at("epoch"), {0, 1, 2, 3}, "epoch");
  expect_column(contents.tables.at("epoch").at("acc"), {0.0, 0.1, 0.25, kNaN}, "acc");
  expect_column(contents.tables.at("train").at("step"), {7}, "step");
  EXPECT_EQ(attribute_string(contents.attributes, "status", path), "complete");
}

TEST(TrialLog, TruncateIncludesBufferedRows) {
  test::TempDir dir;
  std::string path = dir.file("trial.h5");
  TrialLog log = TrialLog::open(path, OpenMode::Create);
  log.append("train", {{"loss", 1}});
  log.flush();
  log.append("train", {{"loss", 2}});
  log.append("train", {{"loss", 3}});
  log.truncate_rows("train", 2);
  log.append("train", {{"loss", 4}});
  log.close();
  EXPECT_THROW(log.append("train", {{"loss", 5}}), Error);
  expect_column(read_trial_log(path).tables.at("train").at("loss"), {1, 2, 4}, "loss");
}

TEST(TrialLog, CreateReplacesAnExistingLog) {
  test::TempDir dir;
  std::string path = dir.file("trial.h5");
  { TrialLog::open(path, OpenMode::Create).append("train", {{"loss", 1}}); }
  { TrialLog log = TrialLog::open(path, OpenMode::Create); }
  EXPECT_TRUE(read_trial_log(path).tables.empty());
}

TEST(TrialLog, MovedLogKeepsWriting) {
  test::TempDir dir;
  std::string path = dir.file("trial.h5");
  TrialLog first = TrialLog::open(path, OpenMode::Create);
  first.append("epoch", {{"epoch", 0}});
  TrialLog second = std::move(first);
  second.append("epoch", {{"epoch", 1}});
  EXPECT_EQ(second.rows("epoch"), 2);
  EXPECT_EQ(second.path(), path);
  second.close();
  expect_column(read_trial_log(path).tables.at("epoch").at("epoch"), {0, 1}, "epoch");
}

TEST(TrialLog, BadNamesAreRejected) {
  test::TempDir dir;
  TrialLog log = TrialLog::open(dir.file("trial.h5"), OpenMode::Create);
  EXPECT_THROW(log.append("train/x", {{"loss", 1}}), Error);
  EXPECT_THROW(log.append("final", {{"loss", 1}}), Error);
  EXPECT_THROW(log.append("train", {{"a/b", 1}}), Error);
  EXPECT_EQ(log.rows("train"), 0);
}

// Pipes between a test and a forked writer process: the writer signals after each stage, and
// waits for the go-ahead before the next. After fork each side closes the ends it does not use,
// so a side that dies makes the other's wait return false instead of blocking.
class WriterProcess {
 public:
  WriterProcess() {
    if (pipe(to_child_) != 0 || pipe(to_parent_) != 0) throw Error("pipe failed");
  }
  ~WriterProcess() {
    for (int* descriptor : {&to_child_[0], &to_child_[1], &to_parent_[0], &to_parent_[1]}) {
      close_end(*descriptor);
    }
  }
  void in_parent() {
    close_end(to_child_[0]);
    close_end(to_parent_[1]);
  }
  void in_child() {
    close_end(to_child_[1]);
    close_end(to_parent_[0]);
  }
  void signal_parent() { send(to_parent_[1]); }
  bool wait_parent() { return receive(to_child_[0]); }
  void signal_child() { send(to_child_[1]); }
  bool wait_child() { return receive(to_parent_[0]); }

 private:
  static void close_end(int& descriptor) {
    if (descriptor >= 0) close(descriptor);
    descriptor = -1;
  }
  static void send(int descriptor) {
    char byte = 1;
    if (write(descriptor, &byte, 1) != 1) throw Error("pipe write failed");
  }
  static bool receive(int descriptor) {
    char byte = 0;
    return read(descriptor, &byte, 1) == 1;
  }
  int to_child_[2] = {-1, -1};
  int to_parent_[2] = {-1, -1};
};

// A forked child that is killed and reaped if the test leaves before waiting for it.
class ChildProcess {
 public:
  explicit ChildProcess(pid_t pid) : pid_(pid) {}
  ~ChildProcess() {
    if (pid_ <= 0) return;
    kill(pid_, SIGKILL);
    waitpid(pid_, nullptr, 0);
  }
  ChildProcess(const ChildProcess&) = delete;
  ChildProcess& operator=(const ChildProcess&) = delete;

  // The exit status, or 128 + the signal that ended it.
  int wait() {
    int status = 0;
    pid_t pid = std::exchange(pid_, -1);
    if (waitpid(pid, &status, 0) != pid) return -1;
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  }
  void kill_now() { kill(pid_, SIGKILL); }

 private:
  pid_t pid_;
};

TEST(TrialLog, ReadableByAnotherProcessWhileTheWriterHoldsIt) {
  test::TempDir dir;
  std::string path = dir.file("running.h5");
  WriterProcess pipes;
  pid_t child = fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    pipes.in_child();
    int code = 0;
    try {
      TrialLog log = TrialLog::open(path, OpenMode::Create, {{"status", std::string("running")}});
      for (int epoch = 0; epoch < 3; ++epoch) log.append("epoch", {{"epoch", epoch}});
      log.flush();
      log.append("epoch", {{"epoch", 3}});  // buffered only: invisible to readers
      pipes.signal_parent();
      if (!pipes.wait_parent()) _exit(2);
      log.flush();
      pipes.signal_parent();
      if (!pipes.wait_parent()) _exit(2);
      log.close();
    } catch (...) {
      code = 1;
    }
    _exit(code);
  }
  ChildProcess writer(child);
  pipes.in_parent();
  ASSERT_TRUE(pipes.wait_child());
  TrialLogContents first = read_trial_log(path);
  expect_column(first.tables.at("epoch").at("epoch"), {0, 1, 2}, "while running");
  EXPECT_EQ(attribute_string(first.attributes, "status", path), "running");
  if (std::filesystem::exists("/usr/bin/h5dump")) {
    // No HDF5_USE_FILE_LOCKING=FALSE needed: the writer holds no lock.
    std::string command = "/usr/bin/h5dump -d /epoch/epoch " + path + " > /dev/null 2>&1";
    EXPECT_EQ(std::system(command.c_str()), 0) << command;
  }
  pipes.signal_child();
  ASSERT_TRUE(pipes.wait_child());
  expect_column(read_trial_log(path).tables.at("epoch").at("epoch"), {0, 1, 2, 3}, "flushed");
  pipes.signal_child();
  EXPECT_EQ(writer.wait(), 0);
}

TEST(TrialLog, KilledWriterLeavesTheFlushedRowsReadable) {
  test::TempDir dir;
  std::string path = dir.file("killed.h5");
  pid_t child = fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    try {
      TrialLog log = TrialLog::open(path, OpenMode::Create, {{"status", std::string("running")}});
      for (int epoch = 0; epoch < 5; ++epoch) {
        for (int step = 0; step < 10; ++step) log.append("train", {{"step", epoch * 10 + step}});
        log.append("epoch", {{"epoch", epoch}, {"test_acc_final", 0.1 * epoch}});
        log.flush();
      }
      log.append("epoch", {{"epoch", 5}});  // never flushed
      _exit(9);                             // dies without closing the file
    } catch (...) {
      _exit(1);
    }
  }
  ChildProcess writer(child);
  ASSERT_EQ(writer.wait(), 9);
  TrialLogContents contents = read_trial_log(path);
  expect_column(contents.tables.at("epoch").at("epoch"), {0, 1, 2, 3, 4}, "epoch");
  EXPECT_EQ(contents.tables.at("train").at("step").size(), 50u);
  EXPECT_EQ(attribute_string(contents.attributes, "status", path), "running");
  // The same file resumes and is marked.
  TrialLog log = TrialLog::open(path, OpenMode::Resume);
  EXPECT_EQ(log.rows("epoch"), 5);
  log.set_attribute("status", std::string("interrupted"));
}

TEST(TrialLog, KilledBySigkillAfterFlush) {
  test::TempDir dir;
  std::string path = dir.file("sigkill.h5");
  WriterProcess pipes;
  pid_t child = fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    pipes.in_child();
    try {
      TrialLog log = TrialLog::open(path, OpenMode::Create);
      log.append("epoch", {{"epoch", 0}});
      log.flush();
      log.append("epoch", {{"epoch", 1}});
      pipes.signal_parent();
      pause();
    } catch (...) {
    }
    _exit(1);
  }
  ChildProcess writer(child);
  pipes.in_parent();
  ASSERT_TRUE(pipes.wait_child());
  writer.kill_now();
  EXPECT_EQ(writer.wait(), 128 + SIGKILL);
  expect_column(read_trial_log(path).tables.at("epoch").at("epoch"), {0}, "epoch");
}

TEST(TrialLogErrors, MissingFileNamesIt) {
  test::TempDir dir;
  std::string path = dir.file("absent.h5");
  test::expect_input_error([&] { read_trial_log(path); }, {path, "no such file"});
  test::expect_input_error([&] { TrialLog::open(path, OpenMode::Resume); }, {path});
}

TEST(TrialLogErrors, RandomBytesNameTheFile) {
  test::TempDir dir;
  std::string path = dir.file("random.h5");
  std::mt19937 engine(7);
  std::vector<char> bytes(8192);
  for (char& byte : bytes) byte = static_cast<char>(engine() & 0xff);
  test::write_bytes(path, bytes);
  test::expect_input_error([&] { read_trial_log(path); }, {path});
  test::expect_input_error([&] { TrialLog::open(path, OpenMode::Resume); }, {path});
  test::write_bytes(path, {});
  test::expect_input_error([&] { read_trial_log(path); }, {path});
}

TEST(TrialLogErrors, TruncatedFileNamesIt) {
  test::TempDir dir;
  std::string path = dir.file("truncated.h5");
  {
    TrialLog log = TrialLog::open(path, OpenMode::Create);
    for (int row = 0; row < 5000; ++row) log.append("train", {{"loss", row}, {"step", row}});
  }
  test::truncate_file(path, 0.5);
  test::expect_input_error([&] { read_trial_log(path); }, {path});
}

TEST(TrialLogErrors, ForeignAndNewerFilesAreRefused) {
  test::TempDir dir;
  std::string foreign = dir.file("foreign.h5");
  write_checkpoint(foreign, CheckpointData{{{"arch", std::string("resnet20")}}, {}, {}});
  test::expect_input_error([&] { read_trial_log(foreign); },
                           {foreign, "not a metadistill trial log"});
  test::expect_input_error([&] { TrialLog::open(foreign, OpenMode::Resume); },
                           {foreign, "not a metadistill trial log"});

  std::string newer = dir.file("newer.h5");
  write_checkpoint(newer, CheckpointData{{{"schema_version", std::int64_t{99}}}, {}, {}});
  test::expect_input_error([&] { read_trial_log(newer); }, {newer, "schema_version 99"});
}

TEST(TrialLogErrors, MalformedTableNamesTheDataset) {
  test::TempDir dir;
  std::string path = dir.file("malformed.h5");
  CheckpointData data;
  data.attributes["schema_version"] = std::int64_t{1};
  data.groups["train"].emplace_back("loss", Tensor::zeros({2, 2}, DType::Float64));
  write_checkpoint(path, data);
  test::expect_input_error([&] { read_trial_log(path); }, {path, "/train/loss", "1-D"});
}

}  // namespace
}  // namespace md::io
