// load_trial_data (see trial_data.h). The adapter from io's HDF5 shard reader to the data
// layer's EncodedShardStore lives here, the one place that sees both layers.
#include "train/trial_data.h"

#include <cstdlib>
#include <filesystem>
#include <utility>

#include "core/error.h"
#include "core/hash.h"
#include "core/logging.h"
#include "data/augment.h"
#include "data/cifar100.h"
#include "data/encoded_shards.h"
#include "data/idx.h"
#include "data/image_set_source.h"
#include "data/jpeg_source.h"
#include "io/config_keys.h"
#include "io/imagenet_shards.h"

namespace md::train {
namespace {

namespace fs = std::filesystem;

std::string resolve_path(const std::string& root, const std::string& name) {
  if (name.empty() || fs::path(name).is_absolute()) return name;
  return (fs::path(root) / name).string();
}

class ShardStore : public data::EncodedShardStore {
 public:
  ShardStore(io::ImagenetShards shards, std::string description)
      : shards_(std::move(shards)), description_(std::move(description)) {}
  std::vector<std::int64_t> shard_sizes() const override { return shards_.shard_sizes(); }
  int num_classes() const override { return shards_.num_classes(); }
  const std::string& description() const override { return description_; }
  data::EncodedShard load(std::int64_t shard) const override {
    io::ImagenetShardContents contents = shards_.read(shard);
    data::EncodedShard loaded;
    loaded.bytes = std::move(contents.bytes);
    loaded.offsets = std::move(contents.offsets);
    loaded.labels = std::move(contents.labels);
    loaded.names = std::move(contents.names);
    return loaded;
  }

 private:
  io::ImagenetShards shards_;
  std::string description_;
};

// Shards each JpegShardSource keeps decoded in memory: the loader's window (4 shards) plus the
// ones at its ends, twice over when a second loader (the meta batches) reads the same source.
constexpr int kCachedShards = 6;

void load_imagenet(const io::TrialConfig& config, DataUse use, TrialData& data) {
  const io::DatasetConfig& dataset = config.dataset;
  MD_INPUT_CHECK(!(config.method.name == io::MethodName::MetaDistiller &&
                   config.method.meta.data == io::MetaData::Holdout),
                 config.source, ": ", io::key_path::method_meta_data,
                 ": holdout is not available with ", io::key_path::dataset_name,
                 " imagenet (the shards are not split); use next_batch");
  data.root = dataset.local_copy
                  ? io::stage_imagenet_shards(dataset.root, local_copy_directory(dataset.root))
                  : dataset.root;
  if (dataset.local_copy) log_info("shards staged from ", dataset.root, " to ", data.root);
  data::JpegTransform transform;
  transform.crop_size = dataset.crop_size;
  transform.resize_size = dataset.resize_size;
  transform.min_scale = dataset.min_scale;
  transform.flip = config.augment.flip ? data::Flip::Horizontal : data::Flip::None;

  io::ImagenetShards val_shards = io::ImagenetShards::open(data.root, io::ImagenetSplit::Val);
  data.num_classes = val_shards.num_classes();
  data.channels = 3;
  auto test_store =
      std::make_shared<ShardStore>(std::move(val_shards), "ILSVRC2012 val shards in " + data.root);
  transform.phase = data::JpegPhase::Eval;
  data.test = std::make_unique<data::JpegShardSource>(test_store, transform, 2);
  data.test_store = test_store;
  if (use == DataUse::EvaluateOnly) return;

  io::ImagenetShards train_shards = io::ImagenetShards::open(data.root, io::ImagenetSplit::Train);
  MD_INPUT_CHECK(train_shards.num_classes() == data.num_classes, data.root,
                 ": the train and val manifests disagree on the number of classes");
  auto train_store = std::make_shared<ShardStore>(std::move(train_shards),
                                                  "ILSVRC2012 train shards in " + data.root);
  transform.phase = data::JpegPhase::Train;
  const bool two_readers = config.method.name == io::MethodName::MetaDistiller;
  data.train = std::make_unique<data::JpegShardSource>(
      train_store, transform, two_readers ? 2 * kCachedShards : kCachedShards);
  data.train_store = train_store;
}

// The seed of dataset.validation_count's split, the same for every trial.
constexpr std::uint64_t kValidationSplitSeed = 0x76616c6964ULL;  // "valid"

void load_in_memory(const io::TrialConfig& config, TrialData& data) {
  const io::DatasetConfig& dataset = config.dataset;
  const bool validation = dataset.validation_count > 0;
  if (dataset.name == io::DatasetName::Cifar100) {
    data.train_set = data::load_cifar100(dataset.root, data::Split::Train);
    if (!validation) data.test_set = data::load_cifar100(dataset.root, data::Split::Test);
  } else {
    data.train_set = data::load_idx(resolve_path(dataset.root, dataset.train_images),
                                    resolve_path(dataset.root, dataset.train_labels));
    if (!validation) {
      data.test_set = data::load_idx(resolve_path(dataset.root, dataset.test_images),
                                     resolve_path(dataset.root, dataset.test_labels));
    }
  }
  if (dataset.train_count > 0) {
    MD_INPUT_CHECK(dataset.train_count <= data.train_set.count, config.source, ": ",
                   io::key_path::dataset_train_count, " is ", dataset.train_count, " but ",
                   data.train_set.source, " has ", data.train_set.count, " images");
    data.train_set = data::first_samples(data.train_set, dataset.train_count);
  }
  if (validation) {
    MD_INPUT_CHECK(dataset.validation_count < data.train_set.count, config.source, ": ",
                   io::key_path::dataset_validation_count, " is ", dataset.validation_count,
                   " but training has ", data.train_set.count, " images");
    // One split for every seed and method, so that all arms are compared on the same images.
    auto [train_part, validation_part] =
        data::split_holdout_count(data.train_set, dataset.validation_count, kValidationSplitSeed);
    data.train_set = std::move(train_part);
    data.test_set = std::move(validation_part);
  }
  const data::ImageSet& train = data.train_set;
  const data::ImageSet& test = data.test_set;
  MD_INPUT_CHECK(
      train.channels == test.channels && train.height == test.height && train.width == test.width,
      test.source, ": test images are ", test.channels, "x", test.height, "x", test.width,
      " but training images are ", train.channels, "x", train.height, "x", train.width);
  data.root = dataset.root;
  if (config.method.name == io::MethodName::MetaDistiller &&
      config.method.meta.data == io::MetaData::Holdout) {
    auto [train_part, holdout_part] = data::split_holdout(
        data.train_set, config.method.meta.holdout_fraction, config.runtime.seed);
    data.train_set = std::move(train_part);
    data.meta_holdout_set = std::move(holdout_part);
  }
  // Normalized by the statistics of the images training uses (without the meta holdout).
  const data::Normalization normalization = data::compute_normalization(data.train_set);
  const data::AugmentSpec augment{config.augment.random_crop,
                                  config.augment.flip ? data::Flip::Horizontal : data::Flip::None,
                                  config.augment.cutout};
  data.train = std::make_unique<data::ImageSetSource>(data.train_set, augment, normalization);
  if (data.meta_holdout_set.count > 0) {
    data.meta_holdout =
        std::make_unique<data::ImageSetSource>(data.meta_holdout_set, augment, normalization);
  }
  data.test =
      std::make_unique<data::ImageSetSource>(data.test_set, data::AugmentSpec{}, normalization);
  data.num_classes = data.train_set.num_classes;
  data.channels = data.train_set.channels;
}

}  // namespace

std::unique_ptr<TrialData> load_trial_data(const io::TrialConfig& config, DataUse use) {
  auto data = std::make_unique<TrialData>();
  if (config.dataset.name == io::DatasetName::Imagenet) {
    load_imagenet(config, use, *data);
  } else {
    load_in_memory(config, *data);
  }
  return data;
}

std::string local_copy_directory(const std::string& root) {
  const char* base = std::getenv("SLURM_TMPDIR");
  if (base == nullptr || *base == '\0') base = std::getenv("TMPDIR");
  if (base == nullptr || *base == '\0') base = "/tmp";
  std::error_code error;
  const fs::path absolute = fs::absolute(root, error);
  const std::string key = error ? root : absolute.lexically_normal().string();
  const std::string name = hex16(fnv1a64(key));  // one directory per source path
  return (fs::path(base) / "metadistill-shards" / name).string();
}

}  // namespace md::train
