// Central finite-difference gradient checks in float64 (the Jacobian test of every op).
// For f: inputs -> output, with a fixed random projection r of the output, compares the
// autograd gradient of sum(r ⊙ f(x)) with (L(x + h·e_i) − L(x − h·e_i)) / 2h per element.
// Points within a kink (ReLU at 0, max-pool ties) are detected by disagreeing one-sided
// differences and skipped; at most a tenth of the points may be skipped.
#pragma once

#include <functional>
#include <string>
#include <vector>

#include "autograd/variable.h"
#include "core/tensor.h"

namespace md::test {

struct GradCheckOptions {
  double step = 1e-6;
  double relative_tolerance = 1e-5;
  double absolute_tolerance = 1e-7;
  double kink_threshold = 1e-3;  // |forward − backward one-sided slope| that marks a kink
  std::int64_t max_points_per_input = 400;  // larger inputs are sampled
  std::uint64_t seed = 1234;
};

using DifferentiableFunction =
    std::function<autograd::Variable(const std::vector<autograd::Variable>&)>;

// Runs the check on `inputs` (float64 CPU tensors; all receive gradients) and reports failures
// through GoogleTest assertions, naming the input and the element.
void expect_gradients_match(const DifferentiableFunction& function,
                            const std::vector<Tensor>& inputs,
                            const GradCheckOptions& options = {});

// Random float64 tensor with entries uniform in [low, high), seeded.
Tensor random_tensor(const Shape& shape, std::uint64_t seed, double low = -1.0, double high = 1.0,
                     DType dtype = DType::Float64);
// Largest |a - b| / max(|b|, floor) over elements; for comparisons of whole tensors.
double max_relative_error(const Tensor& a, const Tensor& b, double floor = 1e-3);
// ‖a − b‖ / ‖b‖ (Frobenius), NaN if any element of a is not finite.
double relative_norm_error(const Tensor& a, const Tensor& b);

}  // namespace md::test
