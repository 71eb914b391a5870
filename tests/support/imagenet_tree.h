// Test helper: writes a small synthetic ILSVRC2012 source tree of REAL JPEG files (varied sizes,
// some grayscale) plus chosen corrupt files, in the layouts pack-imagenet accepts
// (io/imagenet_pack.h): train/<wnid>/*.JPEG, and val/ per class or flat with a labels file.
// Not part of the product. Throws std::runtime_error on I/O failure.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace md::test {

enum class ValLayout {
  None,                // no val/ directory
  PerClassDirs,        // val/<wnid>/*.JPEG
  FlatWithWnidLabels,  // val/*.JPEG + val_labels.txt holding wnids
  FlatWithIndexLabels  // val/*.JPEG + val_labels.txt holding 0-based class indices
};

struct ImagenetTreeSpec {
  int classes = 3;
  int train_per_class = 4;
  int val_per_class = 2;
  ValLayout val_layout = ValLayout::PerClassDirs;
  // Train images replaced by corrupt bytes, spread over the classes: even ones are a truncated
  // JPEG (the first 60% of a real one), odd ones garbage bytes named .JPEG.
  int corrupt_files = 0;
  std::uint64_t seed = 0;
};

struct ImagenetTree {
  std::vector<std::string> classes;             // wnids, sorted
  std::map<std::string, std::string> class_of;  // record name -> wnid (train and val)
  std::vector<std::string> corrupt;             // record names of the corrupt files
  std::string val_labels;                       // path of the labels file ("" if none)
};

// Record names are paths relative to `dir`, e.g. "train/n01440000/n01440000_3.JPEG".
ImagenetTree write_imagenet_tree(const std::string& dir, const ImagenetTreeSpec& spec);

}  // namespace md::test
