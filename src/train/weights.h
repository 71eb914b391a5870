// Between a student's flat buffers and a checkpoint's named tensors: the backbone under
// /model (torchvision names: parameters and BN buffers, so /model alone loads into
// torchvision), auxiliary heads under /aux, a generator under /gen. Every missing tensor or
// shape mismatch is an md::InputError naming the file and the tensor.
#pragma once

#include <string>

#include "io/checkpoint.h"
#include "models/student.h"
#include "nn/layout.h"

namespace md::train {

enum class WeightGroups { BackboneOnly, BackboneAndAux };

void put_student(io::CheckpointData& data, const models::Student& student, const nn::ModelBuffers& buffers);
void load_student(const io::CheckpointData& data, const std::string& path, const models::Student& student,
                  nn::ModelBuffers& buffers, WeightGroups groups);
// Every slot of `layout` under /<group>/<slot name>.
void put_layout(io::CheckpointData& data, const std::string& group, const nn::FlatLayout& layout,
                const Tensor& flat);
void load_layout(const io::CheckpointData& data, const std::string& path, const std::string& group,
                 const nn::FlatLayout& layout, Tensor& flat);
// A whole flat buffer stored as one tensor /<group>/<name> (optimizer state).
void load_flat(const io::CheckpointData& data, const std::string& path, const std::string& group,
               const std::string& name, Tensor& target);

}  // namespace md::train
