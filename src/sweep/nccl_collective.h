// The NCCL collective of a CUDA trial's rank group. Declared for every build; in a build without
// CUDA (no MD_HAVE_CUDA) make_nccl_collective throws md::Error, since no CUDA tensor can exist.
#pragma once

#include <mpi.h>

#include <memory>
#include <string>

#include "core/device.h"
#include "train/collective.h"

namespace md::sweep {

// Every rank of `group` calls it together, each with its own GPU `device`: rank 0's
// ncclUniqueId is broadcast over `group`, then ncclCommInitRank. Gradients are averaged with
// ncclAllReduce(ncclAvg) and parameters broadcast with ncclBroadcast on a stream of its own,
// after the rank's backend has finished its work; host values go over MPI on `group`.
// Before ncclCommInitRank the ranks agree that each is ready (exchange_readiness): a rank whose
// CUDA setup or unique id failed makes every rank throw instead of waiting in the init.
std::unique_ptr<train::Collective> make_nccl_collective(MPI_Comm group, Device device);

// The identity of a GPU for telling whether two ranks share one: "GPU-<UUID>" (the form
// nvidia-smi -L prints), the same for a GPU whatever its index under CUDA_VISIBLE_DEVICES.
std::string cuda_device_identity(Device device);

}  // namespace md::sweep
