// Training augmentation of a batch gathered from a device-resident uint8 set: one thread per
// output element, each calling math::augmented_value (element_math.h), the function the CPU
// backend calls, so the two backends agree bit for bit. The draws row of a sample is read by
// every thread of that sample (it stays in cache); nothing is written but the output.
#include <cmath>

#include "backend/cuda/device_utils.cuh"
#include "backend/cuda/kernels.h"
#include "backend/element_math.h"

namespace md::cuda::kernels {
namespace {

__global__ void augment_kernel(const std::uint8_t* pixels, const std::int32_t* draws,
                               const float* table, float* out, AugmentLaunch launch,
                               std::int64_t count) {
  const math::AugmentGeometry g = launch.geometry;
  const std::int64_t plane = static_cast<std::int64_t>(g.height) * g.width;
  const std::int64_t image_numel = g.channels * plane;
  MD_GRID_STRIDE_LOOP(i, count) {
    const int x = static_cast<int>(i % g.width);
    const int y = static_cast<int>((i / g.width) % g.height);
    const int channel = static_cast<int>((i / plane) % g.channels);
    const std::int64_t sample = i / image_numel;
    const std::int32_t* row = draws + sample * math::AugmentDrawColumn::count;
    const std::int32_t index = row[math::AugmentDrawColumn::source_index];
    if (index < 0 || index >= launch.set_count) {
      out[i] = NAN;
      continue;
    }
    const math::AugmentChoice choice{
        row[math::AugmentDrawColumn::crop_top], row[math::AugmentDrawColumn::crop_left],
        row[math::AugmentDrawColumn::flipped] != 0, row[math::AugmentDrawColumn::cutout_y],
        row[math::AugmentDrawColumn::cutout_x]};
    out[i] = math::augmented_value(pixels + index * image_numel, table, g, choice, channel, y, x);
  }
}

}  // namespace

void augment_images(const std::uint8_t* pixels, const std::int32_t* draws, const float* table,
                    float* out, const AugmentLaunch& launch, cudaStream_t stream) {
  const math::AugmentGeometry& g = launch.geometry;
  const std::int64_t count =
      launch.batch * g.channels * static_cast<std::int64_t>(g.height) * g.width;
  if (count == 0) return;
  augment_kernel<<<grid_for(count), kBlockSize, 0, stream>>>(pixels, draws, table, out, launch,
                                                             count);
  MD_CUDA_CHECK(cudaGetLastError());
}

}  // namespace md::cuda::kernels
