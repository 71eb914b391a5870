// The pieces of train/ that are pure functions of their inputs, checked against hand values:
// learning-rate schedules, SGD over flat buffers against torch.optim.SGD (values printed by
// PyTorch 1.13 in float64, quoted below), and the mapping between a student's flat buffers and
// a checkpoint's named tensors (round trip; every mismatch an InputError naming file and tensor).
#include <gtest/gtest.h>
#include <unistd.h>

#include <cmath>
#include <filesystem>
#include <string>
#include <vector>

#include "backend/backend.h"
#include "core/error.h"
#include "core/rng.h"
#include "io/checkpoint.h"
#include "models/student.h"
#include "nn/layout.h"
#include "train/optimizer.h"
#include "train/schedule.h"
#include "train/weights.h"

namespace md::train {
namespace {

namespace fs = std::filesystem;

class ScheduleWeightsTest : public ::testing::Test {
 protected:
  void SetUp() override { backend::init(); }
};

// ---------------------------------------------------------------------------- schedules

TEST_F(ScheduleWeightsTest, MultistepChangesAtMilestoneEpochs) {
  const ScheduleSpec spec{.kind = ScheduleKind::Multistep,
                          .base_lr = 0.1,
                          .epochs = 6,
                          .milestones = {2, 4},
                          .gamma = 0.1,
                          .warmup_epochs = 0};
  EXPECT_DOUBLE_EQ(learning_rate(spec, 0, 0, 10), 0.1);
  EXPECT_DOUBLE_EQ(learning_rate(spec, 1, 9, 10), 0.1);
  EXPECT_NEAR(learning_rate(spec, 2, 0, 10), 0.01, 1e-15);
  EXPECT_NEAR(learning_rate(spec, 3, 5, 10), 0.01, 1e-15);
  EXPECT_NEAR(learning_rate(spec, 4, 0, 10), 0.001, 1e-15);
  EXPECT_NEAR(learning_rate(spec, 5, 9, 10), 0.001, 1e-15);
}

TEST_F(ScheduleWeightsTest, CosineAnnealsPerStepToZero) {
  // lr = 0.5·base·(1 + cos(π·t)), t = (epoch + batch/batches) / epochs: CosineAnnealingLR
  // stepped every batch with T_max = epochs·batches.
  const ScheduleSpec spec{.kind = ScheduleKind::Cosine,
                          .base_lr = 0.1,
                          .epochs = 4,
                          .milestones = {},
                          .gamma = 0.1,
                          .warmup_epochs = 0};
  EXPECT_DOUBLE_EQ(learning_rate(spec, 0, 0, 10), 0.1);
  EXPECT_NEAR(learning_rate(spec, 1, 0, 10), 0.0853553390593274, 1e-15);     // t = 1/4
  EXPECT_NEAR(learning_rate(spec, 2, 0, 10), 0.05, 1e-15);                   // t = 1/2
  EXPECT_NEAR(learning_rate(spec, 3, 5, 10), 0.0038060233744356634, 1e-15);  // t = 7/8
  EXPECT_NEAR(learning_rate(spec, 3, 9, 10), 0.5 * 0.1 * (1 + std::cos(M_PI * 3.9 / 4)), 1e-15);
}

TEST_F(ScheduleWeightsTest, WarmupIsLinearPerStepThenTheSchedule) {
  // One warm-up epoch of 10 batches: step k (1-based) has base·k/10.
  ScheduleSpec spec{.kind = ScheduleKind::Multistep,
                    .base_lr = 0.1,
                    .epochs = 5,
                    .milestones = {3},
                    .gamma = 0.1,
                    .warmup_epochs = 1};
  EXPECT_NEAR(learning_rate(spec, 0, 0, 10), 0.01, 1e-15);
  EXPECT_NEAR(learning_rate(spec, 0, 4, 10), 0.05, 1e-15);
  EXPECT_NEAR(learning_rate(spec, 0, 9, 10), 0.1, 1e-15);
  EXPECT_DOUBLE_EQ(learning_rate(spec, 1, 0, 10), 0.1);
  EXPECT_NEAR(learning_rate(spec, 3, 0, 10), 0.01, 1e-15);
  // Cosine after warm-up anneals over the remaining 4 epochs.
  spec.kind = ScheduleKind::Cosine;
  EXPECT_NEAR(learning_rate(spec, 0, 9, 10), 0.1, 1e-15);
  EXPECT_DOUBLE_EQ(learning_rate(spec, 1, 0, 10), 0.1);
  EXPECT_NEAR(learning_rate(spec, 3, 0, 10), 0.05, 1e-15);  // t = 2/4
  EXPECT_NEAR(learning_rate(spec, 5, 0, 10), 0.0, 1e-15);
}

// ---------------------------------------------------------------------------- SGD

struct SgdCase {
  bool nesterov;
  // After each of the three steps of SgdMatchesTorch: parameters and momentum buffer, as
  // torch.optim.SGD(lr, momentum=0.9, weight_decay=0.01, nesterov) computed them in float64.
  std::vector<std::vector<double>> parameters, momentum;
};

void expect_sgd_matches_torch(const SgdCase& expected) {
  const std::vector<std::vector<float>> gradients = {
      {0.5f, 0.25f, -1.0f}, {-0.75f, 1.0f, 2.0f}, {0.125f, -0.5f, 0.0f}};
  const std::vector<double> rates = {0.1, 0.05, 0.05};
  Tensor parameters = Tensor::from_vector<float>({3}, {1.0f, -2.0f, 0.5f});
  SgdOptimizer optimizer(parameters, SgdParams{.learning_rate = 0.1,
                                               .momentum = 0.9,
                                               .weight_decay = 0.01,
                                               .nesterov = expected.nesterov});
  for (std::size_t step = 0; step < gradients.size(); ++step) {
    optimizer.step(parameters, Tensor::from_vector<float>({3}, gradients[step]), rates[step]);
    const std::vector<float> got = parameters.to_vector<float>();
    const std::vector<float> buffer = optimizer.momentum_buffer().to_vector<float>();
    for (std::size_t i = 0; i < got.size(); ++i) {
      EXPECT_NEAR(got[i], expected.parameters[step][i], 2e-6)
          << "step " << step << " element " << i;
      EXPECT_NEAR(buffer[i], expected.momentum[step][i], 2e-6)
          << "step " << step << " element " << i;
    }
  }
}

TEST_F(ScheduleWeightsTest, SgdMatchesTorchWithMomentumAndWeightDecay) {
  expect_sgd_matches_torch(SgdCase{false,
                                   {{0.949, -2.023, 0.5995},
                                    {0.9630755, -2.0823385, 0.54397525},
                                    {0.96901191225, -2.10970198075, 0.493730987375}},
                                   {{0.51, 0.23, -0.995},
                                    {-0.28151, 1.18677, 1.110495},
                                    {-0.118728245, 0.547269615, 1.0048852525}}});
}

TEST_F(ScheduleWeightsTest, SgdMatchesTorchNesterov) {
  expect_sgd_matches_torch(SgdCase{true,
                                   {{0.9031, -2.0437, 0.68905},
                                    {0.952837055, -2.146073485, 0.5386929025},
                                    {0.95147660429775, -2.14459051668925, 0.493169828992625}},
                                   {{0.51, 0.23, -0.995},
                                    {-0.281969, 1.186563, 1.1113905},
                                    {-0.11924372945, 0.54644596515, 1.005638379025}}});
}

// ---------------------------------------------------------------------------- weights

struct StudentWithBuffers {
  std::unique_ptr<models::Student> student;
  nn::ModelBuffers buffers;
};

StudentWithBuffers make_student(const std::string& arch, int num_classes, models::AuxHeads heads,
                                std::uint64_t seed) {
  StudentWithBuffers made;
  made.student = std::make_unique<models::Student>(
      models::ModelSpec{.arch = arch, .num_classes = num_classes, .in_channels = 1}, heads);
  made.buffers = nn::ModelBuffers::allocate(made.student->layout(), DType::Float32, Device::cpu());
  Rng rng(seed);
  made.buffers.initialize(made.student->layout(), rng);
  // Non-trivial running statistics, so that their round trip is checked too (the padding
  // between slots stays zero, as in a trial).
  std::vector<float> stats = made.buffers.buffers.to_vector<float>();
  for (const nn::TensorSlot& slot : made.student->layout().buffers.slots()) {
    for (std::int64_t i = slot.offset; i < slot.offset + shape_numel(slot.shape); ++i) {
      stats[static_cast<std::size_t>(i)] += static_cast<float>(rng.uniform(0.1, 0.9));
    }
  }
  made.buffers.buffers.copy_from(Tensor::from_vector<float>(made.buffers.buffers.shape(), stats));
  return made;
}

std::string temp_file(const std::string& name) {
  const fs::path dir = fs::temp_directory_path() / ("md_test_train_" + std::to_string(::getpid()));
  fs::create_directories(dir);
  return (dir / name).string();
}

TEST_F(ScheduleWeightsTest, StudentRoundTripsThroughACheckpointFile) {
  const StudentWithBuffers source = make_student("resnet20", 10, models::AuxHeads::Byot, 1);
  io::CheckpointData data;
  put_student(data, *source.student, source.buffers);
  ASSERT_TRUE(data.groups.count("model"));
  ASSERT_TRUE(data.groups.count("aux"));
  EXPECT_NE(io::find_tensor(data.groups["model"], "conv1.weight"), nullptr);
  EXPECT_NE(io::find_tensor(data.groups["model"], "layer3.2.bn2.running_var"), nullptr);
  EXPECT_NE(io::find_tensor(data.groups["model"], "fc.bias"), nullptr);
  for (const auto& [name, tensor] : data.groups["model"])
    EXPECT_NE(name.rfind("aux.", 0), 0u) << name;
  for (const auto& [name, tensor] : data.groups["aux"])
    EXPECT_EQ(name.rfind("aux.", 0), 0u) << name;
  const std::string path = temp_file("student.h5");
  io::write_checkpoint(path, data);

  StudentWithBuffers target = make_student("resnet20", 10, models::AuxHeads::Byot, 2);
  ASSERT_NE(target.buffers.parameters.to_vector<float>(),
            source.buffers.parameters.to_vector<float>());
  load_student(io::read_checkpoint(path), path, *target.student, target.buffers,
               WeightGroups::BackboneAndAux);
  EXPECT_EQ(target.buffers.parameters.to_vector<float>(),
            source.buffers.parameters.to_vector<float>());
  EXPECT_EQ(target.buffers.buffers.to_vector<float>(), source.buffers.buffers.to_vector<float>());
  fs::remove_all(fs::path(path).parent_path());
}

TEST_F(ScheduleWeightsTest, BackboneOnlyLoadsTheBackboneAndKeepsTheHeads) {
  const StudentWithBuffers source = make_student("resnet20", 10, models::AuxHeads::None, 1);
  io::CheckpointData data;
  put_student(data, *source.student, source.buffers);
  EXPECT_FALSE(data.groups.count("aux"));  // a baseline student has no heads to store
  StudentWithBuffers target = make_student("resnet20", 10, models::AuxHeads::Byot, 2);
  const std::vector<float> before = target.buffers.parameters.to_vector<float>();
  load_student(data, "backbone.h5", *target.student, target.buffers, WeightGroups::BackboneOnly);
  const std::vector<float> after = target.buffers.parameters.to_vector<float>();
  const std::vector<float> expected = source.buffers.parameters.to_vector<float>();
  const auto backbone = static_cast<std::size_t>(target.student->backbone_parameter_count());
  ASSERT_EQ(expected.size(), backbone);
  EXPECT_TRUE(std::equal(after.begin(), after.begin() + static_cast<std::ptrdiff_t>(backbone),
                         expected.begin()));
  EXPECT_TRUE(std::equal(after.begin() + static_cast<std::ptrdiff_t>(backbone), after.end(),
                         before.begin() + static_cast<std::ptrdiff_t>(backbone)));
  // Asking for the heads of a file without them names the group.
  try {
    load_student(data, "backbone.h5", *target.student, target.buffers,
                 WeightGroups::BackboneAndAux);
    FAIL() << "expected an InputError";
  } catch (const InputError& error) {
    EXPECT_NE(std::string(error.what()).find("backbone.h5: no group /aux"), std::string::npos)
        << error.what();
  }
}

std::string load_error(const io::CheckpointData& data, const std::string& path,
                       StudentWithBuffers& target) {
  try {
    load_student(data, path, *target.student, target.buffers, WeightGroups::BackboneOnly);
  } catch (const InputError& error) {
    return error.what();
  }
  return "";
}

TEST_F(ScheduleWeightsTest, ShapeMismatchIsAnInputErrorNamingFileAndTensor) {
  const StudentWithBuffers source = make_student("resnet20", 10, models::AuxHeads::None, 1);
  io::CheckpointData data;
  put_student(data, *source.student, source.buffers);
  StudentWithBuffers hundred = make_student("resnet20", 100, models::AuxHeads::None, 2);
  const std::vector<float> before = hundred.buffers.parameters.to_vector<float>();
  const std::string message = load_error(data, "ten_classes.h5", hundred);
  EXPECT_NE(message.find("ten_classes.h5"), std::string::npos) << message;
  EXPECT_NE(message.find("/model/fc.weight"), std::string::npos) << message;
  EXPECT_NE(message.find("[10, 64]"), std::string::npos) << message;
  EXPECT_NE(message.find("[100, 64]"), std::string::npos) << message;
  EXPECT_EQ(hundred.buffers.parameters.to_vector<float>(), before)
      << "a failed load changed the model";

  StudentWithBuffers other_arch = make_student("resnet32", 10, models::AuxHeads::None, 2);
  const std::string missing = load_error(data, "resnet20.h5", other_arch);
  EXPECT_NE(missing.find("resnet20.h5: /model/layer1.3.conv1.weight is missing"), std::string::npos)
      << missing;
}

TEST_F(ScheduleWeightsTest, FlatStateChecksItsSize) {
  io::CheckpointData data;
  data.groups["optim"].emplace_back("momentum", Tensor::zeros({5}));
  Tensor target = Tensor::zeros({6});
  try {
    load_flat(data, "state.h5", "optim", "momentum", target);
    FAIL() << "expected an InputError";
  } catch (const InputError& error) {
    EXPECT_NE(
        std::string(error.what()).find("state.h5: /optim/momentum has 5 elements, expected 6"),
        std::string::npos)
        << error.what();
  }
  EXPECT_THROW(load_flat(data, "state.h5", "optim", "velocity", target), InputError);
  EXPECT_THROW(load_flat(data, "state.h5", "gen_optim", "momentum", target), InputError);
}

// Optimizer state is stored packed (the slots back to back, no padding between them), as
// before slots were aligned: a checkpoint written by either layout loads into the other.
TEST_F(ScheduleWeightsTest, PackedStateHoldsTheSlotsBackToBackAndLoadsIntoPaddedBuffers) {
  const StudentWithBuffers source = make_student("resnet20", 10, models::AuxHeads::Byot, 3);
  const nn::FlatLayout& layout = source.student->layout().parameters;
  ASSERT_GT(layout.numel(), layout.slot_numel());  // there is padding to leave out
  io::CheckpointData data;
  put_packed(data, "optim", "momentum", layout, source.buffers.parameters);
  const Tensor* stored = io::find_tensor(data.groups["optim"], "momentum");
  ASSERT_NE(stored, nullptr);
  EXPECT_EQ(stored->shape(), (Shape{layout.slot_numel()}));
  // The unaligned format: every slot's values in slot order.
  std::vector<float> expected;
  for (int index = 0; index < static_cast<int>(layout.slots().size()); ++index) {
    const std::vector<float> values =
        layout.view(source.buffers.parameters, index).to_vector<float>();
    expected.insert(expected.end(), values.begin(), values.end());
  }
  EXPECT_EQ(stored->to_vector<float>(), expected);

  const std::string path = temp_file("packed.h5");
  io::write_checkpoint(path, data);
  StudentWithBuffers target = make_student("resnet20", 10, models::AuxHeads::Byot, 4);
  Tensor loaded = Tensor::full({layout.numel()}, 7.0);  // padding overwritten with zeros
  load_packed(io::read_checkpoint(path), path, "optim", "momentum", layout, loaded);
  EXPECT_EQ(loaded.to_vector<float>(), source.buffers.parameters.to_vector<float>());

  // A stored tensor of another size names the file, the tensor and both sizes.
  data.groups["optim"].clear();
  data.groups["optim"].emplace_back("momentum", Tensor::zeros({layout.numel()}));
  try {
    load_packed(data, "old.h5", "optim", "momentum", layout, loaded);
    FAIL() << "expected an InputError";
  } catch (const InputError& error) {
    const std::string message = error.what();
    EXPECT_NE(message.find("old.h5: /optim/momentum has " + std::to_string(layout.numel()) +
                           " elements, expected " + std::to_string(layout.slot_numel())),
              std::string::npos)
        << message;
  }
  fs::remove_all(fs::path(path).parent_path());
}

}  // namespace
}  // namespace md::train
