// Entry points of the CUDA backend, the only header of backend/cuda seen by the rest of the
// build (compiled only when MD_CUDA is ON; includes no CUDA header itself).
#pragma once

#include <memory>

#include "backend/backend.h"

namespace md::cuda {

// Registers the CUDA DeviceRuntime (caching allocator, copies) when the driver reports at
// least one GPU. Safe to call on a machine without a GPU or driver: it then does nothing.
void register_runtime_if_available();
// GPUs visible to this process; 0 when there is no driver or no device.
int device_count();
// The backend of GPU `device_index` (one stream, cuDNN and cuBLAS handles on that stream).
std::unique_ptr<Backend> make_backend(int device_index);

}  // namespace md::cuda
