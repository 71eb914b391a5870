// IDX reader (the MNIST file format, used by MNIST, Fashion-MNIST and similar sets), gzip or
// raw (detected by the gzip magic). Reads a whole image file and its label file into an
// ImageSet; it does not augment or normalize.
#pragma once

#include <string>

#include "data/image_set.h"

namespace md::data {

// images_path: unsigned-byte IDX of rank 3 (N x H x W, one channel; magic 0x00000803) or rank 4
// (N x H x W x C, channels last; magic 0x00000804), converted to channel-major (N, C, H, W).
// labels_path: unsigned-byte IDX of rank 1 (N; magic 0x00000801). num_classes = max label + 1.
// InputError naming the file for: a missing file, corrupt or truncated gzip, a bad magic, zero
// dimensions, a size that disagrees with the header; naming both files when the label count
// differs from the image count.
ImageSet load_idx(const std::string& images_path, const std::string& labels_path);

}  // namespace md::data
