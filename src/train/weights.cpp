#include "train/weights.h"

#include <map>

#include "core/error.h"

namespace md::train {
namespace {

// Slots [first, end) of `layout` from a flat buffer into /<group>.
void put_slots(io::CheckpointData& data, const std::string& group, const nn::FlatLayout& layout,
               const Tensor& flat, std::size_t first, std::size_t end) {
  Tensor host = flat.to(Device::cpu());
  io::NamedTensors& tensors = data.groups[group];
  for (std::size_t i = first; i < end; ++i) {
    const nn::TensorSlot& slot = layout.slots()[i];
    tensors.emplace_back(slot.name, host.slice_flat(slot.offset, slot.shape).clone());
  }
}

void load_slots(const io::CheckpointData& data, const std::string& path, const std::string& group,
                const nn::FlatLayout& layout, Tensor& flat, std::size_t first, std::size_t end) {
  if (first == end) return;
  auto found = data.groups.find(group);
  MD_INPUT_CHECK(found != data.groups.end(), path, ": no group /", group);
  std::map<std::string, const Tensor*> by_name;
  for (const auto& [name, tensor] : found->second) by_name[name] = &tensor;
  Tensor host = flat.to(Device::cpu()).clone();
  for (std::size_t i = first; i < end; ++i) {
    const nn::TensorSlot& slot = layout.slots()[i];
    auto it = by_name.find(slot.name);
    MD_INPUT_CHECK(it != by_name.end(), path, ": /", group, "/", slot.name, " is missing");
    const Tensor& stored = *it->second;
    MD_INPUT_CHECK(stored.shape() == slot.shape, path, ": /", group, "/", slot.name, " has shape ",
                   shape_str(stored.shape()), ", the model needs ", shape_str(slot.shape));
    const Tensor converted =
        stored.dtype() == host.dtype() ? stored : stored.to_dtype(host.dtype());
    host.slice_flat(slot.offset, slot.shape).copy_from(converted);
  }
  flat.copy_from(host);
}

// The number of leading slots of `layout` that lie within its first `numel` elements.
std::size_t leading_slots(const nn::FlatLayout& layout, std::int64_t numel) {
  std::size_t count = 0;
  while (count < layout.slots().size() && layout.slots()[count].offset < numel) ++count;
  return count;
}

}  // namespace

void put_student(io::CheckpointData& data, const models::Student& student,
                 const nn::ModelBuffers& buffers) {
  const nn::ModelLayout& layout = student.layout();
  const std::size_t params = leading_slots(layout.parameters, student.backbone_parameter_count());
  const std::size_t stats = leading_slots(layout.buffers, student.backbone_buffer_count());
  put_slots(data, "model", layout.parameters, buffers.parameters, 0, params);
  put_slots(data, "model", layout.buffers, buffers.buffers, 0, stats);
  if (student.num_heads() > 1) {
    put_slots(data, "aux", layout.parameters, buffers.parameters, params,
              layout.parameters.slots().size());
    put_slots(data, "aux", layout.buffers, buffers.buffers, stats, layout.buffers.slots().size());
  }
}

void load_student(const io::CheckpointData& data, const std::string& path,
                  const models::Student& student, nn::ModelBuffers& buffers, WeightGroups groups) {
  const nn::ModelLayout& layout = student.layout();
  const std::size_t params = leading_slots(layout.parameters, student.backbone_parameter_count());
  const std::size_t stats = leading_slots(layout.buffers, student.backbone_buffer_count());
  load_slots(data, path, "model", layout.parameters, buffers.parameters, 0, params);
  load_slots(data, path, "model", layout.buffers, buffers.buffers, 0, stats);
  if (groups == WeightGroups::BackboneAndAux) {
    load_slots(data, path, "aux", layout.parameters, buffers.parameters, params,
               layout.parameters.slots().size());
    load_slots(data, path, "aux", layout.buffers, buffers.buffers, stats,
               layout.buffers.slots().size());
  }
}

void put_layout(io::CheckpointData& data, const std::string& group, const nn::FlatLayout& layout,
                const Tensor& flat) {
  put_slots(data, group, layout, flat, 0, layout.slots().size());
}

void load_layout(const io::CheckpointData& data, const std::string& path, const std::string& group,
                 const nn::FlatLayout& layout, Tensor& flat) {
  load_slots(data, path, group, layout, flat, 0, layout.slots().size());
}

void load_flat(const io::CheckpointData& data, const std::string& path, const std::string& group,
               const std::string& name, Tensor& target) {
  auto found = data.groups.find(group);
  MD_INPUT_CHECK(found != data.groups.end(), path, ": no group /", group);
  const Tensor* stored = io::find_tensor(found->second, name);
  MD_INPUT_CHECK(stored != nullptr, path, ": /", group, "/", name, " is missing");
  MD_INPUT_CHECK(stored->numel() == target.numel(), path, ": /", group, "/", name, " has ",
                 stored->numel(), " elements, expected ", target.numel());
  const Tensor converted =
      stored->dtype() == target.dtype() ? *stored : stored->to_dtype(target.dtype());
  target.copy_from(converted);
}

void put_packed(io::CheckpointData& data, const std::string& group, const std::string& name,
                const nn::FlatLayout& layout, const Tensor& flat) {
  MD_CHECK(flat.numel() == layout.numel(), "put_packed /", group, "/", name, ": buffer ",
           flat.describe(), " for a layout of ", layout.numel());
  const Tensor host = flat.to(Device::cpu());
  Tensor packed = Tensor::empty({layout.slot_numel()}, host.dtype());
  std::int64_t position = 0;
  for (const nn::TensorSlot& slot : layout.slots()) {
    const std::int64_t count = shape_numel(slot.shape);
    packed.slice_flat(position, {count}).copy_from(host.slice_flat(slot.offset, {count}));
    position += count;
  }
  data.groups[group].emplace_back(name, std::move(packed));
}

void load_packed(const io::CheckpointData& data, const std::string& path, const std::string& group,
                 const std::string& name, const nn::FlatLayout& layout, Tensor& target) {
  MD_CHECK(target.numel() == layout.numel(), "load_packed /", group, "/", name, ": buffer ",
           target.describe(), " for a layout of ", layout.numel());
  auto found = data.groups.find(group);
  MD_INPUT_CHECK(found != data.groups.end(), path, ": no group /", group);
  const Tensor* stored = io::find_tensor(found->second, name);
  MD_INPUT_CHECK(stored != nullptr, path, ": /", group, "/", name, " is missing");
  MD_INPUT_CHECK(stored->numel() == layout.slot_numel(), path, ": /", group, "/", name, " has ",
                 stored->numel(), " elements, expected ", layout.slot_numel());
  const Tensor converted =
      stored->dtype() == target.dtype() ? *stored : stored->to_dtype(target.dtype());
  Tensor host = Tensor::zeros({layout.numel()}, target.dtype());
  std::int64_t position = 0;
  for (const nn::TensorSlot& slot : layout.slots()) {
    const std::int64_t count = shape_numel(slot.shape);
    host.slice_flat(slot.offset, {count}).copy_from(converted.slice_flat(position, {count}));
    position += count;
  }
  target.copy_from(host);
}

LoadedStudent load_checkpoint_student(const std::string& path, Device device) {
  const io::CheckpointData data = io::read_checkpoint(path);
  models::ModelSpec spec;
  spec.arch = io::attribute_string(data.attributes, "arch", path);
  spec.num_classes = static_cast<int>(io::attribute_int(data.attributes, "num_classes", path));
  if (data.attributes.count("in_channels")) {
    spec.in_channels = static_cast<int>(io::attribute_int(data.attributes, "in_channels", path));
  }
  auto model = data.groups.find("model");
  MD_INPUT_CHECK(model != data.groups.end() && !model->second.empty(), path, ": no /model group");
  const bool has_aux = data.groups.count("aux") != 0;
  LoadedStudent loaded;
  loaded.student = std::make_unique<models::Student>(
      spec, has_aux ? models::AuxHeads::Byot : models::AuxHeads::None);
  // A checkpoint without in_channels (written by PyTorch) tells it by its first weight.
  const nn::TensorSlot& first = loaded.student->layout().parameters.slot(0);
  if (const Tensor* stored = io::find_tensor(model->second, first.name);
      stored != nullptr && stored->ndim() == 4 && stored->shape()[1] != first.shape[1] &&
      !data.attributes.count("in_channels")) {
    spec.in_channels = static_cast<int>(stored->shape()[1]);
    loaded.student = std::make_unique<models::Student>(
        spec, has_aux ? models::AuxHeads::Byot : models::AuxHeads::None);
  }
  // A student trained with another method.aux.width: every head's bottleneck as stored, when the
  // heads share one width (last_stage_quarter or N); otherwise loading names the mismatch.
  if (has_aux) {
    const io::NamedTensors& aux = data.groups.at("aux");
    int stored_width = 0;
    bool uniform = true, differs = false;
    for (int s = 0; s < loaded.student->num_aux_heads(); ++s) {
      const std::string name = "aux." + std::to_string(s) + ".conv1.weight";
      const Tensor* stored = io::find_tensor(aux, name);
      const int slot = loaded.student->layout().parameters.find(name);
      if (stored == nullptr || stored->ndim() != 4 || slot < 0) continue;
      const int width = static_cast<int>(stored->shape()[0]);
      if (stored_width != 0 && width != stored_width) uniform = false;
      stored_width = width;
      differs = differs || width != loaded.student->layout().parameters.slot(slot).shape[0];
    }
    if (differs && uniform) {
      spec.aux_width = {.rule = models::AuxWidthRule::Fixed, .channels = stored_width};
      loaded.student = std::make_unique<models::Student>(spec, models::AuxHeads::Byot);
    }
  }
  loaded.buffers = nn::ModelBuffers::allocate(loaded.student->layout(), DType::Float32, device);
  load_student(data, path, *loaded.student, loaded.buffers,
               has_aux ? WeightGroups::BackboneAndAux : WeightGroups::BackboneOnly);
  return loaded;
}

}  // namespace md::train
