// MPI collectives of a trial's rank group (see group_collective.h).
#include "sweep/group_collective.h"

#include <algorithm>
#include <climits>

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

std::unique_ptr<train::Collective> make_group_collective(MPI_Comm group, Device device) {
  if (device.is_cuda()) return make_nccl_collective(group, device);
  return std::make_unique<MpiCollective>(group);
}

}  // namespace md::sweep
