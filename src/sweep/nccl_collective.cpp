// NCCL allreduce for data-parallel CUDA trials (see nccl_collective.h). The only file outside
// backend/cuda that uses CUDA; compiled against CUDA and NCCL only when MD_HAVE_CUDA.
#include "sweep/nccl_collective.h"

#include "core/error.h"
#include "sweep/group_collective.h"

#if MD_HAVE_CUDA
#include <cuda_runtime.h>
#include <nccl.h>

#include "backend/backend.h"
#include "core/logging.h"
#include "sweep/mpi_check.h"

#define MD_NCCL_CHECK(call)                                                                   \
  do {                                                                                        \
    const ncclResult_t md_nccl_code_ = (call);                                                \
    if (md_nccl_code_ != ncclSuccess) {                                                       \
      throw ::md::Error(std::string(#call) + " failed at " + __FILE__ + ":" +                 \
                        std::to_string(__LINE__) + ": " + ncclGetErrorString(md_nccl_code_)); \
    }                                                                                         \
  } while (false)

#define MD_CUDA_RUNTIME_CHECK(call)                                                           \
  do {                                                                                        \
    const cudaError_t md_cuda_code_ = (call);                                                 \
    if (md_cuda_code_ != cudaSuccess) {                                                       \
      throw ::md::Error(std::string(#call) + " failed at " + __FILE__ + ":" +                 \
                        std::to_string(__LINE__) + ": " + cudaGetErrorString(md_cuda_code_)); \
    }                                                                                         \
  } while (false)
#endif

namespace md::sweep {

#if MD_HAVE_CUDA
namespace {

class NcclCollective : public MpiCollective {
 public:
  NcclCollective(MPI_Comm group, Device device) : MpiCollective(group), device_(device) {
    ncclUniqueId unique_id{};
    std::string error;
    try {
      MD_CUDA_RUNTIME_CHECK(cudaSetDevice(device_.index));
      MD_CUDA_RUNTIME_CHECK(cudaStreamCreateWithFlags(&stream_, cudaStreamNonBlocking));
      if (rank_ == 0) MD_NCCL_CHECK(ncclGetUniqueId(&unique_id));
    } catch (const Error& failure) {
      error = failure.what();
    }
    try {
      exchange_readiness(group_, RankReadiness{.device_identity = {}, .error = error});
      MD_MPI_CHECK(MPI_Bcast(&unique_id, sizeof unique_id, MPI_BYTE, 0, group_));
      MD_NCCL_CHECK(ncclCommInitRank(&comm_, size_, unique_id, rank_));
    } catch (...) {
      if (stream_ != nullptr) cudaStreamDestroy(stream_);
      throw;
    }
  }
  NcclCollective(const NcclCollective&) = delete;
  NcclCollective& operator=(const NcclCollective&) = delete;
  ~NcclCollective() override {
    const ncclResult_t destroyed = ncclCommDestroy(comm_);
    if (destroyed != ncclSuccess) log_warning("ncclCommDestroy: ", ncclGetErrorString(destroyed));
    const cudaError_t released = cudaStreamDestroy(stream_);
    if (released != cudaSuccess) log_warning("cudaStreamDestroy: ", cudaGetErrorString(released));
  }

  void average(Tensor& flat) override {
    if (!flat.device().is_cuda()) return MpiCollective::average(flat);
    backend::get(device_).synchronize();  // the gradients are complete
    MD_CUDA_RUNTIME_CHECK(cudaSetDevice(device_.index));
    MD_NCCL_CHECK(ncclAllReduce(flat.raw_data(), flat.raw_data(), static_cast<size_t>(flat.numel()),
                                nccl_type(flat), ncclAvg, comm_, stream_));
    MD_CUDA_RUNTIME_CHECK(cudaStreamSynchronize(stream_));
  }

  void broadcast(Tensor& flat) override {
    if (!flat.device().is_cuda()) return MpiCollective::broadcast(flat);
    backend::get(device_).synchronize();
    MD_CUDA_RUNTIME_CHECK(cudaSetDevice(device_.index));
    MD_NCCL_CHECK(ncclBroadcast(flat.raw_data(), flat.raw_data(), static_cast<size_t>(flat.numel()),
                                nccl_type(flat), 0, comm_, stream_));
    MD_CUDA_RUNTIME_CHECK(cudaStreamSynchronize(stream_));
  }

 private:
  static ncclDataType_t nccl_type(const Tensor& flat) {
    switch (flat.dtype()) {
      case DType::Float32:
        return ncclFloat32;
      case DType::Float64:
        return ncclFloat64;
      case DType::BFloat16:
        return ncclBfloat16;
      default:
        break;
    }
    throw Error(std::string("NcclCollective: cannot reduce a ") + dtype_name(flat.dtype()) +
                " buffer");
  }

  Device device_;
  ncclComm_t comm_ = nullptr;
  cudaStream_t stream_ = nullptr;
};

}  // namespace

std::unique_ptr<train::Collective> make_nccl_collective(MPI_Comm group, Device device) {
  return std::make_unique<NcclCollective>(group, device);
}

std::string cuda_device_identity(Device device) {
  cudaDeviceProp properties{};
  MD_CUDA_RUNTIME_CHECK(cudaGetDeviceProperties(&properties, device.index));
  static constexpr char kHex[] = "0123456789abcdef";
  std::string identity = "GPU-";
  for (int i = 0; i < 16; ++i) {
    if (i == 4 || i == 6 || i == 8 || i == 10) identity += '-';
    const auto byte = static_cast<unsigned char>(properties.uuid.bytes[i]);
    identity += kHex[byte >> 4];
    identity += kHex[byte & 0xf];
  }
  return identity;
}

#else

std::unique_ptr<train::Collective> make_nccl_collective(MPI_Comm group, Device device) {
  (void)group;
  throw Error("trial on " + device.str() + ": this build has no CUDA support (MD_CUDA=OFF)");
}

std::string cuda_device_identity(Device device) {
  throw Error("trial on " + device.str() + ": this build has no CUDA support (MD_CUDA=OFF)");
}

#endif

}  // namespace md::sweep
