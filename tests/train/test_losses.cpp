// train::student_loss of every method against PyTorch (tests/reference/make_meta_fixture.py,
// fixture losses.bin): the total loss and its gradient with respect to every head's logits and
// pooled features, and for MetaDistiller to the generator's targets u_s, with label smoothing
// 0 and 0.1 and with and without the feature hint. Computed in float64 on the CPU.
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
};

std::string case_name(const std::string& method, double smoothing, double hint) {
  auto format = [](double value) {
    char text[32];
    std::snprintf(text, sizeof(text), "%g", value);
    return std::string(text);
  };
  return method + "_ls" + format(smoothing) + "_hint" + format(hint);
}

class StudentLossTest : public ::testing::TestWithParam<std::tuple<LossCase, double, double>> {};

TEST_P(StudentLossTest, LossAndGradientsMatchPyTorch) {
  const auto& [loss_case, smoothing, hint] = GetParam();
  const test::Fixture fixture = test::Fixture::load("losses");
  const std::string name = case_name(loss_case.name, smoothing, hint);
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
                      .label_smoothing = smoothing};

  autograd::Tape tape;
  LossTerms terms;
  {
    autograd::TapeScope scope(tape);
    terms = student_loss(spec, output, fixture.get("labels"), teachers);
  }
  const double loss = terms.total.value().item();
  EXPECT_NEAR(loss, fixture.get(name + ".loss").item(), 1e-10 * std::max(1.0, std::abs(loss)));
  // The weighted parts add up to the total.
  EXPECT_NEAR(LossTerms::value(terms.ce) + LossTerms::value(terms.kd) + LossTerms::value(terms.hint),
              loss, 1e-12 * std::max(1.0, std::abs(loss)));
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
    EXPECT_LT(test::max_relative_error(grad_targets[s],
                                       fixture.get(name + ".grad_target" + std::to_string(s)), 1e-3),
              kTolerance)
        << name << " generator target " << s;
  }
}

std::string param_name(const ::testing::TestParamInfo<std::tuple<LossCase, double, double>>& info) {
  std::string name = case_name(std::get<0>(info.param).name, std::get<1>(info.param), std::get<2>(info.param));
  for (char& c : name) {
    if (c == '.') c = '_';
  }
  return name;
}

INSTANTIATE_TEST_SUITE_P(
    Methods, StudentLossTest,
    ::testing::Values(std::make_tuple(LossCase{MethodKind::Baseline, "baseline"}, 0.0, 0.5),
                      std::make_tuple(LossCase{MethodKind::Baseline, "baseline"}, 0.1, 0.5),
                      std::make_tuple(LossCase{MethodKind::Byot, "byot"}, 0.0, 0.5),
                      std::make_tuple(LossCase{MethodKind::Byot, "byot"}, 0.1, 0.5),
                      std::make_tuple(LossCase{MethodKind::Byot, "byot"}, 0.1, 0.0),
                      std::make_tuple(LossCase{MethodKind::MetaDistiller, "metadistiller"}, 0.0, 0.5),
                      std::make_tuple(LossCase{MethodKind::MetaDistiller, "metadistiller"}, 0.1, 0.5),
                      std::make_tuple(LossCase{MethodKind::MetaDistiller, "metadistiller"}, 0.1, 0.0)),
    param_name);

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
