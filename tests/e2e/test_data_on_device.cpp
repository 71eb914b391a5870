// runtime.data_on_device: training batches assembled by the device backend from a resident copy
// of the set give the same trial as the CPU loader's batches. On the CPU backend (the device is
// the host) a short Fashion-MNIST trial with crop, flip and Cutout is run with the key false,
// with it true, and with it true interrupted mid-epoch and resumed: the three final checkpoints
// hold bit-identical tensors and positions, and the trial id does not depend on the key.
// runtime.cuda_graph likewise: recorded and replayed steps (on the CPU, the recorded work run
// again) give the checkpoint of steps run op by op, under the same trial id.
#include <gtest/gtest.h>
#include <signal.h>

#include "e2e_support.h"

namespace md::e2e {
namespace {

std::string runtime_section(const char* data_on_device) {
  return std::string(
             "{device: cpu, threads: 1, log_every: 1, max_train_batches: 4, "
             "max_eval_batches: 1, data_on_device: ") +
         data_on_device + "}";
}

TEST(DataOnDevice, TrueGivesTheCheckpointOfFalseAlsoWhenResumed) {
  TempDir dir("data_on_device");
  const std::map<std::string, std::string> common{
      {"method", "{name: byot}"}, {"augment", "{random_crop: 2, flip: true, cutout: 8}"}};
  auto config_with = [&](const char* data_on_device) {
    std::map<std::string, std::string> sections = common;
    sections["runtime"] = runtime_section(data_on_device);
    const std::string path = dir.file(std::string("trial_") + data_on_device + ".yaml");
    write_text(path, fashion_config(sections));
    return path;
  };
  const std::string on_host = config_with("false");
  const std::string on_device = config_with("true");

  const std::string host_dir = dir.file("host"), device_dir = dir.file("device"),
                    resumed_dir = dir.file("resumed");
  const ProcessResult host = run_metadistill({"train", "--config", on_host, "--out", host_dir});
  ASSERT_EQ(host.exit_status, 0) << host.err;
  const ProcessResult device =
      run_metadistill({"train", "--config", on_device, "--out", device_dir});
  ASSERT_EQ(device.exit_status, 0) << device.err;

  bool signalled = false;
  RunOptions interrupt_after_batch_2;
  interrupt_after_batch_2.on_error_line = [&](const std::string& line, pid_t child) {
    if (!signalled && line.find("epoch 1/2 batch 2/4") != std::string::npos) {
      kill(child, SIGTERM);
      signalled = true;
    }
  };
  const std::vector<std::string> resumed_command{"train",     "--config",   on_device, "--out",
                                                 resumed_dir, "--progress", "lines"};
  const ProcessResult first = run_metadistill(resumed_command, interrupt_after_batch_2);
  ASSERT_TRUE(signalled) << first.err;
  ASSERT_EQ(first.exit_status, 3) << first.err;
  const ProcessResult second = run_metadistill(resumed_command);
  ASSERT_EQ(second.exit_status, 0) << second.err;
  EXPECT_NE(second.err.find("resuming trial"), std::string::npos) << second.err;

  const std::string host_checkpoint = only_file(host_dir, ".ckpt.h5");
  const std::string device_checkpoint = only_file(device_dir, ".ckpt.h5");
  const std::string resumed_checkpoint = only_file(resumed_dir, ".ckpt.h5");
  EXPECT_EQ(std::filesystem::path(host_checkpoint).filename(),
            std::filesystem::path(device_checkpoint).filename())
      << "the trial id must not depend on runtime.data_on_device";
  const io::CheckpointData expected = io::read_checkpoint(host_checkpoint);
  for (const std::string& path : {device_checkpoint, resumed_checkpoint}) {
    SCOPED_TRACE(path);
    const io::CheckpointData actual = io::read_checkpoint(path);
    expect_same_tensors(expected, actual);
    for (const char* position : {"epoch", "batch_in_epoch", "step"}) {
      EXPECT_EQ(io::attribute_int(actual.attributes, position, path),
                io::attribute_int(expected.attributes, position, "host"))
          << position;
    }
  }
  EXPECT_EQ(io::attribute_int(expected.attributes, "step", "host"), 8);
}

TEST(CudaGraph, TrueGivesTheCheckpointOfFalse) {
  TempDir dir("cuda_graph");
  auto config_with = [&](const char* cuda_graph) {
    const std::string path = dir.file(std::string("trial_") + cuda_graph + ".yaml");
    write_text(path, fashion_config({{"method", "{name: byot, hint: 0.1}"},
                                     {"runtime", std::string("{device: cpu, threads: 1, "
                                                             "max_train_batches: 4, "
                                                             "max_eval_batches: 1, cuda_graph: ") +
                                                     cuda_graph + "}"}}));
    return path;
  };
  const std::string eager_dir = dir.file("eager"), graph_dir = dir.file("graph");
  const ProcessResult eager =
      run_metadistill({"train", "--config", config_with("false"), "--out", eager_dir});
  ASSERT_EQ(eager.exit_status, 0) << eager.err;
  const ProcessResult graph =
      run_metadistill({"train", "--config", config_with("true"), "--out", graph_dir});
  ASSERT_EQ(graph.exit_status, 0) << graph.err;
  EXPECT_NE(graph.err.find("runtime.cuda_graph: recorded the forward, loss and backward"),
            std::string::npos)
      << graph.err;
  const std::string eager_checkpoint = only_file(eager_dir, ".ckpt.h5");
  const std::string graph_checkpoint = only_file(graph_dir, ".ckpt.h5");
  EXPECT_EQ(std::filesystem::path(eager_checkpoint).filename(),
            std::filesystem::path(graph_checkpoint).filename())
      << "the trial id must not depend on runtime.cuda_graph";
  expect_same_tensors(io::read_checkpoint(eager_checkpoint), io::read_checkpoint(graph_checkpoint));
}

}  // namespace
}  // namespace md::e2e
