// Flat buffers: every parameter of a model is a slot (torchvision-style dotted name, shape,
// offset) in ONE contiguous buffer, its gradient in a second buffer of the same layout, and its
// non-trainable state (BN running statistics) in a third. The optimizer, the allreduce, the
// virtual step θ' = θ − η·g, θ ± ε·v and checkpoints act on whole buffers; a forward pass can
// run on any buffer of the same layout (ForwardContext), without copying the model.
#pragma once

#include <string>
#include <vector>

#include "autograd/variable.h"
#include "core/rng.h"
#include "core/tensor.h"

namespace md::nn {

enum class InitKind {
  Zeros,
  Ones,
  KaimingNormalFanOut,  // N(0, 2 / fan_out): torchvision's ResNet convolutions
  KaimingNormalFanIn,   // N(0, 2 / fan_in)
  UniformFanIn,         // U(±1/sqrt(fan_in)): PyTorch's default for Conv2d and Linear
  Normal001,            // N(0, 0.01²): torchvision's VGG / MobileNetV2 linear layers
};

struct InitSpec {
  InitKind kind = InitKind::Zeros;
  double fan = 1.0;
};

struct TensorSlot {
  std::string name;
  Shape shape;
  std::int64_t offset = 0;
  InitSpec init;
};

class FlatLayout {
 public:
  // Adds a slot; throws md::Error on a duplicate name.
  int add(const std::string& name, const Shape& shape, InitSpec init);
  const std::vector<TensorSlot>& slots() const { return slots_; }
  const TensorSlot& slot(int index) const { return slots_.at(static_cast<std::size_t>(index)); }
  std::int64_t numel() const { return numel_; }
  int find(const std::string& name) const;  // -1 when absent
  // Fills `buffer` (numel() elements, any device) from the init specs, drawing from `rng`.
  void initialize(Tensor& buffer, Rng& rng) const;
  // The view of slot `index` inside a flat buffer of this layout.
  Tensor view(const Tensor& buffer, int index) const;

 private:
  std::vector<TensorSlot> slots_;
  std::int64_t numel_ = 0;
};

// The layouts of one model: trainable parameters and buffers (running statistics).
struct ModelLayout {
  FlatLayout parameters;
  FlatLayout buffers;
};

// Joins dotted names: join("layer1.0", "conv1") == "layer1.0.conv1"; join("", "fc") == "fc".
std::string join(const std::string& prefix, const std::string& name);

// The three flat buffers of one model instance on one device.
struct ModelBuffers {
  Tensor parameters;
  Tensor gradients;
  Tensor buffers;

  static ModelBuffers allocate(const ModelLayout& layout, DType dtype, Device device);
  // Parameters from the init specs; running_var and BN weights to 1, the rest of buffers to 0.
  void initialize(const ModelLayout& layout, Rng& rng);
};

enum class Mode { Train, Eval };

// What one forward pass runs on. `gradients` may be undefined (no parameter gradients);
// gradients flow only while autograd's grad mode is on.
struct ForwardContext {
  const ModelLayout* layout = nullptr;
  Tensor parameters;
  Tensor gradients;
  Tensor buffers;
  Mode mode = Mode::Train;
  RunningStatsUpdate stats_update = RunningStatsUpdate::Update;

  autograd::Variable parameter(int index) const;
  Tensor buffer(int index) const;
};

}  // namespace md::nn
