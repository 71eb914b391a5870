// Checkpoints (DESIGN.md §4, §6: `DIR/<trial-id>.ckpt.h5`): named tensors in groups, opaque
// uint64 blobs (RNG states, data order) and root attributes (arch, num_classes, epoch, step...).
// This layer stores and loads; it knows nothing of models or optimizers (train/ maps its state
// to and from CheckpointData).
//
// File layout:
//   /                 scalar attributes (int64, float64, variable-length UTF-8 strings)
//   /<group>/<name>   one dataset per tensor, in the tensor's shape (0-d: a scalar dataset), named
//                     as-is (torchvision names keep their dots: "layer1.0.conv1.weight"); the
//                     group tracks creation order, so tensors read back in the order written
//   /state/<name>     1-D uint64 datasets: the blobs ("state" is therefore not a tensor group)
// So `/model` of our checkpoint is a torchvision state dict, and a state dict that PyTorch + h5py
// wrote to `/model` loads here.
//
// Stored dtypes: float32, float64, int32 and uint8 as themselves (little endian); bfloat16 as
// an HDF5 16-bit float type (sign 1, exponent 8, mantissa 7), which h5dump and h5py can decode.
// Read rule for datasets written elsewhere (the dtype a tensor gets):
//   8-byte float -> Float64;  the bfloat16 type above -> BFloat16;  any other float -> Float32;
//   1-byte unsigned integer -> UInt8;  any other integer -> Int32 (PyTorch's int64 scalar
//   num_batches_tracked included); a value outside int32 is an md::InputError.
//   Other types (strings, compounds, enums such as numpy bools) are md::InputError.
// Tensors are read into CPU memory; write_checkpoint accepts tensors on any device.
//
// Commit protocol of write_checkpoint: write `path + ".tmp"`, flush, close, fsync, rename over
// `path` (the commit), fsync the directory. A crash or a failed write leaves the previous
// checkpoint at `path` untouched.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "core/tensor.h"
#include "io/h5.h"

namespace md::io {

using NamedTensors = std::vector<std::pair<std::string, Tensor>>;

struct CheckpointData {
  AttributeMap attributes;                     // root: arch, num_classes, epoch, step, ...
  std::map<std::string, NamedTensors> groups;  // "model", "aux", "gen", "optim", "buffers"...
  std::map<std::string, std::vector<std::uint64_t>> blobs;  // /state/<name>
};

inline constexpr const char* kCheckpointStateGroup = "state";

// Throws md::Error when the data is not storable (a name with '/', a group named "state", an
// undefined tensor) or the write fails; the previous checkpoint at `path` survives either way.
void write_checkpoint(const std::string& path, const CheckpointData& data);

// Throws md::InputError naming the file, and the dataset or attribute, when the file is missing,
// not HDF5, truncated, holds something the read rule above does not accept, or has a root
// attribute schema_version newer than kCheckpointSchemaVersion (io/log_schema.h; a file without
// one, e.g. written by PyTorch, loads). write_checkpoint stores the attributes as given: the
// trainer puts kCheckpointSchemaVersion there.
CheckpointData read_checkpoint(const std::string& path);

// The tensor named `name` in `tensors`, or nullptr.
// Plain array files (the input and output of `metadistill predict`): datasets at the root.
// read_array: md::InputError naming the file and dataset when missing or malformed; the dtype
// follows the checkpoint read rule. write_arrays: written to path + ".tmp" and renamed.
Tensor read_array(const std::string& path, const std::string& dataset);
void write_arrays(const std::string& path, const NamedTensors& arrays);

const Tensor* find_tensor(const NamedTensors& tensors, const std::string& name);

}  // namespace md::io
