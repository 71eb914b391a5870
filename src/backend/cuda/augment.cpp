// Training augmentation on the GPU (backend.h, augment_images) through the kernel of augment.cu;
// the per-element math is element_math.h's, shared with the CPU backend. Checks shapes and
// devices on the host; a source index outside the set becomes NaN in its sample (no throw from
// a kernel), which callers avoid by validating indices where they draw them.
#include "backend/cuda/cuda_backend_impl.h"
#include "backend/cuda/kernels.h"
#include "core/error.h"

namespace md::cuda {

void CudaBackend::augment_images(const Tensor& pixels, const Tensor& draws, const Tensor& table,
                                 Tensor& out, const AugmentParams& params) {
  const kernels::AugmentLaunch launch{
      augment_geometry("augment_images", pixels, draws, table, out, params, device()),
      pixels.dim(0), draws.dim(0)};
  if (out.numel() == 0) return;
  DeviceGuard guard(device_index_);
  kernels::augment_images(pixels.data<std::uint8_t>(), draws.data<std::int32_t>(),
                          table.data<float>(), out.data<float>(), launch, context_.stream);
}

}  // namespace md::cuda
