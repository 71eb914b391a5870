// The model zoo against torchvision (fixtures of tests/reference/make_fixtures.py):
// - parameter and buffer names, order and shapes equal PyTorch's state_dict, for every arch;
// - BasicBlock / Bottleneck: train-mode output, gradients of the input and every parameter, and
//   the updated running statistics, within 1e-5 (‖ours − ref‖ / ‖ref‖: a parameter's gradient is
//   a sum over the batch with cancellation, where per-element relative errors mean little);
// - logits in eval and train mode (batch statistics) within 1e-4 (‖ours − ref‖ / ‖ref‖), with
//   every state_dict entry set from the formula both sides compute (formula_value below);
// - stage_channels / stage_strides agree with the stage features' shapes;
// - a forward cut after k stages (ForwardScope) gives the full forward's first k stage features
//   bit for bit, and the student's auxiliary-heads-only forward its shallow heads, per family;
// - initialization kinds follow torchvision; bad names are input errors.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <fstream>
#include <map>
#include <sstream>
#include <string>
#include <vector>

#include "autograd/functions.h"
#include "backend/backend.h"
#include "core/error.h"
#include "models/blocks.h"
#include "models/model.h"
#include "models/student.h"
#include "support/fixture.h"
#include "support/gradcheck.h"

namespace md {
namespace {

using autograd::Variable;
using models::make_network;
using models::ModelSpec;
using models::Network;
using test::Fixture;

constexpr int kNumClasses = 10;  // the fixtures' num_classes

// ---- the names files: "<name> <param|buffer> <extent>..." in state_dict order

struct StateEntry {
  std::string name;
  bool is_parameter = true;
  Shape shape;
};

std::vector<StateEntry> read_names(const std::string& arch) {
  const std::string path = std::string(MD_SOURCE_DIR) + "/tests/fixtures/" + arch + ".names.txt";
  std::ifstream in(path);
  if (!in) throw Error("cannot open " + path + " (run tests/reference/make_fixtures.py)");
  std::vector<StateEntry> entries;
  std::string line;
  while (std::getline(in, line)) {
    std::istringstream fields(line);
    StateEntry entry;
    std::string kind;
    fields >> entry.name >> kind;
    if (kind != "param" && kind != "buffer") throw Error(path + ": bad line '" + line + "'");
    entry.is_parameter = kind == "param";
    std::int64_t extent = 0;
    while (fields >> extent) entry.shape.push_back(extent);
    entries.push_back(entry);
  }
  return entries;
}

std::vector<std::string> describe(const nn::FlatLayout& layout) {
  std::vector<std::string> lines;
  for (const nn::TensorSlot& slot : layout.slots()) {
    lines.push_back(slot.name + " " + shape_str(slot.shape));
  }
  return lines;
}

std::vector<std::string> describe(const std::vector<StateEntry>& entries, bool parameters) {
  std::vector<std::string> lines;
  for (const StateEntry& entry : entries) {
    if (entry.is_parameter == parameters)
      lines.push_back(entry.name + " " + shape_str(entry.shape));
  }
  return lines;
}

// ---- the parameter formula (twin of formula_values() in make_fixtures.py)

// splitmix64 of (index << 32 | element), top 53 bits as a fraction, mapped to [-1, 1).
double hash_uniform(std::uint64_t index, std::uint64_t element) {
  std::uint64_t z = (index << 32) | element;
  z += 0x9E3779B97F4A7C15ULL;
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
  z ^= z >> 31;
  return static_cast<double>(z >> 11) * 0x1p-53 * 2.0 - 1.0;
}

bool ends_with(const std::string& text, const std::string& suffix) {
  return text.size() >= suffix.size() &&
         text.compare(text.size() - suffix.size(), suffix.size(), suffix) == 0;
}

double formula_value(const StateEntry& entry, std::uint64_t index, std::uint64_t element) {
  if (ends_with(entry.name, "num_batches_tracked")) return 0.0;
  const double x = hash_uniform(index, element);
  if (ends_with(entry.name, "running_mean")) return 0.1 * x;
  if (ends_with(entry.name, "running_var")) return 1.0 + 0.5 * std::fabs(x);
  if (ends_with(entry.name, "weight") && entry.shape.size() == 1) return 1.0 + 0.1 * x;
  if (ends_with(entry.name, "bias")) return 0.5 + 0.1 * x;
  std::int64_t fan_in = 1;
  for (std::size_t d = 1; d < entry.shape.size(); ++d) fan_in *= entry.shape[d];
  return x * std::sqrt(6.0 / static_cast<double>(fan_in));
}

// Sets every slot of `buffers` from the formula, matching state_dict entries by name.
void fill_from_formula(const nn::ModelLayout& layout, const std::vector<StateEntry>& entries,
                       nn::ModelBuffers& buffers) {
  for (std::size_t index = 0; index < entries.size(); ++index) {
    const StateEntry& entry = entries[index];
    const nn::FlatLayout& flat = entry.is_parameter ? layout.parameters : layout.buffers;
    const int slot = flat.find(entry.name);
    ASSERT_GE(slot, 0) << "no slot named " << entry.name;
    Tensor view = flat.view(entry.is_parameter ? buffers.parameters : buffers.buffers, slot);
    ASSERT_EQ(view.shape(), entry.shape) << entry.name;
    float* values = view.data<float>();
    for (std::int64_t j = 0; j < view.numel(); ++j) {
      values[j] = static_cast<float>(
          formula_value(entry, static_cast<std::uint64_t>(index), static_cast<std::uint64_t>(j)));
    }
  }
}

nn::ForwardContext make_context(const nn::ModelLayout& layout, const nn::ModelBuffers& buffers,
                                nn::Mode mode, bool with_gradients) {
  nn::ForwardContext context;
  context.layout = &layout;
  context.parameters = buffers.parameters;
  if (with_gradients) context.gradients = buffers.gradients;
  context.buffers = buffers.buffers;
  context.mode = mode;
  context.stats_update = RunningStatsUpdate::Update;
  return context;
}

// ‖actual − expected‖ / ‖expected‖ <= tolerance (NaN fails).
void expect_close(const Tensor& actual, const Tensor& expected, const std::string& what,
                  double tolerance) {
  ASSERT_EQ(actual.shape(), expected.shape()) << what;
  const double error = test::relative_norm_error(actual, expected);
  EXPECT_LE(error, tolerance) << what << ": relative error " << error;
}

void check_stage_shapes(const Network& network, const models::NetworkOutput& output,
                        const Shape& input_shape) {
  const std::vector<int> channels = network.stage_channels();
  const std::vector<int> strides = network.stage_strides();
  ASSERT_EQ(output.stage_features.size(), channels.size()) << network.arch();
  ASSERT_EQ(output.stage_features.size(), strides.size()) << network.arch();
  for (std::size_t s = 0; s < channels.size(); ++s) {
    ASSERT_EQ(input_shape[2] % strides[s], 0) << network.arch() << " stage " << s;
    const Shape expected = {input_shape[0], channels[s], input_shape[2] / strides[s],
                            input_shape[3] / strides[s]};
    EXPECT_EQ(output.stage_features[s].shape(), expected) << network.arch() << " stage " << s;
  }
  ASSERT_TRUE(output.logits.defined());
  EXPECT_EQ(output.logits.shape(), (Shape{input_shape[0], kNumClasses})) << network.arch();
}

std::string param_name(const testing::TestParamInfo<std::string>& info) {
  return info.param;
}

// ---- names, order and shapes

class ModelNames : public testing::TestWithParam<std::string> {};

TEST_P(ModelNames, EqualTorchvisionStateDict) {
  const std::string arch = GetParam();
  const auto network = make_network(ModelSpec{.arch = arch, .num_classes = kNumClasses});
  EXPECT_EQ(network->arch(), arch);
  const std::vector<StateEntry> entries = read_names(arch);
  ASSERT_FALSE(entries.empty());
  EXPECT_EQ(describe(network->layout().parameters), describe(entries, true)) << arch;
  EXPECT_EQ(describe(network->layout().buffers), describe(entries, false)) << arch;
}

INSTANTIATE_TEST_SUITE_P(PyTorch, ModelNames, testing::ValuesIn(models::known_architectures()),
                         param_name);

// ---- logits against PyTorch

class ModelLogits : public testing::TestWithParam<std::string> {};

TEST_P(ModelLogits, EvalAndTrainMatchPyTorch) {
  const std::string arch = GetParam();
  const Fixture fixture = Fixture::load("models");
  const auto network = make_network(ModelSpec{.arch = arch, .num_classes = kNumClasses});
  const nn::ModelLayout& layout = network->layout();
  nn::ModelBuffers buffers = nn::ModelBuffers::allocate(layout, DType::Float32, Device::cpu());
  fill_from_formula(layout, read_names(arch), buffers);
  const Tensor& x = fixture.get(arch + "/x");
  autograd::NoGrad no_grad;
  for (const auto& [mode, key] : {std::pair{nn::Mode::Eval, std::string("logits_eval")},
                                  std::pair{nn::Mode::Train, std::string("logits_train")}}) {
    const models::NetworkOutput output =
        network->forward(make_context(layout, buffers, mode, false), Variable(x));
    check_stage_shapes(*network, output, x.shape());
    const Tensor& expected = fixture.get(arch + "/" + key);
    ASSERT_EQ(output.logits.shape(), expected.shape());
    expect_close(output.logits.value(), expected, arch + " " + key, 1e-4);
  }
}

INSTANTIATE_TEST_SUITE_P(PyTorch, ModelLogits,
                         testing::Values("resnet18_cifar", "resnet50", "resnet20", "wrn_16_4",
                                         "vgg11_bn", "mobilenetv2", "mobilenetv2_cifar"),
                         param_name);

TEST(ModelLogits, EveryFixtureModelIsTested) {
  const Fixture fixture = Fixture::load("models");
  std::set<std::string> archs;
  for (const auto& [key, value] : fixture.all()) archs.insert(key.substr(0, key.find('/')));
  EXPECT_EQ(archs, (std::set<std::string>{"resnet18_cifar", "resnet50", "resnet20", "wrn_16_4",
                                          "vgg11_bn", "mobilenetv2", "mobilenetv2_cifar"}));
}

// ---- blocks against torchvision's BasicBlock / Bottleneck

struct BlockCase {
  std::string name;
  bool bottleneck;
  models::ResidualBlockSpec spec;
};

const std::vector<BlockCase> kBlockCases = {
    {"basic_identity", false, {.in_channels = 8, .planes = 8, .stride = 1}},
    {"basic_downsample", false, {.in_channels = 8, .planes = 16, .stride = 2}},
    {"bottleneck_identity", true, {.in_channels = 16, .planes = 4, .stride = 1}},
    {"bottleneck_downsample", true, {.in_channels = 8, .planes = 4, .stride = 2}},
};

class BlockReference : public testing::TestWithParam<BlockCase> {};

TEST_P(BlockReference, TrainForwardGradientsAndRunningStats) {
  const BlockCase& block_case = GetParam();
  const Fixture fixture = Fixture::load("blocks");
  const std::string prefix = "block_" + block_case.name + "/";
  nn::ModelLayout layout;
  std::unique_ptr<nn::Module> block;
  if (block_case.bottleneck) {
    block = std::make_unique<models::Bottleneck>(layout, "", block_case.spec);
  } else {
    block = std::make_unique<models::BasicBlock>(layout, "", block_case.spec);
  }
  nn::ModelBuffers buffers = nn::ModelBuffers::allocate(layout, DType::Float32, Device::cpu());

  // Every fixture parameter / running statistic has a slot of the same shape, and vice versa.
  std::set<std::string> fixture_names, our_names;
  for (const auto& [key, value] : fixture.all()) {
    if (key.rfind(prefix + "param/", 0) == 0) fixture_names.insert(key.substr(prefix.size() + 6));
  }
  for (const nn::TensorSlot& slot : layout.parameters.slots()) our_names.insert(slot.name);
  for (const nn::TensorSlot& slot : layout.buffers.slots()) {
    if (!ends_with(slot.name, "num_batches_tracked")) our_names.insert(slot.name);
  }
  ASSERT_EQ(our_names, fixture_names);
  for (const std::string& name : fixture_names) {
    const bool is_parameter = layout.parameters.find(name) >= 0;
    const nn::FlatLayout& flat = is_parameter ? layout.parameters : layout.buffers;
    Tensor view = flat.view(is_parameter ? buffers.parameters : buffers.buffers, flat.find(name));
    ASSERT_EQ(view.shape(), fixture.get(prefix + "param/" + name).shape()) << name;
    view.copy_from(fixture.get(prefix + "param/" + name));
  }

  autograd::Tape tape;
  autograd::TapeScope scope(tape);
  Variable x(fixture.get(prefix + "x").clone(), true);
  Variable out = block->forward(make_context(layout, buffers, nn::Mode::Train, true), x);
  expect_close(out.value(), fixture.get(prefix + "out"), prefix + "out", 1e-5);
  tape.backward(out, fixture.get(prefix + "r"));
  expect_close(x.grad(), fixture.get(prefix + "grad_x"), prefix + "grad_x", 1e-5);
  for (int index = 0; index < static_cast<int>(layout.parameters.slots().size()); ++index) {
    const std::string& name = layout.parameters.slot(index).name;
    expect_close(layout.parameters.view(buffers.gradients, index),
                 fixture.get(prefix + "grad/" + name), prefix + "grad/" + name, 1e-5);
  }
  for (int index = 0; index < static_cast<int>(layout.buffers.slots().size()); ++index) {
    const std::string& name = layout.buffers.slot(index).name;
    if (ends_with(name, "num_batches_tracked")) {
      EXPECT_EQ(layout.buffers.view(buffers.buffers, index).item(), 1.0) << name;
      continue;
    }
    expect_close(layout.buffers.view(buffers.buffers, index),
                 fixture.get(prefix + "updated/" + name), prefix + "updated/" + name, 1e-5);
  }
}

std::string block_case_name(const testing::TestParamInfo<BlockCase>& info) {
  return info.param.name;
}

INSTANTIATE_TEST_SUITE_P(Torchvision, BlockReference, testing::ValuesIn(kBlockCases),
                         block_case_name);

// ---- stages of every architecture

class ModelStages : public testing::TestWithParam<std::string> {};

TEST_P(ModelStages, ChannelsAndStridesMatchFeatures) {
  const auto network = make_network(ModelSpec{.arch = GetParam(), .num_classes = kNumClasses});
  const std::vector<int> strides = network->stage_strides();
  ASSERT_FALSE(strides.empty());
  EXPECT_TRUE(std::is_sorted(strides.begin(), strides.end()));
  // Twice the largest stride, so that a wrong stride cannot hide behind a 1x1 map.
  const std::int64_t size = 2 * std::max(4, strides.back());
  nn::ModelBuffers buffers =
      nn::ModelBuffers::allocate(network->layout(), DType::Float32, Device::cpu());
  // Constant values (random initialization of the largest models costs seconds): only shapes
  // and finiteness are checked here.
  Backend& backend = backend::get(Device::cpu());
  backend.fill(buffers.parameters, 0.01);
  backend.fill(buffers.buffers, 1.0);
  const Shape input_shape = {1, 3, size, size};
  autograd::NoGrad no_grad;
  const models::NetworkOutput output =
      network->forward(make_context(network->layout(), buffers, nn::Mode::Eval, false),
                       Variable(test::random_tensor(input_shape, 3, -1.0, 1.0, DType::Float32)));
  check_stage_shapes(*network, output, input_shape);
  EXPECT_EQ(backend.count_nonfinite(output.logits.value()), 0);
}

INSTANTIATE_TEST_SUITE_P(AllArchitectures, ModelStages,
                         testing::ValuesIn(models::known_architectures()), param_name);

TEST(ModelStages, FamilySplits) {
  auto stages = [](const std::string& arch) {
    const auto network = make_network(ModelSpec{.arch = arch});
    return std::pair{network->stage_channels(), network->stage_strides()};
  };
  using Split = std::pair<std::vector<int>, std::vector<int>>;
  EXPECT_EQ(stages("resnet18"), (Split{{64, 128, 256, 512}, {4, 8, 16, 32}}));
  EXPECT_EQ(stages("resnet50_cifar"), (Split{{256, 512, 1024, 2048}, {1, 2, 4, 8}}));
  EXPECT_EQ(stages("resnet56"), (Split{{16, 32, 64}, {1, 2, 4}}));
  EXPECT_EQ(stages("wrn_28_10"), (Split{{160, 320, 640}, {1, 2, 4}}));
  EXPECT_EQ(stages("vgg16_bn"), (Split{{64, 128, 256, 512, 512}, {2, 4, 8, 16, 32}}));
  EXPECT_EQ(stages("mobilenetv2"), (Split{{24, 32, 96, 1280}, {4, 8, 16, 32}}));
  EXPECT_EQ(stages("mobilenetv2_cifar"), (Split{{24, 32, 96, 1280}, {2, 4, 8, 16}}));
}

// ---- forwards cut after a stage (the meta-gradient's θ± forwards)

class ForwardScopes : public testing::TestWithParam<std::string> {};

void expect_same_values(const Variable& actual, const Variable& expected, const std::string& what) {
  ASSERT_TRUE(actual.defined()) << what;
  ASSERT_EQ(actual.shape(), expected.shape()) << what;
  EXPECT_EQ(actual.value().to_vector<float>(), expected.value().to_vector<float>()) << what;
}

// Training mode (batch statistics), where a stage's output depends on everything before it:
// the cut forward must repeat the full one's computation exactly, not approximately.
TEST_P(ForwardScopes, CutForwardsRepeatTheFullForwardsStagesAndShallowHeads) {
  const std::string arch = GetParam();
  const models::Student student(ModelSpec{.arch = arch, .num_classes = kNumClasses},
                                models::AuxHeads::Byot);
  const Network& network = student.network();
  const int stages = network.num_stages();
  nn::ModelBuffers buffers =
      nn::ModelBuffers::allocate(student.layout(), DType::Float32, Device::cpu());
  Rng rng(17);
  buffers.initialize(student.layout(), rng);
  const std::int64_t size = 2 * network.stage_strides().back();
  const Variable x(test::random_tensor({2, 3, size, size}, 19, -1.0, 1.0, DType::Float32));
  autograd::NoGrad no_grad;
  nn::ForwardContext context = make_context(student.layout(), buffers, nn::Mode::Train, false);
  context.stats_update = RunningStatsUpdate::Skip;

  const models::StudentOutput full = student.forward(context, x);
  const models::StudentOutput shallow =
      student.forward(context, x, models::StudentHeads::Auxiliary);
  ASSERT_EQ(static_cast<int>(full.logits.size()), stages);
  ASSERT_EQ(static_cast<int>(shallow.logits.size()), stages - 1);
  ASSERT_EQ(static_cast<int>(shallow.head_features.size()), stages - 1);
  ASSERT_EQ(static_cast<int>(shallow.stage_features.size()), stages - 1);
  for (std::size_t s = 0; s + 1 < static_cast<std::size_t>(stages); ++s) {
    const std::string at = arch + " head " + std::to_string(s);
    expect_same_values(shallow.stage_features[s], full.stage_features[s], at + " stage features");
    expect_same_values(shallow.head_features[s], full.head_features[s], at + " head features");
    expect_same_values(shallow.logits[s], full.logits[s], at + " logits");
  }

  // The network alone, on the student's backbone prefix: every cut, and the full scope.
  nn::ForwardContext backbone = context;
  backbone.layout = &network.layout();
  backbone.parameters = buffers.parameters.slice_flat(0, {student.backbone_parameter_count()});
  backbone.buffers = buffers.buffers.slice_flat(0, {student.backbone_buffer_count()});
  const models::NetworkOutput whole = network.forward(backbone, x);
  expect_same_values(whole.logits, full.logits.back(), arch + " final logits");
  for (int cut = 1; cut <= stages; ++cut) {
    const models::NetworkOutput part =
        network.forward(backbone, x, models::ForwardScope{.stages = cut});
    ASSERT_EQ(static_cast<int>(part.stage_features.size()), cut) << arch << " cut " << cut;
    for (std::size_t s = 0; s < static_cast<std::size_t>(cut); ++s) {
      expect_same_values(part.stage_features[s], whole.stage_features[s],
                         arch + " cut " + std::to_string(cut) + " stage " + std::to_string(s));
    }
    if (cut < stages) {
      EXPECT_FALSE(part.logits.defined()) << arch << " cut " << cut;
    } else {
      expect_same_values(part.logits, whole.logits, arch + " full-scope logits");
    }
  }
  EXPECT_THROW(network.forward(backbone, x, models::ForwardScope{.stages = 0}), Error);
  EXPECT_THROW(network.forward(backbone, x, models::ForwardScope{.stages = stages + 1}), Error);
}

// One architecture of each family and stem: ResNet (CIFAR-style, ImageNet stem, bottleneck), WRN,
// VGG, MobileNetV2 (both strides).
INSTANTIATE_TEST_SUITE_P(Zoo, ForwardScopes,
                         testing::Values("resnet20", "resnet18", "resnet50_cifar", "wrn_16_2",
                                         "vgg11_bn", "mobilenetv2_cifar", "mobilenetv2"),
                         param_name);

TEST(ForwardScopes, BaselineStudentHasNoAuxiliaryForward) {
  const models::Student student(ModelSpec{.arch = "resnet20", .num_classes = kNumClasses},
                                models::AuxHeads::None);
  nn::ModelBuffers buffers =
      nn::ModelBuffers::allocate(student.layout(), DType::Float32, Device::cpu());
  Rng rng(23);
  buffers.initialize(student.layout(), rng);
  autograd::NoGrad no_grad;
  const nn::ForwardContext context = make_context(student.layout(), buffers, nn::Mode::Eval, false);
  const Variable x(test::random_tensor({1, 3, 8, 8}, 29, -1.0, 1.0, DType::Float32));
  EXPECT_EQ(student.forward(context, x).logits.size(), 1u);
  EXPECT_THROW(student.forward(context, x, models::StudentHeads::Auxiliary), Error);
}

// ---- the auxiliary branch's bottleneck width (method.aux.width)

struct AuxWidthCase {
  const char* arch;
  models::AuxWidth width;
  std::vector<std::int64_t> bottlenecks;  // expected per auxiliary head
};

// Parameter shapes of every auxiliary head for each width rule: input_quarter = max(8, C_s/4)
// (the default, unchanged), last_stage_quarter = C_last/4 (the public BYOT branch: 128 on
// resnet18), a fixed N; the stage's input width, the k x k downsampling and the output width
// (the last stage's) do not change. The backbone is the same whatever the width, and the
// student runs forward and backward.
TEST(AuxWidth, ParameterShapesPerRule) {
  using models::AuxWidthRule;
  const std::vector<AuxWidthCase> cases = {
      {"resnet18_cifar", {}, {16, 32, 64}},
      {"resnet18_cifar", {.rule = AuxWidthRule::InputQuarter}, {16, 32, 64}},
      {"resnet18_cifar", {.rule = AuxWidthRule::LastStageQuarter}, {128, 128, 128}},
      {"resnet18_cifar", {.rule = AuxWidthRule::Fixed, .channels = 48}, {48, 48, 48}},
      {"resnet20", {}, {8, 8}},
      {"resnet20", {.rule = AuxWidthRule::LastStageQuarter}, {16, 16}},
      {"resnet20", {.rule = AuxWidthRule::Fixed, .channels = 5}, {5, 5}},
  };
  for (const AuxWidthCase& c : cases) {
    const std::string what = std::string(c.arch) + " rule " +
                             std::to_string(static_cast<int>(c.width.rule)) + " N " +
                             std::to_string(c.width.channels);
    const models::Student student(
        ModelSpec{.arch = c.arch, .num_classes = kNumClasses, .aux_width = c.width},
        models::AuxHeads::Byot);
    const models::Student reference(ModelSpec{.arch = c.arch, .num_classes = kNumClasses},
                                    models::AuxHeads::Byot);
    EXPECT_EQ(student.backbone_parameter_count(), reference.backbone_parameter_count()) << what;
    const std::vector<int> channels = student.network().stage_channels();
    const std::vector<int> strides = student.network().stage_strides();
    const std::int64_t last = channels.back();
    ASSERT_EQ(student.num_aux_heads(), static_cast<int>(c.bottlenecks.size())) << what;
    const nn::FlatLayout& parameters = student.layout().parameters;
    auto shape = [&](const std::string& name) {
      const int index = parameters.find(name);
      EXPECT_GE(index, 0) << what << ": no " << name;
      return index < 0 ? Shape{} : parameters.slot(index).shape;
    };
    for (std::size_t s = 0; s < c.bottlenecks.size(); ++s) {
      const std::string head = "aux." + std::to_string(s) + ".";
      const std::int64_t mid = c.bottlenecks[s];
      const std::int64_t k = strides.back() / strides[s];
      EXPECT_EQ(shape(head + "conv1.weight"), (Shape{mid, channels[s], 1, 1})) << what << " " << s;
      EXPECT_EQ(shape(head + "bn1.weight"), (Shape{mid})) << what << " " << s;
      EXPECT_EQ(shape(head + "conv2.weight"),
                (k > 1 ? Shape{mid, mid, k, k} : Shape{mid, mid, 3, 3}))
          << what << " " << s;
      EXPECT_EQ(shape(head + "bn2.weight"), (Shape{mid})) << what << " " << s;
      EXPECT_EQ(shape(head + "conv3.weight"), (Shape{last, mid, 1, 1})) << what << " " << s;
      EXPECT_EQ(shape(head + "bn3.weight"), (Shape{last})) << what << " " << s;
      EXPECT_EQ(shape(head + "fc.weight"), (Shape{kNumClasses, last})) << what << " " << s;
    }
  }
}

TEST(AuxWidth, LastStageQuarterStudentRunsForwardAndBackward) {
  const models::Student student(
      ModelSpec{.arch = "resnet20",
                .num_classes = kNumClasses,
                .aux_width = {.rule = models::AuxWidthRule::LastStageQuarter}},
      models::AuxHeads::Byot);
  nn::ModelBuffers buffers =
      nn::ModelBuffers::allocate(student.layout(), DType::Float32, Device::cpu());
  Rng rng(31);
  buffers.initialize(student.layout(), rng);
  autograd::Tape tape;
  autograd::TapeScope scope(tape);
  const models::StudentOutput output =
      student.forward(make_context(student.layout(), buffers, nn::Mode::Train, true),
                      Variable(test::random_tensor({2, 3, 8, 8}, 37, -1.0, 1.0, DType::Float32)));
  ASSERT_EQ(output.logits.size(), 3u);
  const Tensor labels = Tensor::from_vector<std::int32_t>({2}, {1, 7});
  std::vector<Variable> losses;
  for (const Variable& logits : output.logits) {
    EXPECT_EQ(logits.shape(), (Shape{2, kNumClasses}));
    losses.push_back(autograd::cross_entropy(logits, labels));
  }
  tape.backward(autograd::weighted_sum(losses, {1.0, 1.0, 1.0}));
  EXPECT_EQ(backend::get(Device::cpu()).count_nonfinite(buffers.gradients), 0);
  const int conv1 = student.layout().parameters.find("aux.0.conv1.weight");
  ASSERT_GE(conv1, 0);
  const Tensor gradient = student.layout().parameters.view(buffers.gradients, conv1);
  EXPECT_GT(backend::get(Device::cpu()).dot(gradient, gradient), 0.0);
}

// ---- gradients reach every parameter (depthwise, shortcuts, heads)

class ModelGradients : public testing::TestWithParam<std::string> {};

TEST_P(ModelGradients, EveryParameterReceivesAFiniteNonzeroGradient) {
  const auto network = make_network(ModelSpec{.arch = GetParam(), .num_classes = kNumClasses});
  const nn::ModelLayout& layout = network->layout();
  nn::ModelBuffers buffers = nn::ModelBuffers::allocate(layout, DType::Float32, Device::cpu());
  Rng rng(11);
  buffers.initialize(layout, rng);
  const std::int64_t size = 2 * network->stage_strides().back();
  autograd::Tape tape;
  autograd::TapeScope scope(tape);
  const models::NetworkOutput output = network->forward(
      make_context(layout, buffers, nn::Mode::Train, true),
      Variable(test::random_tensor({2, 3, size, size}, 5, -1.0, 1.0, DType::Float32)));
  const Tensor labels = Tensor::from_vector<std::int32_t>({2}, {1, 7});
  tape.backward(autograd::cross_entropy(output.logits, labels));
  Backend& backend = backend::get(Device::cpu());
  EXPECT_EQ(backend.count_nonfinite(buffers.gradients), 0);
  for (int index = 0; index < static_cast<int>(layout.parameters.slots().size()); ++index) {
    const Tensor gradient = layout.parameters.view(buffers.gradients, index);
    EXPECT_GT(backend.dot(gradient, gradient), 0.0) << layout.parameters.slot(index).name;
  }
}

INSTANTIATE_TEST_SUITE_P(Zoo, ModelGradients,
                         testing::Values("resnet20", "resnet18_cifar", "wrn_16_2", "vgg11_bn",
                                         "mobilenetv2_cifar"),
                         param_name);

// ---- initialization follows torchvision

TEST(ModelInit, SlotsUseTorchvisionInitialization) {
  auto init_of = [](const Network& network, const std::string& name) {
    const int index = network.layout().parameters.find(name);
    EXPECT_GE(index, 0) << name;
    return network.layout().parameters.slot(index).init;
  };
  auto expect_init = [&](const Network& network, const std::string& name, nn::InitKind kind,
                         double fan) {
    const nn::InitSpec init = init_of(network, name);
    EXPECT_EQ(init.kind, kind) << network.arch() << " " << name;
    if (kind != nn::InitKind::Zeros && kind != nn::InitKind::Ones &&
        kind != nn::InitKind::Normal001) {
      EXPECT_EQ(init.fan, fan) << network.arch() << " " << name;
    }
  };
  using nn::InitKind;
  const auto resnet = make_network(ModelSpec{.arch = "resnet20", .num_classes = 100});
  expect_init(*resnet, "conv1.weight", InitKind::KaimingNormalFanOut, 16 * 9);
  expect_init(*resnet, "layer2.0.downsample.0.weight", InitKind::KaimingNormalFanOut, 32);
  expect_init(*resnet, "bn1.weight", InitKind::Ones, 0);
  expect_init(*resnet, "bn1.bias", InitKind::Zeros, 0);
  expect_init(*resnet, "fc.weight", InitKind::UniformFanIn, 64);
  expect_init(*resnet, "fc.bias", InitKind::UniformFanIn, 64);
  const auto vgg = make_network(ModelSpec{.arch = "vgg11_bn", .num_classes = 100});
  expect_init(*vgg, "features.0.weight", InitKind::KaimingNormalFanOut, 64 * 9);
  expect_init(*vgg, "features.0.bias", InitKind::Zeros, 0);
  expect_init(*vgg, "classifier.weight", InitKind::Normal001, 0);
  expect_init(*vgg, "classifier.bias", InitKind::Zeros, 0);
  const auto mobilenet = make_network(ModelSpec{.arch = "mobilenetv2", .num_classes = 100});
  // Depthwise: PyTorch's fan_out is out_channels * k * k, not divided by groups.
  expect_init(*mobilenet, "features.1.conv.0.0.weight", InitKind::KaimingNormalFanOut, 32 * 9);
  expect_init(*mobilenet, "classifier.1.weight", InitKind::Normal001, 0);
  expect_init(*mobilenet, "classifier.1.bias", InitKind::Zeros, 0);
}

// ---- specs and errors

TEST(MakeNetwork, UnknownArchitectureIsAnInputErrorListingKnownOnes) {
  try {
    make_network(ModelSpec{.arch = "resnet19"});
    FAIL() << "no exception";
  } catch (const InputError& error) {
    const std::string message = error.what();
    EXPECT_NE(message.find("unknown architecture 'resnet19'; known: "), std::string::npos)
        << message;
    for (const std::string& name : models::known_architectures()) {
      EXPECT_NE(message.find(name), std::string::npos) << name << " missing from: " << message;
    }
  }
}

TEST(MakeNetwork, MalformedNamesAndSpecsAreInputErrors) {
  EXPECT_THROW(make_network(ModelSpec{.arch = "wrn_15_4"}), InputError);
  EXPECT_THROW(make_network(ModelSpec{.arch = "wrn_16"}), InputError);
  EXPECT_THROW(make_network(ModelSpec{.arch = "wrn_16_x"}), InputError);
  EXPECT_THROW(make_network(ModelSpec{.arch = "wrn_16_0"}), InputError);
  EXPECT_THROW(make_network(ModelSpec{.arch = ""}), InputError);
  EXPECT_THROW(make_network(ModelSpec{.arch = "resnet20", .num_classes = 0}), InputError);
  EXPECT_THROW(make_network(ModelSpec{.arch = "resnet20", .in_channels = 0}), InputError);
}

TEST(MakeNetwork, AnyWideResNetDepthAndWidth) {
  const auto network = make_network(ModelSpec{.arch = "wrn_22_3", .num_classes = 7});
  EXPECT_EQ(network->stage_channels(), (std::vector<int>{48, 96, 192}));
  EXPECT_GE(network->layout().parameters.find("block3.layer.2.conv2.weight"), 0);
  EXPECT_LT(network->layout().parameters.find("block3.layer.3.conv2.weight"), 0);
  EXPECT_EQ(network->layout().parameters.slot(network->layout().parameters.find("fc.weight")).shape,
            (Shape{7, 192}));
}

TEST(MakeNetwork, InChannelsSetsTheStem) {
  const auto network =
      make_network(ModelSpec{.arch = "resnet20", .num_classes = 10, .in_channels = 1});
  const nn::FlatLayout& parameters = network->layout().parameters;
  EXPECT_EQ(parameters.slot(parameters.find("conv1.weight")).shape, (Shape{16, 1, 3, 3}));
  nn::ModelBuffers buffers =
      nn::ModelBuffers::allocate(network->layout(), DType::Float32, Device::cpu());
  Rng rng(1);
  buffers.initialize(network->layout(), rng);
  autograd::NoGrad no_grad;
  const Shape input_shape = {2, 1, 28, 28};
  const models::NetworkOutput output =
      network->forward(make_context(network->layout(), buffers, nn::Mode::Train, false),
                       Variable(test::random_tensor(input_shape, 9, -1.0, 1.0, DType::Float32)));
  check_stage_shapes(*network, output, input_shape);
}

}  // namespace
}  // namespace md
