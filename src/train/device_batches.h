// Training batches assembled on the training device from a device-resident copy of an in-memory
// set (CIFAR-100, IDX; DESIGN.md §5): the set's uint8 pixels and the normalization table are
// uploaded once, and each batch is gathered, cropped, flipped, normalized and cut out there by
// Backend::augment_images. Only the small draws tensor (B, 6) int32 and the labels travel per
// batch. The epoch order, the rank parts and every sample's random draws are those of
// data::BatchLoader (data::epoch_order, data::in_memory_batch_range, Rng(augment_seed, index),
// data::draw_augment), so the batches equal the loader's bit for bit, on any backend. It does not
// prefetch (a batch is one small upload and one kernel) and never skips samples: an in-memory
// set renders every sample. Block sources (imagenet shards) are not its business.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "core/device.h"
#include "core/tensor.h"
#include "data/image_set_source.h"
#include "data/loader.h"

namespace md::train {

class DeviceBatches {
 public:
  // Uploads source.set()'s pixels to `device` (the set must outlive this object only until
  // construction returns; labels are copied). spec: as for a BatchLoader over `source`
  // (prefetch_batches, threads and window_blocks are ignored). InputError for an invalid spec.
  DeviceBatches(const data::ImageSetSource& source, const data::LoaderSpec& spec, Device device);

  std::int64_t batches_per_epoch() const { return batches_per_epoch_; }

  // Starts an epoch; first_batch > 0 resumes mid-epoch at that batch index.
  void start_epoch(std::int64_t epoch, std::int64_t first_batch = 0);

  // The next batch of the epoch, images (B, C, H, W) float32 and labels (B) int32 on the device;
  // false at the epoch's end. InputError for a label outside [0, num_classes), as the loader.
  bool next(data::Batch& batch);

  // Index of the next batch within the epoch (what a checkpoint stores to resume).
  std::int64_t position() const { return position_; }

 private:
  data::LoaderSpec spec_;
  Device device_;
  data::AugmentSpec augment_;
  std::int64_t count_ = 0;
  int num_classes_ = 0;
  int channels_ = 0, height_ = 0, width_ = 0;
  std::string description_;
  std::vector<std::int32_t> labels_;  // (count) on the host
  Tensor pixels_;                     // (count, C, H, W) uint8 on the device
  Tensor table_;                      // (C, 256) float32 on the device
  std::int64_t batches_per_epoch_ = 0;
  std::int64_t epoch_ = -1;  // -1 before the first start_epoch
  std::vector<std::int64_t> order_;
  std::int64_t position_ = 0;
};

}  // namespace md::train
