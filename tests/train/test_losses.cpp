// train::student_loss of every method against PyTorch (tests/reference/make_meta_fixture.py,
// fixture losses.bin): the total loss and its gradient with respect to every head's logits and
// pooled features, and for MetaDistiller to the generator's targets u_s, with label smoothing
// 0 and 0.1, with and without the feature hint, and with the BYOT reference options (KD without
// T², the deepest CE weighted 1 − α, the summed hint) one at a time and together; and the loss
// of the public BYOT code (case byot_public), which the options reproduce. Computed in float64
// on the CPU.
#include <gtest/gtest.h>

#include <cstdio>
#include <string>

#include "autograd/functions.h"
#include "support/fixture.h"
#include "support/gradcheck.h"
#include "train/losses.h"

namespace md::train {
namespace {

using autograd::Variable;

struct LossCase {
  MethodKind method;
  const char* name;
  double smoothing = 0.0;
  double hint = 0.0;
  bool kd_temperature_squared = true;
  DeepestCe deepest_ce = DeepestCe::One;
  HintReduction hint_reduction = HintReduction::Mean;
};

// The fixture's case name, as make_meta_fixture.py writes it.
std::string case_name(const LossCase& loss_case) {
  auto format = [](double value) {
    char text[32];
    std::snprintf(text, sizeof(text), "%g", value);
    return std::string(text);
  };
  std::string name = std::string(loss_case.name) + "_ls" + format(loss_case.smoothing) + "_hint" +
                     format(loss_case.hint);
  if (!loss_case.kd_temperature_squared) name += "_kdT1";
  if (loss_case.deepest_ce == DeepestCe::OneMinusAlpha) name += "_deep1ma";
  if (loss_case.hint_reduction == HintReduction::Sum) name += "_hintsum";
  return name;
}

class StudentLossTest : public ::testing::TestWithParam<LossCase> {};

TEST_P(StudentLossTest, LossAndGradientsMatchPyTorch) {
  const LossCase& loss_case = GetParam();
  const double hint = loss_case.hint;
  const test::Fixture fixture = test::Fixture::load("losses");
  const std::string name = case_name(loss_case);
  ASSERT_TRUE(fixture.has(name + ".loss")) << "no fixture case " << name;

  constexpr int kHeads = 3;
  models::StudentOutput output;
  std::vector<Tensor> grad_logits, grad_features, grad_targets;
  for (int s = 0; s < kHeads; ++s) {
    const Tensor& logits = fixture.get("logits" + std::to_string(s));
    const Tensor& features = fixture.get("features" + std::to_string(s));
    grad_logits.push_back(Tensor::zeros(logits.shape(), DType::Float64));
    grad_features.push_back(Tensor::zeros(features.shape(), DType::Float64));
    output.logits.push_back(Variable::with_grad_buffer(logits, grad_logits.back()));
    output.head_features.push_back(Variable::with_grad_buffer(features, grad_features.back()));
  }
  std::vector<Variable> teachers;
  if (loss_case.method == MethodKind::MetaDistiller) {
    for (int s = 0; s + 1 < kHeads; ++s) {
      const Tensor& target = fixture.get("target" + std::to_string(s));
      grad_targets.push_back(Tensor::zeros(target.shape(), DType::Float64));
      teachers.push_back(Variable::with_grad_buffer(target, grad_targets.back()));
    }
  } else if (loss_case.method == MethodKind::Byot) {
    for (int s = 0; s + 1 < kHeads; ++s) teachers.push_back(output.logits.back().detach());
  }
  const LossSpec spec{.method = loss_case.method,
                      .temperature = fixture.get("temperature").item(),
                      .alpha = fixture.get("alpha").item(),
                      .hint = hint,
                      .label_smoothing = loss_case.smoothing,
                      .kd_temperature_squared = loss_case.kd_temperature_squared,
                      .deepest_ce = loss_case.deepest_ce,
                      .hint_reduction = loss_case.hint_reduction};

  autograd::Tape tape;
  LossTerms terms;
  {
    autograd::TapeScope scope(tape);
    terms = student_loss(spec, output, fixture.get("labels"), teachers);
  }
  const double loss = terms.total.value().item();
  EXPECT_NEAR(loss, fixture.get(name + ".loss").item(), 1e-10 * std::max(1.0, std::abs(loss)));
  // The weighted parts add up to the total.
  EXPECT_NEAR(
      LossTerms::value(terms.ce) + LossTerms::value(terms.kd) + LossTerms::value(terms.hint), loss,
      1e-12 * std::max(1.0, std::abs(loss)));
  EXPECT_EQ(terms.hint.empty(), hint == 0.0 || loss_case.method == MethodKind::Baseline);
  tape.backward(terms.total);

  constexpr double kTolerance = 1e-5;
  for (int s = 0; s < kHeads; ++s) {
    const std::string head = std::to_string(s);
    EXPECT_LT(test::max_relative_error(grad_logits[static_cast<std::size_t>(s)],
                                       fixture.get(name + ".grad_logits" + head), 1e-3),
              kTolerance)
        << name << " logits of head " << s;
    EXPECT_LT(test::max_relative_error(grad_features[static_cast<std::size_t>(s)],
                                       fixture.get(name + ".grad_features" + head), 1e-3),
              kTolerance)
        << name << " features of head " << s;
  }
  for (std::size_t s = 0; s < grad_targets.size(); ++s) {
    EXPECT_LT(test::max_relative_error(
                  grad_targets[s], fixture.get(name + ".grad_target" + std::to_string(s)), 1e-3),
              kTolerance)
        << name << " generator target " << s;
  }
}

std::string param_name(const ::testing::TestParamInfo<LossCase>& info) {
  std::string name = case_name(info.param);
  for (char& c : name) {
    if (c == '.') c = '_';
  }
  return name;
}

constexpr LossCase kBaseline{MethodKind::Baseline, "baseline"};
constexpr LossCase kByot{MethodKind::Byot, "byot"};
constexpr LossCase kMeta{MethodKind::MetaDistiller, "metadistiller"};

// `base` with label smoothing, hint β and the three BYOT reference options.
constexpr LossCase with(LossCase base, double smoothing, double hint,
                        bool kd_temperature_squared = true, DeepestCe deepest_ce = DeepestCe::One,
                        HintReduction hint_reduction = HintReduction::Mean) {
  base.smoothing = smoothing;
  base.hint = hint;
  base.kd_temperature_squared = kd_temperature_squared;
  base.deepest_ce = deepest_ce;
  base.hint_reduction = hint_reduction;
  return base;
}

INSTANTIATE_TEST_SUITE_P(Methods, StudentLossTest,
                         ::testing::Values(with(kBaseline, 0.0, 0.5), with(kBaseline, 0.1, 0.5),
                                           with(kByot, 0.0, 0.5), with(kByot, 0.1, 0.5),
                                           with(kByot, 0.1, 0.0), with(kMeta, 0.0, 0.5),
                                           with(kMeta, 0.1, 0.5), with(kMeta, 0.1, 0.0)),
                         param_name);

constexpr auto kOneMinusAlpha = DeepestCe::OneMinusAlpha;
constexpr auto kSum = HintReduction::Sum;

// method.kd_temperature_squared false, method.deepest_ce one_minus_alpha and
// method.hint_reduction sum, one at a time and together, for both distilling methods; the
// baseline ignores them (its fixture is the plain CE).
INSTANTIATE_TEST_SUITE_P(ByotReferenceOptions, StudentLossTest,
                         ::testing::Values(with(kByot, 0.1, 0.5, false),
                                           with(kByot, 0.1, 0.5, true, kOneMinusAlpha),
                                           with(kByot, 0.1, 0.5, true, DeepestCe::One, kSum),
                                           with(kByot, 0.1, 0.5, true, kOneMinusAlpha, kSum),
                                           with(kByot, 0.1, 0.5, false, kOneMinusAlpha, kSum),
                                           with(kByot, 0.1, 0.0, false, kOneMinusAlpha, kSum),
                                           with(kMeta, 0.1, 0.5, false),
                                           with(kMeta, 0.1, 0.5, true, kOneMinusAlpha),
                                           with(kMeta, 0.1, 0.5, true, DeepestCe::One, kSum),
                                           with(kMeta, 0.1, 0.5, true, kOneMinusAlpha, kSum),
                                           with(kMeta, 0.1, 0.5, false, kOneMinusAlpha, kSum),
                                           with(kBaseline, 0.1, 0.5, false, kOneMinusAlpha, kSum)),
                         param_name);

// The public BYOT code's loss (luanyunteng/pytorch-be-your-own-teacher, train.py, written out in
// make_meta_fixture.py): student_loss with T², the deepest CE at 1 − α and the summed hint has
// its gradients, and its value less the teacher's entropy term (its KD is a soft-target
// cross-entropy, ours a KL: they differ by a constant of the student).
TEST(StudentLoss, ByotReferenceOptionsReproduceThePublicByotLoss) {
  const test::Fixture fixture = test::Fixture::load("losses");
  constexpr int kHeads = 3;
  models::StudentOutput output;
  std::vector<Tensor> grad_logits, grad_features;
  for (int s = 0; s < kHeads; ++s) {
    const Tensor& logits = fixture.get("logits" + std::to_string(s));
    const Tensor& features = fixture.get("byot_public.features" + std::to_string(s));
    grad_logits.push_back(Tensor::zeros(logits.shape(), DType::Float64));
    grad_features.push_back(Tensor::zeros(features.shape(), DType::Float64));
    output.logits.push_back(Variable::with_grad_buffer(logits, grad_logits.back()));
    output.head_features.push_back(Variable::with_grad_buffer(features, grad_features.back()));
  }
  const std::vector<Variable> teachers(kHeads - 1, output.logits.back().detach());
  const LossSpec spec{.method = MethodKind::Byot,
                      .temperature = fixture.get("temperature").item(),
                      .alpha = fixture.get("alpha").item(),
                      .hint = fixture.get("byot_public.hint").item(),
                      .kd_temperature_squared = true,
                      .deepest_ce = DeepestCe::OneMinusAlpha,
                      .hint_reduction = HintReduction::Sum};
  autograd::Tape tape;
  LossTerms terms;
  {
    autograd::TapeScope scope(tape);
    terms = student_loss(spec, output, fixture.get("labels"), teachers);
  }
  const double loss = terms.total.value().item();
  EXPECT_NEAR(loss + fixture.get("byot_public.entropy_offset").item(),
              fixture.get("byot_public.loss").item(), 1e-10 * std::max(1.0, std::abs(loss)));
  tape.backward(terms.total);
  for (int s = 0; s < kHeads; ++s) {
    const std::string head = std::to_string(s);
    EXPECT_LT(test::max_relative_error(grad_logits[static_cast<std::size_t>(s)],
                                       fixture.get("byot_public.grad_logits" + head), 1e-3),
              1e-5)
        << "logits of head " << s;
    EXPECT_LT(test::max_relative_error(grad_features[static_cast<std::size_t>(s)],
                                       fixture.get("byot_public.grad_features" + head), 1e-3),
              1e-5)
        << "features of head " << s;
  }
}

// The weights the options give, as the log rows report them.
TEST(StudentLoss, OptionWeights) {
  LossSpec spec{.method = MethodKind::Byot, .temperature = 4.0, .alpha = 0.25};
  EXPECT_DOUBLE_EQ(spec.kd_weight(), 0.25);
  EXPECT_DOUBLE_EQ(spec.deepest_ce_weight(), 1.0);
  spec.kd_temperature_squared = false;
  spec.deepest_ce = DeepestCe::OneMinusAlpha;
  EXPECT_DOUBLE_EQ(spec.kd_weight(), 0.25 / 16.0);
  EXPECT_DOUBLE_EQ(spec.deepest_ce_weight(), 0.75);
  spec.method = MethodKind::Baseline;
  EXPECT_DOUBLE_EQ(spec.deepest_ce_weight(), 1.0);
}

// The student-loss function rejects a teacher list that does not match the heads.
TEST(StudentLoss, RejectsWrongNumberOfTeachers) {
  const test::Fixture fixture = test::Fixture::load("losses");
  models::StudentOutput output;
  for (int s = 0; s < 3; ++s) {
    output.logits.emplace_back(fixture.get("logits" + std::to_string(s)));
    output.head_features.emplace_back(fixture.get("features" + std::to_string(s)));
  }
  const LossSpec spec{.method = MethodKind::Byot};
  EXPECT_THROW(student_loss(spec, output, fixture.get("labels"), {output.logits.back()}), Error);
}

}  // namespace
}  // namespace md::train
