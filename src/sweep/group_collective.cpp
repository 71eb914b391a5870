// MPI collectives of a trial's rank group (see group_collective.h).
#include "sweep/group_collective.h"

#include <algorithm>
#include <array>
#include <climits>
#include <cstring>

#include "backend/backend.h"
#include "core/logging.h"
#include "sweep/mpi_check.h"
#include "sweep/nccl_collective.h"

namespace md::sweep {
namespace {

MPI_Datatype mpi_type(const Tensor& flat) {
  switch (flat.dtype()) {
    case DType::Float32:
      return MPI_FLOAT;
    case DType::Float64:
      return MPI_DOUBLE;
    default:
      break;
  }
  throw Error("MpiCollective: only float32 and float64 buffers are reduced, got " +
              std::string(dtype_name(flat.dtype())));
}

// Calls operation(pointer, count) over chunks of at most INT_MAX elements (MPI counts are int).
template <typename Operation>
void in_chunks(Tensor& flat, Operation operation) {
  MD_CHECK(!flat.device().is_cuda(), "MpiCollective: buffer on ", flat.device().str(),
           " (CUDA buffers go through NCCL)");
  auto* bytes = static_cast<char*>(flat.raw_data());
  const std::size_t element = dtype_size(flat.dtype());
  for (std::int64_t offset = 0; offset < flat.numel();) {
    const std::int64_t count = std::min<std::int64_t>(flat.numel() - offset, INT_MAX);
    operation(bytes + static_cast<std::size_t>(offset) * element, static_cast<int>(count));
    offset += count;
  }
}

// One rank's readiness as fixed-size bytes for MPI_Allgather (texts cut to fit).
struct ReadinessRecord {
  std::int32_t failed = 0;
  std::array<char, 124> identity{};
  std::array<char, 896> error{};
};

template <std::size_t N>
void put_text(std::array<char, N>& field, const std::string& text) {
  const std::size_t length = std::min(text.size(), N - 1);
  std::memcpy(field.data(), text.data(), length);
  field[length] = '\0';
}

template <std::size_t N>
std::string get_text(const std::array<char, N>& field) {
  return std::string(field.data(), strnlen(field.data(), N));
}

}  // namespace

MpiCollective::MpiCollective(MPI_Comm group) : group_(group) {
  MD_MPI_CHECK(MPI_Comm_rank(group_, &rank_));
  MD_MPI_CHECK(MPI_Comm_size(group_, &size_));
}

void MpiCollective::average(Tensor& flat) {
  const MPI_Datatype type = mpi_type(flat);
  in_chunks(flat, [&](void* data, int count) {
    MD_MPI_CHECK(MPI_Allreduce(MPI_IN_PLACE, data, count, type, MPI_SUM, group_));
  });
  if (flat.dtype() == DType::Float32) {
    const float scale = 1.0f / static_cast<float>(size_);
    float* values = flat.data<float>();
    for (std::int64_t i = 0; i < flat.numel(); ++i) values[i] *= scale;
  } else {
    const double scale = 1.0 / static_cast<double>(size_);
    double* values = flat.data<double>();
    for (std::int64_t i = 0; i < flat.numel(); ++i) values[i] *= scale;
  }
}

void MpiCollective::broadcast(Tensor& flat) {
  const MPI_Datatype type = mpi_type(flat);
  in_chunks(flat,
            [&](void* data, int count) { MD_MPI_CHECK(MPI_Bcast(data, count, type, 0, group_)); });
}

bool MpiCollective::any(bool flag) {
  int local = flag ? 1 : 0;
  int global = 0;
  MD_MPI_CHECK(MPI_Allreduce(&local, &global, 1, MPI_INT, MPI_LOR, group_));
  return global != 0;
}

double MpiCollective::sum(double value) {
  double total = 0.0;
  MD_MPI_CHECK(MPI_Allreduce(&value, &total, 1, MPI_DOUBLE, MPI_SUM, group_));
  return total;
}

HostStagedCollective::HostStagedCollective(MPI_Comm group, Device device)
    : MpiCollective(group), device_(device) {}

void HostStagedCollective::average(Tensor& flat) {
  if (!flat.device().is_cuda()) return MpiCollective::average(flat);
  backend::get(device_).synchronize();  // the gradients are complete
  Tensor host = flat.to(Device::cpu());
  MpiCollective::average(host);
  flat.copy_from(host);
}

void HostStagedCollective::broadcast(Tensor& flat) {
  if (!flat.device().is_cuda()) return MpiCollective::broadcast(flat);
  backend::get(device_).synchronize();
  Tensor host = flat.to(Device::cpu());
  MpiCollective::broadcast(host);
  flat.copy_from(host);
}

std::vector<std::string> exchange_readiness(MPI_Comm group, const RankReadiness& local) {
  int size = 0;
  MD_MPI_CHECK(MPI_Comm_size(group, &size));
  ReadinessRecord mine;
  mine.failed = local.error.empty() ? 0 : 1;
  put_text(mine.identity, local.device_identity);
  put_text(mine.error, local.error);
  std::vector<ReadinessRecord> all(static_cast<std::size_t>(size));
  MD_MPI_CHECK(MPI_Allgather(&mine, static_cast<int>(sizeof mine), MPI_BYTE, all.data(),
                             static_cast<int>(sizeof mine), MPI_BYTE, group));
  std::vector<std::string> identities;
  std::string failures;
  for (std::size_t rank = 0; rank < all.size(); ++rank) {
    identities.push_back(get_text(all[rank].identity));
    if (all[rank].failed == 0) continue;
    if (!failures.empty()) failures += "; ";
    failures += "rank " + std::to_string(rank) + ": " + get_text(all[rank].error);
  }
  if (!failures.empty()) {
    throw Error("the trial's rank group stops before its collective, since a rank failed (" +
                failures + ")");
  }
  return identities;
}

TransportDecision decide_group_transport(MPI_Comm group, const RankReadiness& local) {
  return choose_group_transport(exchange_readiness(group, local));
}

std::unique_ptr<train::Collective> make_group_collective(MPI_Comm group, Device device,
                                                         const std::string& local_error) {
  RankReadiness local{.device_identity = {}, .error = local_error};
  if (!device.is_cuda()) {
    exchange_readiness(group, local);
    return std::make_unique<MpiCollective>(group);
  }
  if (local.error.empty()) {
    try {
      local.device_identity = cuda_device_identity(device);
    } catch (const std::exception& error) {
      local.error = error.what();
    }
  }
  const TransportDecision decision = decide_group_transport(group, local);
  if (decision.transport == GroupTransport::Nccl) return make_nccl_collective(group, device);
  int rank = 0;
  MD_MPI_CHECK(MPI_Comm_rank(group, &rank));
  if (rank == 0) log_warning(decision.warning);
  return std::make_unique<HostStagedCollective>(group, device);
}

}  // namespace md::sweep
