// ImageSetSource (see image_set_source.h): draw the augmentation from the sample's Rng, then
// render from the uint8 pixels through the normalization table.
#include "data/image_set_source.h"

#include "core/error.h"

namespace md::data {

ImageSetSource::ImageSetSource(const ImageSet& set, const AugmentSpec& augment,
                               const Normalization& normalization)
    : set_(set), augment_(augment) {
  validate_augment(augment);
  MD_CHECK(set.count >= 0 &&
               set.pixels.size() == static_cast<std::size_t>(set.count * set.image_numel()) &&
               set.labels.size() == static_cast<std::size_t>(set.count),
           "inconsistent ImageSet ", set.source);
  table_ = normalization_table(normalization, set.channels);
}

RenderResult ImageSetSource::render(std::int64_t index, Rng& rng, float* out) const {
  MD_CHECK(index >= 0 && index < set_.count, "sample ", index, " outside ", set_.source);
  const AugmentDraw draw = draw_augment(augment_, set_.height, set_.width, rng);
  render_sample(set_.image(index), set_, augment_, draw, table_, out);
  return RenderResult{
      .ok = true, .label = set_.labels[static_cast<std::size_t>(index)], .error = {}};
}

}  // namespace md::data
