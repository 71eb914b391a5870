// Training augmentation on the CPU (backend.h, augment_images): each output element is
// math::augmented_value of element_math.h, the function the CUDA kernel calls, so both backends
// compute exactly what data::render_sample computes (the same table lookups). This op exists so
// that a device-resident set can be augmented where it lives; on the CPU it is the reference the
// CUDA kernel is compared against. One sample per loop index: each writes only its own outputs.
#include "backend/cpu/cpu_backend.h"
#include "backend/cpu/cpu_common.h"
#include "backend/element_math.h"

namespace md::cpu {

void CpuBackend::augment_images(const Tensor& pixels, const Tensor& draws, const Tensor& table,
                                Tensor& out, const AugmentParams& params) {
  const math::AugmentGeometry geometry =
      augment_geometry("cpu augment_images", pixels, draws, table, out, params, Device::cpu());
  const std::int64_t set_count = pixels.dim(0);
  const std::int64_t batch = draws.dim(0);
  const std::int64_t plane = static_cast<std::int64_t>(geometry.height) * geometry.width;
  const std::int64_t image_numel = geometry.channels * plane;
  const std::int32_t* draw_rows = draws.data<std::int32_t>();
  for (std::int64_t sample = 0; sample < batch; ++sample) {
    const std::int32_t index = draw_rows[sample * AugmentDrawColumn::count];
    MD_CHECK(index >= 0 && index < set_count, "cpu augment_images: sample ", sample,
             " draws source index ", index, " outside the set's ", set_count, " images");
  }
  const std::uint8_t* images = pixels.data<std::uint8_t>();
  const float* lookup = table.data<float>();
  float* output = out.data<float>();
  parallel_for(batch, image_numel, [&](std::int64_t sample) {
    const std::int32_t* row = draw_rows + sample * AugmentDrawColumn::count;
    const math::AugmentChoice choice{
        row[AugmentDrawColumn::crop_top], row[AugmentDrawColumn::crop_left],
        row[AugmentDrawColumn::flipped] != 0, row[AugmentDrawColumn::cutout_y],
        row[AugmentDrawColumn::cutout_x]};
    const std::uint8_t* image = images + row[AugmentDrawColumn::source_index] * image_numel;
    float* sample_out = output + sample * image_numel;
    for (int channel = 0; channel < geometry.channels; ++channel) {
      for (int y = 0; y < geometry.height; ++y) {
        float* row_out = sample_out + (channel * static_cast<std::int64_t>(geometry.height) + y) *
                                          geometry.width;
        for (int x = 0; x < geometry.width; ++x) {
          row_out[x] = math::augmented_value(image, lookup, geometry, choice, channel, y, x);
        }
      }
    }
  });
}

}  // namespace md::cpu
