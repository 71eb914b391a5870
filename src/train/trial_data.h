// The data of a trial, as its config names it: the training source (augmented), the meta source
// (MetaDistiller's held-out split, or the training source itself for next_batch) and the
// evaluation source, for every dataset.name. cifar100 and idx are read whole into memory and
// normalized by the training images' statistics; imagenet reads `metadistill pack-imagenet`
// shards (optionally staged on node-local storage first), decodes JPEGs on the loader's
// threads, and normalizes by ImageNet's fixed mean and std. The trainer and `predict` share
// this, so a test set is normalized the same way in both.
#pragma once

#include <memory>
#include <string>

#include "data/image_set.h"
#include "data/sample_source.h"
#include "io/config.h"

namespace md::train {

enum class DataUse { TrainAndEvaluate, EvaluateOnly };

struct TrialData {
  // The sources; meta is null unless MetaDistiller trains (then it may be train itself).
  std::unique_ptr<data::SampleSource> train;
  std::unique_ptr<data::SampleSource> meta_holdout;  // null: the meta batches come from train
  std::unique_ptr<data::SampleSource> test;
  int num_classes = 0;
  int channels = 0;
  std::string root;  // where the data was read from (the node-local copy when staged)

  // What the sources read from (they keep references into these).
  data::ImageSet train_set, meta_holdout_set, test_set;
  std::shared_ptr<const void> train_store, test_store;

  TrialData() = default;
  TrialData(const TrialData&) = delete;
  TrialData& operator=(const TrialData&) = delete;
};

// InputError naming the config source and key, or the data file, for anything unreadable.
// With EvaluateOnly, the training source is still built for in-memory sets (their statistics
// normalize the test set) but not for imagenet.
std::unique_ptr<TrialData> load_trial_data(const io::TrialConfig& config,
                                           DataUse use = DataUse::TrainAndEvaluate);

// The node-local directory shards are staged to when dataset.local_copy is set:
// $SLURM_TMPDIR, else $TMPDIR, else /tmp, plus "metadistill-shards/<hash of root>".
std::string local_copy_directory(const std::string& root);

}  // namespace md::train
