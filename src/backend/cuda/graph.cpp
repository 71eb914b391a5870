// Recorded work on a GPU (Backend::capture_graph): a stream capture of the work into a CUDA
// graph, instantiated once and launched for the first run and every replay. A step of a small
// model is hundreds of short kernels, each launched from the host; one graph launch replaces
// all those launches. The memory the work allocates comes from a private pool of the caching
// allocator (allocator.h) that lives as long as the graph.
#include <cuda_runtime_api.h>

#include <functional>
#include <memory>
#include <utility>

#include "backend/cuda/allocator.h"
#include "backend/cuda/cuda_backend_impl.h"
#include "backend/cuda/cuda_check.h"
#include "backend/cuda/handles.h"
#include "core/capture.h"
#include "core/error.h"

namespace md::cuda {
namespace {

// Owns a captured cudaGraph_t.
class GraphOwner {
 public:
  explicit GraphOwner(cudaGraph_t graph) : graph_(graph) {}
  ~GraphOwner() {
    if (graph_ != nullptr) MD_CUDA_LOG_ON_ERROR(cudaGraphDestroy(graph_));
  }
  GraphOwner(const GraphOwner&) = delete;
  GraphOwner& operator=(const GraphOwner&) = delete;
  cudaGraph_t get() const { return graph_; }

 private:
  cudaGraph_t graph_ = nullptr;
};

// The pool of a capture, released back to the allocator unless a graph took it over.
class PoolLease {
 public:
  explicit PoolLease(CachingAllocator& allocator)
      : allocator_(&allocator), pool_(allocator.begin_capture()) {}
  ~PoolLease() {
    if (allocator_ == nullptr) return;
    allocator_->end_capture();
    allocator_->release_pool(pool_);
  }
  PoolLease(const PoolLease&) = delete;
  PoolLease& operator=(const PoolLease&) = delete;
  // Ends the capture's hold on allocations; the pool stays reserved for the caller.
  CachingAllocator::PoolId keep() {
    allocator_->end_capture();
    allocator_ = nullptr;
    return pool_;
  }

 private:
  CachingAllocator* allocator_;
  CachingAllocator::PoolId pool_;
};

class CudaGraph final : public DeviceGraph {
 public:
  CudaGraph(int device, DeviceContext& context, CachingAllocator::PoolId pool, cudaGraphExec_t exec)
      : device_(device), context_(context), pool_(pool), exec_(exec) {}
  ~CudaGraph() override {
    int previous = -1;
    if (cudaGetDevice(&previous) != cudaSuccess) {
      cudaGetLastError();  // the CUDA runtime is gone (process exit): leave it all to the exit
      return;
    }
    if (previous != device_) MD_CUDA_LOG_ON_ERROR(cudaSetDevice(device_));
    // Launches still queued use the executable graph and the pool's memory.
    MD_CUDA_LOG_ON_ERROR(cudaStreamSynchronize(context_.stream));
    MD_CUDA_LOG_ON_ERROR(cudaGraphExecDestroy(exec_));
    context_.allocator->release_pool(pool_);
    if (previous != device_) MD_CUDA_LOG_ON_ERROR(cudaSetDevice(previous));
  }
  CudaGraph(const CudaGraph&) = delete;
  CudaGraph& operator=(const CudaGraph&) = delete;

  void replay() override {
    check_not_capturing("a graph replay");
    DeviceGuard guard(device_);
    MD_CUDA_CHECK(cudaGraphLaunch(exec_, context_.stream));
  }

 private:
  int device_;
  DeviceContext& context_;
  CachingAllocator::PoolId pool_;
  cudaGraphExec_t exec_;
};

}  // namespace

std::unique_ptr<DeviceGraph> CudaBackend::capture_graph(const std::function<void()>& work) {
  check_not_capturing("a graph capture");  // captures do not nest
  DeviceGuard guard(device_index_);
  PoolLease lease(*context_.allocator);
  // Thread-local mode: an unsafe call of this thread (a synchronization, a pageable copy)
  // invalidates the capture; other threads' work is not affected.
  MD_CUDA_CHECK(cudaStreamBeginCapture(context_.stream, cudaStreamCaptureModeThreadLocal));
  try {
    CaptureRegion region;
    work();
  } catch (...) {
    cudaGraph_t broken = nullptr;
    if (cudaStreamEndCapture(context_.stream, &broken) == cudaSuccess && broken != nullptr) {
      cudaGraphDestroy(broken);
    }
    cudaGetLastError();  // an invalidated capture leaves an error behind
    throw;
  }
  cudaGraph_t captured = nullptr;
  MD_CUDA_CHECK(cudaStreamEndCapture(context_.stream, &captured));
  GraphOwner graph(captured);
  cudaGraphExec_t exec = nullptr;
  MD_CUDA_CHECK(cudaGraphInstantiate(&exec, graph.get(), 0));
  auto result = std::make_unique<CudaGraph>(device_index_, context_, lease.keep(), exec);
  result->replay();  // the work runs once, as a call would
  return result;
}

}  // namespace md::cuda
