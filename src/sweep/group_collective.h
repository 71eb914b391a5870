// train::Collective over the MPI communicator of one trial's rank group (data parallelism):
// MPI_Allreduce on host memory for CPU trials, NCCL on device memory for CUDA trials (compiled
// when MD_HAVE_CUDA; the only CUDA-using code outside backend/cuda), or MPI through host copies
// when ranks share a GPU (group_transport.h). Before a group's collective exists its ranks agree
// that each of them is ready, so that one rank's failure ends the trial on every rank instead
// of leaving the others blocked. Host values (flags, sums for evaluation) always go over MPI.
// Internal to src/sweep: it includes <mpi.h>.
#pragma once

#include <mpi.h>

#include <memory>
#include <string>
#include <vector>

#include "core/device.h"
#include "sweep/group_transport.h"
#include "train/collective.h"

namespace md::sweep {

// Gradients and parameters on the CPU: MPI_Allreduce / MPI_Bcast in place (float32, float64).
class MpiCollective : public train::Collective {
 public:
  explicit MpiCollective(MPI_Comm group);  // does not take ownership of `group`
  int rank() const override { return rank_; }
  int size() const override { return size_; }
  void average(Tensor& flat) override;  // flat: any shape, contiguous, on the CPU
  void broadcast(Tensor& flat) override;
  bool any(bool flag) override;
  double sum(double value) override;

 protected:
  MPI_Comm group_;
  int rank_ = 0;
  int size_ = 1;
};

// Gradients and parameters on a GPU shared by several ranks of the group (where NCCL refuses
// to run): each buffer is copied to the host, reduced with MPI as above and copied back.
class HostStagedCollective : public MpiCollective {
 public:
  HostStagedCollective(MPI_Comm group, Device device);  // does not take ownership of `group`
  // flat: on `device` or the CPU
  void average(Tensor& flat) override;
  void broadcast(Tensor& flat) override;

 private:
  Device device_;
};

// What one rank brings to the start of a group's collective: its device's identity (empty on
// the CPU) or the error that stopped it before (a device it cannot have, a failed CUDA call).
struct RankReadiness {
  std::string device_identity;
  std::string error;  // non-empty: this rank failed
};

// Every rank of `group` calls it together, once: one MPI_Allgather of each rank's readiness.
// Returns the device identities by group rank. When any rank brought an error, every rank
// throws md::Error naming each failed rank and its error, so that no rank waits for one that
// will never come.
std::vector<std::string> exchange_readiness(MPI_Comm group, const RankReadiness& local);

// The transport of a CUDA group from its ranks' exchanged identities (group_transport.h).
TransportDecision decide_group_transport(MPI_Comm group, const RankReadiness& local);

// The collective for a trial on `device`; every rank of `group` calls it together.
// `local_error` is this rank's failure before the collective (empty: none); the group agrees
// first (exchange_readiness), so a failure anywhere throws on every rank. A CPU trial gets MPI;
// a CUDA trial NCCL, or HostStagedCollective with one warning when ranks share a GPU.
std::unique_ptr<train::Collective> make_group_collective(MPI_Comm group, Device device,
                                                         const std::string& local_error = {});

}  // namespace md::sweep
