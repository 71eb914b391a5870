#include "support/gradcheck.h"

#include <gtest/gtest.h>

#include <cmath>
#include <limits>

#include "backend/backend.h"
#include "core/rng.h"

namespace md::test {

using autograd::Variable;

Tensor random_tensor(const Shape& shape, std::uint64_t seed, double low, double high, DType dtype) {
  Rng rng(seed, 77);
  Tensor tensor = Tensor::empty(shape, DType::Float64);
  double* data = tensor.data<double>();
  for (std::int64_t i = 0; i < tensor.numel(); ++i) data[i] = rng.uniform(low, high);
  return dtype == DType::Float64 ? tensor : tensor.to_dtype(dtype);
}

namespace {

double projected(const DifferentiableFunction& function, const std::vector<Tensor>& inputs,
                 const Tensor& projection) {
  autograd::NoGrad no_grad;
  std::vector<Variable> variables;
  for (const Tensor& input : inputs) variables.emplace_back(input, false);
  Variable output = function(variables);
  return backend::of(projection).dot(output.value(), projection);
}

}  // namespace

void expect_gradients_match(const DifferentiableFunction& function,
                            const std::vector<Tensor>& inputs, const GradCheckOptions& options) {
  for (const Tensor& input : inputs) {
    ASSERT_EQ(input.dtype(), DType::Float64) << "gradient checks run in float64";
  }
  // Analytic gradients.
  std::vector<Tensor> working;
  for (const Tensor& input : inputs) working.push_back(input.clone());
  std::vector<Variable> variables;
  for (const Tensor& input : working) variables.emplace_back(input, true);
  autograd::Tape tape;
  Variable output;
  {
    autograd::TapeScope scope(tape);
    output = function(variables);
  }
  ASSERT_TRUE(output.requires_grad()) << "the function's output does not depend on its inputs";
  Tensor projection = random_tensor(output.shape(), options.seed + 1);
  tape.backward(output, projection);

  Rng rng(options.seed, 3);
  for (std::size_t which = 0; which < working.size(); ++which) {
    Tensor& input = working[which];
    double* data = input.data<double>();
    std::vector<double> analytic(static_cast<std::size_t>(input.numel()), 0.0);
    if (variables[which].has_grad()) analytic = variables[which].grad().to_vector<double>();
    std::int64_t points = std::min(input.numel(), options.max_points_per_input);
    std::int64_t skipped = 0;
    int failures = 0;
    for (std::int64_t point = 0; point < points; ++point) {
      std::int64_t index =
          points == input.numel()
              ? point
              : static_cast<std::int64_t>(rng.below(static_cast<std::uint64_t>(input.numel())));
      double original = data[index];
      double center = projected(function, working, projection);
      data[index] = original + options.step;
      double plus = projected(function, working, projection);
      data[index] = original - options.step;
      double minus = projected(function, working, projection);
      data[index] = original;
      double forward_slope = (plus - center) / options.step;
      double backward_slope = (center - minus) / options.step;
      double numeric = (plus - minus) / (2 * options.step);
      double scale = std::max({1.0, std::fabs(forward_slope), std::fabs(backward_slope)});
      if (std::fabs(forward_slope - backward_slope) > options.kink_threshold * scale) {
        ++skipped;
        continue;
      }
      double value = analytic[static_cast<std::size_t>(index)];
      double allowed = options.absolute_tolerance +
                       options.relative_tolerance * std::max(std::fabs(value), std::fabs(numeric));
      if (!(std::fabs(value - numeric) <= allowed) && failures < 10) {
        ++failures;
        ADD_FAILURE() << "input " << which << " " << input.describe() << " element " << index
                      << ": autograd " << value << " vs finite difference " << numeric;
      }
    }
    EXPECT_LE(skipped * 10, points)
        << "input " << which << ": " << skipped << " of " << points << " points were within a kink";
  }
}

double max_relative_error(const Tensor& a, const Tensor& b, double floor) {
  Tensor a64 = a.to(Device::cpu()).to_dtype(DType::Float64);
  Tensor b64 = b.to(Device::cpu()).to_dtype(DType::Float64);
  EXPECT_EQ(a.shape(), b.shape());
  double worst = 0.0;
  for (std::int64_t i = 0; i < std::min(a64.numel(), b64.numel()); ++i) {
    double x = a64.data<double>()[i], y = b64.data<double>()[i];
    if (!std::isfinite(x)) return std::numeric_limits<double>::quiet_NaN();
    worst = std::max(worst, std::fabs(x - y) / std::max(std::fabs(y), floor));
  }
  return worst;
}

double relative_norm_error(const Tensor& a, const Tensor& b) {
  Tensor a64 = a.to(Device::cpu()).to_dtype(DType::Float64);
  Tensor b64 = b.to(Device::cpu()).to_dtype(DType::Float64);
  EXPECT_EQ(a.shape(), b.shape());
  double diff = 0.0, norm = 0.0;
  for (std::int64_t i = 0; i < std::min(a64.numel(), b64.numel()); ++i) {
    double x = a64.data<double>()[i], y = b64.data<double>()[i];
    if (!std::isfinite(x)) return std::numeric_limits<double>::quiet_NaN();
    diff += (x - y) * (x - y);
    norm += y * y;
  }
  return std::sqrt(diff) / std::max(std::sqrt(norm), 1e-30);
}

}  // namespace md::test
