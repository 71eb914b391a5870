// Modules: layers that register their parameters in a ModelLayout at construction (under
// torchvision-style dotted names) and run on whatever flat buffers a ForwardContext names.
// A module holds only slot indices and hyperparameters, never tensors, so one module tree
// serves the real parameters, θ', θ±, and replicas on other devices alike.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "autograd/functions.h"
#include "nn/layout.h"

namespace md::nn {

using autograd::Variable;

class Module {
 public:
  virtual ~Module() = default;
  virtual Variable forward(const ForwardContext& context, const Variable& x) const = 0;
};

enum class Bias { With, Without };

struct Conv2dSpec {
  int in_channels = 0;
  int out_channels = 0;
  int kernel = 3;
  Conv2dParams params;
  Bias bias = Bias::Without;
  InitKind init = InitKind::KaimingNormalFanOut;
};

// weight: (out, in/groups, k, k) named <name>.weight; bias <name>.bias
class Conv2d final : public Module {
 public:
  Conv2d(ModelLayout& layout, const std::string& name, const Conv2dSpec& spec);
  Variable forward(const ForwardContext& context, const Variable& x) const override;
  const Conv2dSpec& spec() const { return spec_; }

 private:
  Conv2dSpec spec_;
  int weight_ = -1;
  int bias_ = -1;
};

// <name>.weight, <name>.bias (parameters); <name>.running_mean, .running_var,
// .num_batches_tracked (buffers). Training mode uses batch statistics.
class BatchNorm2d final : public Module {
 public:
  BatchNorm2d(ModelLayout& layout, const std::string& name, int channels,
              const BatchNormParams& params = {});
  Variable forward(const ForwardContext& context, const Variable& x) const override;
  // relu(forward(x) + residual), or relu(forward(x)) with an undefined residual, fused
  // (autograd::batch_norm_add_relu).
  Variable forward_add_relu(const ForwardContext& context, const Variable& x,
                            const Variable& residual = {}) const;

 private:
  // Counts a batch in num_batches_tracked when this forward moves the running statistics.
  void count_batch(const ForwardContext& context) const;

  BatchNormParams params_;
  int weight_ = -1, bias_ = -1;
  int running_mean_ = -1, running_var_ = -1, num_batches_tracked_ = -1;
};

// BatchNorm2d then ReLU as one fused op (autograd::batch_norm_add_relu): the same parameters,
// buffers and names as a BatchNorm2d of that name.
class BatchNormReLU2d final : public Module {
 public:
  BatchNormReLU2d(ModelLayout& layout, const std::string& name, int channels,
                  const BatchNormParams& params = {})
      : bn_(layout, name, channels, params) {}
  Variable forward(const ForwardContext& context, const Variable& x) const override {
    return bn_.forward_add_relu(context, x);
  }

 private:
  BatchNorm2d bn_;
};

struct LinearSpec {
  int in_features = 0;
  int out_features = 0;
  Bias bias = Bias::With;
  InitKind init = InitKind::UniformFanIn;
};

// weight: (out, in), bias: (out); x: (N, in) -> (N, out)
class Linear final : public Module {
 public:
  Linear(ModelLayout& layout, const std::string& name, const LinearSpec& spec);
  Variable forward(const ForwardContext& context, const Variable& x) const override;

 private:
  LinearSpec spec_;
  int weight_ = -1;
  int bias_ = -1;
};

class ReLU final : public Module {
 public:
  Variable forward(const ForwardContext&, const Variable& x) const override;
};

class Pool2d final : public Module {
 public:
  Pool2d(PoolKind kind, const Pool2dParams& params) : kind_(kind), params_(params) {}
  Variable forward(const ForwardContext&, const Variable& x) const override;

 private:
  PoolKind kind_;
  Pool2dParams params_;
};

// (N, C, H, W) -> (N, C)
class GlobalAvgPool final : public Module {
 public:
  Variable forward(const ForwardContext&, const Variable& x) const override;
};

class Sequential final : public Module {
 public:
  Sequential& add(std::unique_ptr<Module> module);
  template <typename M, typename... Args>
  Sequential& emplace(Args&&... args) {
    return add(std::make_unique<M>(std::forward<Args>(args)...));
  }
  Variable forward(const ForwardContext& context, const Variable& x) const override;
  std::size_t size() const { return modules_.size(); }
  bool empty() const { return modules_.empty(); }

 private:
  std::vector<std::unique_ptr<Module>> modules_;
};

}  // namespace md::nn
