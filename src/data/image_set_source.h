// ImageSetSource: a SampleSource over an ImageSet held in memory (CIFAR-100, IDX), with the
// CIFAR-style training augmentation of augment.h (random crop with padding, flip, Cutout) and
// per-channel normalization. It keeps a reference to the set: the set must outlive it.
#pragma once

#include <string>
#include <vector>

#include "data/augment.h"
#include "data/image_set.h"
#include "data/sample_source.h"

namespace md::data {

class ImageSetSource : public SampleSource {
 public:
  // augment: the identity (AugmentSpec{}) for evaluation; normalization empty: mean 0, std 1.
  // InputError for an invalid augmentation or normalization (naming the config key).
  ImageSetSource(const ImageSet& set, const AugmentSpec& augment,
                 const Normalization& normalization);

  std::int64_t count() const override { return set_.count; }
  int num_classes() const override { return set_.num_classes; }
  SampleShape shape() const override { return {set_.channels, set_.height, set_.width}; }
  const std::string& description() const override { return set_.source; }
  RenderResult render(std::int64_t index, Rng& rng, float* out) const override;

  const ImageSet& set() const { return set_; }
  const AugmentSpec& augment() const { return augment_; }
  // (channels, 256): the normalized value of each raw pixel (normalization_table).
  const std::vector<float>& table() const { return table_; }

 private:
  const ImageSet& set_;
  AugmentSpec augment_;
  std::vector<float> table_;  // normalization lookup table
};

}  // namespace md::data
