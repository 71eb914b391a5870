// Backend::capture_graph on the CPU: the work runs once at capture and once per replay, always
// inside a CaptureRegion, so the host round trips a CUDA capture cannot record (values returned
// to the host, synchronization) fail there with the call named, exactly as they would on a GPU.
#include <gtest/gtest.h>

#include <functional>
#include <string>
#include <utility>
#include <vector>

#include "backend/backend.h"
#include "core/error.h"

namespace md {
namespace {

TEST(CpuGraph, CaptureRunsTheWorkOnceAndEveryReplayAgain) {
  backend::init();
  Backend& cpu = backend::get(Device::cpu());
  Tensor input = Tensor::full({4}, 1.0);
  Tensor output = Tensor::zeros({4});
  int runs = 0;
  auto graph = cpu.capture_graph([&] {
    ++runs;
    EXPECT_TRUE(capturing());
    cpu.axpby(2.0, input, 1.0, output);  // output += 2·input
  });
  EXPECT_FALSE(capturing());
  EXPECT_EQ(runs, 1);
  EXPECT_EQ(output.to_vector<float>(), (std::vector<float>{2, 2, 2, 2}));
  cpu.fill(input, 0.5);  // inputs are refreshed in place before a replay
  graph->replay();
  graph->replay();
  EXPECT_EQ(runs, 3);
  EXPECT_EQ(output.to_vector<float>(), (std::vector<float>{4, 4, 4, 4}));
}

TEST(CpuGraph, HostRoundTripsInTheWorkFailNamingTheCall) {
  backend::init();
  Backend& cpu = backend::get(Device::cpu());
  const Tensor values = Tensor::full({3}, 2.0);
  const std::pair<const char*, std::function<void()>> cases[] = {
      {"dot", [&] { (void)cpu.dot(values, values); }},
      {"sum", [&] { (void)cpu.sum(values); }},
      {"count_nonfinite", [&] { (void)cpu.count_nonfinite(values); }},
      {"synchronizing", [&] { cpu.synchronize(); }},
      {"Tensor::item", [&] { (void)values.slice_flat(0, {}).item(); }},
  };
  for (const auto& [name, call] : cases) {
    try {
      (void)cpu.capture_graph(call);
      ADD_FAILURE() << name << " inside a capture did not throw";
    } catch (const Error& error) {
      EXPECT_NE(std::string(error.what()).find(name), std::string::npos) << error.what();
    }
    EXPECT_FALSE(capturing()) << name;
  }
  EXPECT_EQ(cpu.sum(values), 6.0);  // outside a capture the same calls work
}

}  // namespace
}  // namespace md
