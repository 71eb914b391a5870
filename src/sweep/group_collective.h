// train::Collective over the MPI communicator of one trial's rank group (data parallelism):
// MPI_Allreduce on host memory for CPU trials, NCCL on device memory for CUDA trials (compiled
// when MD_HAVE_CUDA; the only CUDA-using code outside backend/cuda). Host values (flags, sums
// for evaluation) always go over MPI. Internal to src/sweep: it includes <mpi.h>.
#pragma once

#include <mpi.h>

#include <memory>

#include "core/device.h"
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

// The collective for a trial on `device`: NCCL for a CUDA device (in a CUDA build), else MPI.
// Every rank of `group` calls it together (NCCL's unique id is broadcast over `group`).
std::unique_ptr<train::Collective> make_group_collective(MPI_Comm group, Device device);

}  // namespace md::sweep
