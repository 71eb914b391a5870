// Slot alignment of the flat buffers (nn/layout.h) over the whole model zoo: every parameter,
// gradient and buffer slot of every architecture, with its auxiliary heads, and of the label
// generator starts on a 256-byte boundary; the padding between slots is zero after
// initialization and stays zero through SGD (momentum, Nesterov, weight decay) and Adam
// updates, so whole-buffer norms equal the sums over the slots.
#include <gtest/gtest.h>

#include <cstdint>
#include <string>
#include <vector>

#include "backend/backend.h"
#include "core/rng.h"
#include "models/label_generator.h"
#include "models/model.h"
#include "models/student.h"
#include "nn/layout.h"
#include "support/gradcheck.h"

namespace md::models {
namespace {

std::string param_name(const testing::TestParamInfo<std::string>& info) {
  return info.param;
}

// Offsets aligned, slots in order without overlap, numel() the end of the last slot and
// slot_numel() the sum of the slots' sizes.
void expect_aligned(const nn::FlatLayout& layout, const std::string& what) {
  std::int64_t end = 0;
  std::int64_t values = 0;
  for (const nn::TensorSlot& slot : layout.slots()) {
    EXPECT_EQ(slot.offset % nn::kSlotAlignmentElements, 0) << what << " " << slot.name;
    EXPECT_EQ(slot.offset * static_cast<std::int64_t>(sizeof(float)) % 256, 0)
        << what << " " << slot.name;
    EXPECT_GE(slot.offset, end) << what << " " << slot.name << " overlaps the slot before";
    EXPECT_LT(slot.offset - end, nn::kSlotAlignmentElements) << what << " " << slot.name;
    end = slot.offset + shape_numel(slot.shape);
    values += shape_numel(slot.shape);
  }
  EXPECT_EQ(layout.numel(), end) << what;
  EXPECT_EQ(layout.slot_numel(), values) << what;
}

// The elements of a buffer of `layout` that no slot covers.
std::vector<double> padding_of(const nn::FlatLayout& layout, const Tensor& flat) {
  const Tensor host = flat.to(Device::cpu()).to_dtype(DType::Float64);
  const double* data = host.data<double>();
  std::vector<double> padding;
  std::int64_t end = 0;
  for (const nn::TensorSlot& slot : layout.slots()) {
    for (std::int64_t i = end; i < slot.offset; ++i) padding.push_back(data[i]);
    end = slot.offset + shape_numel(slot.shape);
  }
  return padding;
}

class ZooLayoutAlignment : public testing::TestWithParam<std::string> {
 protected:
  void SetUp() override { backend::init(); }
};

TEST_P(ZooLayoutAlignment, EverySlotOfTheStudentAndItsGeneratorStartsOn256Bytes) {
  const std::string arch = GetParam();
  const Student student(ModelSpec{.arch = arch, .num_classes = 100}, AuxHeads::Byot);
  expect_aligned(student.layout().parameters, arch + " parameters");
  expect_aligned(student.layout().buffers, arch + " buffers");
  // The backbone is a prefix that ends where the network's own layout ends.
  const auto network = make_network(ModelSpec{.arch = arch, .num_classes = 100});
  EXPECT_EQ(student.backbone_parameter_count(), network->layout().parameters.numel()) << arch;
  EXPECT_EQ(student.backbone_buffer_count(), network->layout().buffers.numel()) << arch;

  const LabelGenerator generator(LabelGeneratorSpec{
      .stage_channels = network->stage_channels(), .width = 128, .num_classes = 100});
  expect_aligned(generator.layout().parameters, arch + " generator parameters");
  expect_aligned(generator.layout().buffers, arch + " generator buffers");
}

INSTANTIATE_TEST_SUITE_P(AllArchitectures, ZooLayoutAlignment,
                         testing::ValuesIn(known_architectures()), param_name);

TEST(LayoutAlignment, ZooCoversEveryFamily) {
  const std::vector<std::string> archs = known_architectures();
  for (const std::string prefix :
       {"resnet18", "resnet20", "resnet18_cifar", "wrn_", "vgg", "mobilenetv2"}) {
    bool found = false;
    for (const std::string& arch : archs) found = found || arch.rfind(prefix, 0) == 0;
    EXPECT_TRUE(found) << prefix;
  }
}

// Addresses too: flat buffers are allocated 256-byte aligned on the CPU (as on a GPU).
TEST(LayoutAlignment, SlotViewsOfAllocatedBuffersAreAlignedAndThePaddingIsZero) {
  backend::init();
  const Student student(ModelSpec{.arch = "resnet20", .num_classes = 10, .in_channels = 1},
                        AuxHeads::Byot);
  const nn::ModelLayout& layout = student.layout();
  for (const DType dtype : {DType::Float32, DType::Float64}) {
    nn::ModelBuffers buffers = nn::ModelBuffers::allocate(layout, dtype, Device::cpu());
    Rng rng(5);
    buffers.initialize(layout, rng);
    for (int index = 0; index < static_cast<int>(layout.parameters.slots().size()); ++index) {
      for (const Tensor* flat : {&buffers.parameters, &buffers.gradients}) {
        const auto address =
            reinterpret_cast<std::uintptr_t>(layout.parameters.view(*flat, index).raw_data());
        EXPECT_EQ(address % 256, 0u) << layout.parameters.slot(index).name;
      }
    }
    for (int index = 0; index < static_cast<int>(layout.buffers.slots().size()); ++index) {
      const auto address =
          reinterpret_cast<std::uintptr_t>(layout.buffers.view(buffers.buffers, index).raw_data());
      EXPECT_EQ(address % 256, 0u) << layout.buffers.slot(index).name;
    }
    const std::vector<double> parameter_padding = padding_of(layout.parameters, buffers.parameters);
    const std::vector<double> buffer_padding = padding_of(layout.buffers, buffers.buffers);
    ASSERT_FALSE(parameter_padding.empty());
    ASSERT_FALSE(buffer_padding.empty());
    EXPECT_EQ(parameter_padding, std::vector<double>(parameter_padding.size(), 0.0));
    EXPECT_EQ(buffer_padding, std::vector<double>(buffer_padding.size(), 0.0));
  }
}

// Random values in every slot of a buffer of `layout`, zero padding.
Tensor random_slots(const nn::FlatLayout& layout, std::uint64_t seed) {
  Tensor flat = Tensor::zeros({layout.numel()}, DType::Float32);
  for (int index = 0; index < static_cast<int>(layout.slots().size()); ++index) {
    Tensor view = layout.view(flat, index);
    view.copy_from(test::random_tensor(view.shape(), seed + static_cast<std::uint64_t>(index))
                       .to_dtype(DType::Float32));
  }
  return flat;
}

TEST(LayoutAlignment, OptimizerUpdatesKeepThePaddingZero) {
  backend::init();
  const Student student(ModelSpec{.arch = "resnet20", .num_classes = 10, .in_channels = 1},
                        AuxHeads::Byot);
  const nn::FlatLayout& layout = student.layout().parameters;
  Backend& cpu = backend::get(Device::cpu());
  const Tensor grad = random_slots(layout, 100);
  for (const bool nesterov : {false, true}) {
    Tensor param = random_slots(layout, 1);
    Tensor momentum = Tensor::zeros({layout.numel()}, DType::Float32);
    for (int step = 0; step < 3; ++step) {
      cpu.sgd_update(
          param, grad, momentum,
          SgdParams{
              .learning_rate = 0.1, .momentum = 0.9, .weight_decay = 5e-4, .nesterov = nesterov});
    }
    for (const Tensor* flat : {&param, &momentum}) {
      const std::vector<double> padding = padding_of(layout, *flat);
      EXPECT_EQ(padding, std::vector<double>(padding.size(), 0.0)) << "sgd nesterov " << nesterov;
    }
  }
  Tensor param = random_slots(layout, 2);
  Tensor exp_avg = Tensor::zeros({layout.numel()}, DType::Float32);
  Tensor exp_avg_sq = Tensor::zeros({layout.numel()}, DType::Float32);
  for (std::int64_t step = 1; step <= 3; ++step) {
    cpu.adam_update(param, grad, exp_avg, exp_avg_sq,
                    AdamParams{.learning_rate = 1e-3, .weight_decay = 1e-4, .step = step});
  }
  for (const Tensor* flat : {&param, &exp_avg, &exp_avg_sq}) {
    const std::vector<double> padding = padding_of(layout, *flat);
    EXPECT_EQ(padding, std::vector<double>(padding.size(), 0.0)) << "adam";
  }
  // A whole-buffer dot product is the sum over the slots.
  double by_slots = 0.0;
  for (int index = 0; index < static_cast<int>(layout.slots().size()); ++index) {
    const Tensor view = layout.view(grad, index);
    by_slots += cpu.dot(view, view);
  }
  EXPECT_NEAR(cpu.dot(grad, grad), by_slots, 1e-12 * by_slots);
}

}  // namespace
}  // namespace md::models
