#include "nn/layout.h"

#include <cmath>

#include "backend/backend.h"
#include "core/error.h"

namespace md::nn {

int FlatLayout::add(const std::string& name, const Shape& shape, InitSpec init) {
  MD_CHECK(find(name) < 0, "duplicate parameter name '", name, "'");
  const std::int64_t offset =
      (numel_ + kSlotAlignmentElements - 1) / kSlotAlignmentElements * kSlotAlignmentElements;
  slots_.push_back(TensorSlot{name, shape, offset, init});
  numel_ = offset + shape_numel(shape);
  slot_numel_ += shape_numel(shape);
  return static_cast<int>(slots_.size()) - 1;
}

int FlatLayout::find(const std::string& name) const {
  for (std::size_t i = 0; i < slots_.size(); ++i) {
    if (slots_[i].name == name) return static_cast<int>(i);
  }
  return -1;
}

Tensor FlatLayout::view(const Tensor& buffer, int index) const {
  const TensorSlot& s = slot(index);
  return buffer.slice_flat(s.offset, s.shape);
}

void FlatLayout::initialize(Tensor& buffer, Rng& rng) const {
  MD_CHECK(buffer.numel() == numel_, "buffer ", buffer.describe(), " for a layout of ", numel_);
  Tensor host = Tensor::zeros({numel_}, DType::Float64);  // the padding stays zero
  double* data = host.data<double>();
  for (const TensorSlot& s : slots_) {
    double* out = data + s.offset;
    std::int64_t count = shape_numel(s.shape);
    for (std::int64_t i = 0; i < count; ++i) {
      switch (s.init.kind) {
        case InitKind::Zeros:
          out[i] = 0.0;
          break;
        case InitKind::Ones:
          out[i] = 1.0;
          break;
        case InitKind::KaimingNormalFanOut:
        case InitKind::KaimingNormalFanIn:
          out[i] = rng.normal() * std::sqrt(2.0 / s.init.fan);
          break;
        case InitKind::UniformFanIn: {
          double bound = 1.0 / std::sqrt(s.init.fan);
          out[i] = rng.uniform(-bound, bound);
          break;
        }
        case InitKind::Normal001:
          out[i] = rng.normal() * 0.01;
          break;
      }
    }
  }
  buffer.copy_from(host.to_dtype(buffer.dtype()).to(buffer.device()));
}

std::string join(const std::string& prefix, const std::string& name) {
  return prefix.empty() ? name : prefix + "." + name;
}

ModelBuffers ModelBuffers::allocate(const ModelLayout& layout, DType dtype, Device device) {
  MD_CHECK(dtype == DType::Float32 || dtype == DType::Float64, "model buffers of ",
           dtype_name(dtype), ": slot offsets are aligned for float32 and float64 only");
  ModelBuffers model;
  model.parameters = Tensor::zeros({layout.parameters.numel()}, dtype, device);
  model.gradients = Tensor::zeros({layout.parameters.numel()}, dtype, device);
  model.buffers = Tensor::zeros({layout.buffers.numel()}, dtype, device);
  return model;
}

void ModelBuffers::initialize(const ModelLayout& layout, Rng& rng) {
  layout.parameters.initialize(parameters, rng);
  layout.buffers.initialize(buffers, rng);
  backend::of(gradients).fill(gradients, 0.0);
}

autograd::Variable ForwardContext::parameter(int index) const {
  Tensor value = layout->parameters.view(parameters, index);
  if (gradients.defined() && autograd::grad_enabled()) {
    return autograd::Variable::with_grad_buffer(value, layout->parameters.view(gradients, index));
  }
  return autograd::Variable(value, false);
}

Tensor ForwardContext::buffer(int index) const {
  return layout->buffers.view(buffers, index);
}

}  // namespace md::nn
