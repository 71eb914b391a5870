#include "nn/module.h"

#include "backend/backend.h"
#include "core/error.h"

namespace md::nn {

Conv2d::Conv2d(ModelLayout& layout, const std::string& name, const Conv2dSpec& spec) : spec_(spec) {
  MD_CHECK(
      spec.in_channels % spec.params.groups == 0 && spec.out_channels % spec.params.groups == 0,
      name, ": channels ", spec.in_channels, "->", spec.out_channels, " not divisible by groups ",
      spec.params.groups);
  const std::int64_t in_per_group = spec.in_channels / spec.params.groups;
  const double fan_in = static_cast<double>(in_per_group * spec.kernel * spec.kernel);
  // PyTorch's fan_out (torch.nn.init._calculate_fan_in_and_fan_out) is out_channels * k * k,
  // not divided by groups: torchvision's MobileNetV2 depthwise convolutions use it.
  const double fan_out = static_cast<double>(spec.out_channels * spec.kernel * spec.kernel);
  const double fan = spec.init == InitKind::KaimingNormalFanOut ? fan_out : fan_in;
  weight_ = layout.parameters.add(join(name, "weight"),
                                  {spec.out_channels, in_per_group, spec.kernel, spec.kernel},
                                  InitSpec{spec.init, fan});
  if (spec.bias == Bias::With) {
    // As for Linear: PyTorch's default init gives a uniform bias; torchvision's models that
    // initialize the weight themselves (VGG, MobileNetV2) zero the bias.
    const InitKind bias_init =
        spec.init == InitKind::UniformFanIn ? InitKind::UniformFanIn : InitKind::Zeros;
    bias_ =
        layout.parameters.add(join(name, "bias"), {spec.out_channels}, InitSpec{bias_init, fan_in});
  }
}

Variable Conv2d::forward(const ForwardContext& context, const Variable& x) const {
  Variable bias = bias_ >= 0 ? context.parameter(bias_) : Variable();
  return autograd::conv2d(x, context.parameter(weight_), bias, spec_.params);
}

BatchNorm2d::BatchNorm2d(ModelLayout& layout, const std::string& name, int channels,
                         const BatchNormParams& params)
    : params_(params) {
  weight_ = layout.parameters.add(join(name, "weight"), {channels}, InitSpec{InitKind::Ones});
  bias_ = layout.parameters.add(join(name, "bias"), {channels}, InitSpec{InitKind::Zeros});
  running_mean_ =
      layout.buffers.add(join(name, "running_mean"), {channels}, InitSpec{InitKind::Zeros});
  running_var_ =
      layout.buffers.add(join(name, "running_var"), {channels}, InitSpec{InitKind::Ones});
  num_batches_tracked_ =
      layout.buffers.add(join(name, "num_batches_tracked"), {}, InitSpec{InitKind::Zeros});
}

Variable BatchNorm2d::forward(const ForwardContext& context, const Variable& x) const {
  Tensor running_mean = context.buffer(running_mean_);
  Tensor running_var = context.buffer(running_var_);
  const bool train = context.mode == Mode::Train;
  Variable y = autograd::batch_norm(
      x, context.parameter(weight_), context.parameter(bias_), running_mean, running_var,
      train ? autograd::BatchNormMode::Train : autograd::BatchNormMode::Eval, context.stats_update,
      params_);
  count_batch(context);
  return y;
}

Variable BatchNorm2d::forward_add_relu(const ForwardContext& context, const Variable& x,
                                       const Variable& residual) const {
  Tensor running_mean = context.buffer(running_mean_);
  Tensor running_var = context.buffer(running_var_);
  const bool train = context.mode == Mode::Train;
  Variable y = autograd::batch_norm_add_relu(
      x, context.parameter(weight_), context.parameter(bias_), residual, running_mean, running_var,
      train ? autograd::BatchNormMode::Train : autograd::BatchNormMode::Eval, context.stats_update,
      params_);
  count_batch(context);
  return y;
}

void BatchNorm2d::count_batch(const ForwardContext& context) const {
  if (context.mode != Mode::Train || context.stats_update != RunningStatsUpdate::Update) return;
  Tensor count = context.buffer(num_batches_tracked_);
  Backend& backend = backend::of(count);
  Tensor one = Tensor::full({}, 1.0, count.dtype(), count.device());
  backend.axpby(1.0, one, 1.0, count);
}

Linear::Linear(ModelLayout& layout, const std::string& name, const LinearSpec& spec) : spec_(spec) {
  const double fan_in = spec.in_features;
  weight_ = layout.parameters.add(join(name, "weight"), {spec.out_features, spec.in_features},
                                  InitSpec{spec.init, fan_in});
  if (spec.bias == Bias::With) {
    InitKind bias_init =
        spec.init == InitKind::UniformFanIn ? InitKind::UniformFanIn : InitKind::Zeros;
    bias_ =
        layout.parameters.add(join(name, "bias"), {spec.out_features}, InitSpec{bias_init, fan_in});
  }
}

Variable Linear::forward(const ForwardContext& context, const Variable& x) const {
  Variable bias = bias_ >= 0 ? context.parameter(bias_) : Variable();
  return autograd::linear(x, context.parameter(weight_), bias);
}

Variable ReLU::forward(const ForwardContext&, const Variable& x) const {
  return autograd::relu(x);
}

Variable Pool2d::forward(const ForwardContext&, const Variable& x) const {
  return kind_ == PoolKind::Max ? autograd::max_pool2d(x, params_)
                                : autograd::avg_pool2d(x, params_);
}

Variable GlobalAvgPool::forward(const ForwardContext&, const Variable& x) const {
  return autograd::global_avg_pool(x);
}

Sequential& Sequential::add(std::unique_ptr<Module> module) {
  modules_.push_back(std::move(module));
  return *this;
}

Variable Sequential::forward(const ForwardContext& context, const Variable& x) const {
  Variable h = x;
  for (const auto& module : modules_) h = module->forward(context, h);
  return h;
}

}  // namespace md::nn
