// DeviceBatches (see device_batches.h): the host computes what BatchLoader computes per sample
// (its place in the epoch order, its Rng, its draws), packs the draws into an int32 tensor, and
// the backend of the device renders the batch from the resident pixels.
#include "train/device_batches.h"

#include <algorithm>
#include <limits>

#include "backend/backend.h"
#include "core/error.h"
#include "core/rng.h"
#include "data/augment.h"

namespace md::train {

DeviceBatches::DeviceBatches(const data::ImageSetSource& source, const data::LoaderSpec& spec,
                             Device device)
    : spec_(spec), device_(device), augment_(source.augment()) {
  MD_INPUT_CHECK(spec.batch_size >= 1, "batch_size must be >= 1, got ", spec.batch_size);
  MD_INPUT_CHECK(spec.world_size >= 1 && spec.rank >= 0 && spec.rank < spec.world_size,
                 "loader rank ", spec.rank, " of world size ", spec.world_size, " is invalid");
  const data::ImageSet& set = source.set();
  MD_INPUT_CHECK(set.count <= std::numeric_limits<std::int32_t>::max(), set.source, " holds ",
                 set.count, " images, more than device-resident batches can index");
  count_ = set.count;
  num_classes_ = set.num_classes;
  channels_ = set.channels;
  height_ = set.height;
  width_ = set.width;
  description_ = set.source;
  labels_ = set.labels;
  Tensor host_pixels = Tensor::empty({count_, channels_, height_, width_}, DType::UInt8);
  if (count_ > 0) std::copy(set.pixels.begin(), set.pixels.end(), host_pixels.data<std::uint8_t>());
  pixels_ = host_pixels.to(device);
  table_ = Tensor::from_vector<float>({channels_, 256}, source.table(), device);
  batches_per_epoch_ = data::in_memory_batches_per_epoch(count_, spec);
}

void DeviceBatches::start_epoch(std::int64_t epoch, std::int64_t first_batch) {
  MD_CHECK(epoch >= 0, "start_epoch(", epoch, ")");
  MD_INPUT_CHECK(first_batch >= 0 && first_batch <= batches_per_epoch_, "resume position ",
                 first_batch, " is outside the epoch's ", batches_per_epoch_, " batches of ",
                 description_);
  order_ = data::epoch_order(count_, spec_.seed, epoch, spec_.shuffle);
  epoch_ = epoch;
  position_ = first_batch;
}

bool DeviceBatches::next(data::Batch& batch) {
  MD_CHECK(epoch_ >= 0, "DeviceBatches::next before start_epoch");
  if (position_ >= batches_per_epoch_) return false;
  const data::OrderRange range = data::in_memory_batch_range(count_, spec_, position_);
  const std::int64_t size = range.end - range.begin;
  const std::uint64_t epoch_seed = data::augment_seed(spec_.seed, epoch_);
  Tensor draws = Tensor::empty({size, AugmentDrawColumn::count}, DType::Int32);
  Tensor labels = Tensor::empty({size}, DType::Int32);
  std::int32_t* draw_rows = size > 0 ? draws.data<std::int32_t>() : nullptr;
  std::int32_t* label_values = size > 0 ? labels.data<std::int32_t>() : nullptr;
  batch.indices.assign(order_.begin() + range.begin, order_.begin() + range.end);
  for (std::int64_t i = 0; i < size; ++i) {
    const std::int64_t index = batch.indices[static_cast<std::size_t>(i)];
    const std::int32_t label = labels_[static_cast<std::size_t>(index)];
    MD_INPUT_CHECK(label >= 0 && label < num_classes_, "sample ", index, " of ", description_,
                   " has label ", label, ", outside [0, ", num_classes_, ")");
    Rng rng(epoch_seed, static_cast<std::uint64_t>(index));
    const data::AugmentDraw draw = data::draw_augment(augment_, height_, width_, rng);
    std::int32_t* row = draw_rows + i * AugmentDrawColumn::count;
    row[AugmentDrawColumn::source_index] = static_cast<std::int32_t>(index);
    row[AugmentDrawColumn::crop_top] = draw.crop_top;
    row[AugmentDrawColumn::crop_left] = draw.crop_left;
    row[AugmentDrawColumn::flipped] = draw.flipped ? 1 : 0;
    row[AugmentDrawColumn::cutout_y] = draw.cutout_center_y;
    row[AugmentDrawColumn::cutout_x] = draw.cutout_center_x;
    label_values[i] = label;
  }
  batch.images = Tensor::empty({size, channels_, height_, width_}, DType::Float32, device_);
  if (size > 0) {
    backend::get(device_).augment_images(
        pixels_, draws.to(device_), table_, batch.images,
        AugmentParams{.crop_padding = augment_.crop_padding, .cutout = augment_.cutout});
  }
  batch.labels = labels.to(device_);
  ++position_;
  return true;
}

}  // namespace md::train
