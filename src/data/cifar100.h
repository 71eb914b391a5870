// CIFAR-100 reader: the official binary version (DESIGN.md §5). Reads a whole split into an
// ImageSet; it does not augment or normalize.
#pragma once

#include <string>

#include "data/image_set.h"

namespace md::data {

// Reads <root>/train.bin or <root>/test.bin (also <root>/cifar-100-binary/<name>, the layout
// of the official archive). Each record: 1 byte coarse label, 1 byte fine label, 3072 pixel
// bytes (3 x 32 x 32, channel-major). The fine label is used (num_classes = 100).
// InputError naming the file for a missing file, a size that is not a whole number of records,
// or a label out of range (naming the record index too).
ImageSet load_cifar100(const std::string& root, Split split);

}  // namespace md::data
