// How the ranks of one data-parallel trial exchange gradients, decided from the devices they
// run on. NCCL needs one GPU per rank: two ranks of a group on the same GPU make
// ncclCommInitRank fail ("Duplicate GPU detected") - on a one-GPU node every 2-rank CUDA trial
// would. So before a group creates a communicator its ranks exchange device identities (the
// GPU's UUID, which names the same GPU whatever CUDA_VISIBLE_DEVICES makes its index), and a
// group with a shared GPU averages through host memory with MPI instead, with one warning.
// Pure functions, free of MPI and CUDA, so the decision is tested on every machine; the
// exchange itself is in group_collective.h.
#pragma once

#include <string>
#include <vector>

namespace md::sweep {

enum class GroupTransport {
  Nccl,     // one GPU per rank: NCCL on device memory
  HostMpi,  // a GPU shared by ranks: MPI_Allreduce on host copies of the buffers
};

struct TransportDecision {
  GroupTransport transport = GroupTransport::Nccl;
  // The sets of group ranks (ascending, at least two each) that share one device.
  std::vector<std::vector<int>> shared_ranks;
  // Empty for NCCL; else one line that names the ranks and their device, for rank 0 to log.
  std::string warning;
};

// identities[r]: the device identity of group rank r (non-empty).
TransportDecision choose_group_transport(const std::vector<std::string>& identities);

}  // namespace md::sweep
