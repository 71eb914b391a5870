// Between a student's flat buffers and a checkpoint's named tensors: the backbone under
// /model (torchvision names: parameters and BN buffers, so /model alone loads into
// torchvision), auxiliary heads under /aux, a generator under /gen. Every missing tensor or
// shape mismatch is an md::InputError naming the file and the tensor.
#pragma once

#include <memory>
#include <string>

#include "core/device.h"
#include "io/checkpoint.h"
#include "models/student.h"
#include "nn/layout.h"

namespace md::train {

enum class WeightGroups { BackboneOnly, BackboneAndAux };

void put_student(io::CheckpointData& data, const models::Student& student,
                 const nn::ModelBuffers& buffers);
void load_student(const io::CheckpointData& data, const std::string& path,
                  const models::Student& student, nn::ModelBuffers& buffers, WeightGroups groups);
// Every slot of `layout` under /<group>/<slot name>.
void put_layout(io::CheckpointData& data, const std::string& group, const nn::FlatLayout& layout,
                const Tensor& flat);
void load_layout(const io::CheckpointData& data, const std::string& path, const std::string& group,
                 const nn::FlatLayout& layout, Tensor& flat);
// A whole flat buffer stored as one tensor /<group>/<name>, as is.
void load_flat(const io::CheckpointData& data, const std::string& path, const std::string& group,
               const std::string& name, Tensor& target);
// A flat buffer of `layout` (optimizer state) as one 1-D tensor /<group>/<name> that holds the
// slots' values back to back in slot order, without the padding between slots (nn/layout.h):
// the stored tensor does not depend on the alignment, and checkpoints written before slots were
// aligned load unchanged.
void put_packed(io::CheckpointData& data, const std::string& group, const std::string& name,
                const nn::FlatLayout& layout, const Tensor& flat);
// The inverse of put_packed into `target` (a buffer of `layout`); its padding is set to zero.
void load_packed(const io::CheckpointData& data, const std::string& path, const std::string& group,
                 const std::string& name, const nn::FlatLayout& layout, Tensor& target);

// The student a checkpoint holds, for inference (`metadistill predict`): arch and num_classes
// from its attributes, the input channels from in_channels or else its first convolution (a
// PyTorch-written file), auxiliary heads when it has /aux (their bottleneck width as stored, when
// the heads share one), and the weights of /model (and /aux) in float32 on `device`.
// md::InputError naming the file when it is unreadable, of a newer schema, has no /model, or a
// tensor is missing or mis-shaped.
struct LoadedStudent {
  std::unique_ptr<models::Student> student;
  nn::ModelBuffers buffers;
};
LoadedStudent load_checkpoint_student(const std::string& path, Device device);

}  // namespace md::train
