// Recorded work on the CPU (Backend::capture_graph). A CPU op is a function call with nothing
// queued and nothing to launch, so there is nothing to record: the graph keeps the work and a
// replay calls it again, inside a CaptureRegion like the first run. Running the captured-step
// code paths this way on the CPU checks them in every build: the learner's static inputs and
// outputs, and (through the CaptureRegion) that the work makes no host round trip that would
// break a CUDA stream capture.
#include <functional>
#include <memory>

#include "backend/cpu/cpu_backend.h"
#include "core/capture.h"

namespace md::cpu {
namespace {

class CpuGraph final : public DeviceGraph {
 public:
  explicit CpuGraph(const std::function<void()>& work) : work_(work) {}
  void replay() override {
    CaptureRegion region;
    work_();
  }

 private:
  std::function<void()> work_;
};

}  // namespace

std::unique_ptr<DeviceGraph> CpuBackend::capture_graph(const std::function<void()>& work) {
  auto graph = std::make_unique<CpuGraph>(work);
  graph->replay();
  return graph;
}

}  // namespace md::cpu
