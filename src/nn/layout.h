// Flat buffers: every parameter of a model is a slot (torchvision-style dotted name, shape,
// offset) in ONE contiguous buffer, its gradient in a second buffer of the same layout, and its
// non-trainable state (BN running statistics) in a third. The optimizer, the allreduce, the
// virtual step θ' = θ − η·g, θ ± ε·v and checkpoints act on whole buffers; a forward pass can
// run on any buffer of the same layout (ForwardContext), without copying the model.
// Every slot starts on a 256-byte boundary of a float32 buffer (kSlotAlignmentElements; 512
// bytes of float64), the alignment cuDNN, cuBLAS and vectorized kernels want, so slots are
// separated by padding. The padding is zero in every buffer of a layout and stays zero: nothing
// but whole-buffer arithmetic touches it (the optimizers, the allreduce, θ' and θ ± ε·v map
// zero parameters and gradients to zero), so norms and dot products over a flat buffer equal
// those over its slots. Checkpoints store slots by name (train/weights.h), never the padding.
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

// Slot offsets are multiples of this many elements.
inline constexpr std::int64_t kSlotAlignmentBytes = 256;
inline constexpr std::int64_t kSlotAlignmentElements =
    kSlotAlignmentBytes / static_cast<std::int64_t>(sizeof(float));

struct TensorSlot {
  std::string name;
  Shape shape;
  std::int64_t offset = 0;
  InitSpec init;
};

class FlatLayout {
 public:
  // Adds a slot at the next aligned offset; throws md::Error on a duplicate name.
  int add(const std::string& name, const Shape& shape, InitSpec init);
  const std::vector<TensorSlot>& slots() const { return slots_; }
  const TensorSlot& slot(int index) const { return slots_.at(static_cast<std::size_t>(index)); }
  // The elements of a flat buffer of this layout: the end of the last slot (padding included).
  std::int64_t numel() const { return numel_; }
  // The values the slots hold (no padding): a model's parameter count.
  std::int64_t slot_numel() const { return slot_numel_; }
  int find(const std::string& name) const;  // -1 when absent
  // Fills `buffer` (numel() elements, any device) from the init specs, drawing from `rng`.
  void initialize(Tensor& buffer, Rng& rng) const;
  // The view of slot `index` inside a flat buffer of this layout.
  Tensor view(const Tensor& buffer, int index) const;

 private:
  std::vector<TensorSlot> slots_;
  std::int64_t numel_ = 0;
  std::int64_t slot_numel_ = 0;
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

  // Zeroed buffers; dtype float32 or float64 (a slot offset is 256-byte aligned for both).
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
