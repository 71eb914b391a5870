// Every gradient output of every backward op honours its Write mode: Overwrite replaces what the
// output held (NaN included), Accumulate adds to it.
#include <gtest/gtest.h>

#include <cmath>
#include <functional>

#include "cpu_test_util.h"

namespace md::test {
namespace {

struct WriteCase {
  std::string name;
  std::vector<Shape> output_shapes;
  std::function<void(std::vector<Tensor>&, Write)> run;
};

Tensor forward_of(const std::function<void(Tensor&)>& forward, const Shape& shape) {
  Tensor y = Tensor::empty(shape, DType::Float64);
  forward(y);
  return y;
}

std::vector<WriteCase> write_cases() {
  Backend& b = cpu_backend();
  std::vector<WriteCase> cases;
  const Tensor x = random_tensor({2, 4, 6, 5}, 1);
  const Tensor grad_like_x = random_tensor({2, 4, 6, 5}, 2);

  struct ConvSetup {
    const char* name;
    Shape x, weight;
    Conv2dParams params;
  };
  for (const ConvSetup& setup : std::vector<ConvSetup>{
           {"gemm", {3, 4, 6, 5}, {6, 2, 3, 3}, {.stride = 2, .padding = 1, .groups = 2}},
           {"depthwise", {2, 4, 6, 5}, {4, 1, 3, 3}, {.stride = 1, .padding = 1, .groups = 4}},
           {"pointwise direct", {2, 3, 48, 48}, {2, 3, 1, 1}, {}}}) {
    const Tensor conv_x = random_tensor(setup.x, 3);
    const Tensor weight = random_tensor(setup.weight, 4);
    const Tensor grad_y =
        random_tensor(conv2d_output_shape(setup.x, setup.weight, setup.params), 5);
    const Conv2dParams params = setup.params;
    cases.push_back({std::string("conv2d_backward_data ") + setup.name,
                     {setup.x},
                     [=, &b](std::vector<Tensor>& out, Write write) {
                       b.conv2d_backward_data(grad_y, weight, out[0], params, write);
                     }});
    cases.push_back({std::string("conv2d_backward_filter ") + setup.name,
                     {setup.weight},
                     [=, &b](std::vector<Tensor>& out, Write write) {
                       b.conv2d_backward_filter(conv_x, grad_y, out[0], params, write);
                     }});
  }
  cases.push_back({"channel_bias_backward", {{4}}, [=, &b](std::vector<Tensor>& out, Write write) {
                     b.channel_bias_backward(grad_like_x, out[0], write);
                   }});
  {
    const Tensor in = random_tensor({3, 5}, 6), weight = random_tensor({4, 5}, 7);
    const Tensor grad_y = random_tensor({3, 4}, 8);
    cases.push_back(
        {"linear_backward", {{3, 5}, {4, 5}, {4}}, [=, &b](std::vector<Tensor>& out, Write write) {
           b.linear_backward(in, weight, grad_y, out[0], out[1], out[2], write);
         }});
  }
  {
    const Tensor gamma = random_tensor({4}, 9), beta = random_tensor({4}, 10);
    Tensor mean = Tensor::empty({4}, DType::Float64), invstd = Tensor::empty({4}, DType::Float64);
    Tensor unused;
    Tensor y = Tensor::empty(x.shape(), DType::Float64);
    b.batch_norm_forward_train(x, gamma, beta, y, mean, invstd, unused, unused, {},
                               RunningStatsUpdate::Skip);
    cases.push_back({"batch_norm_backward",
                     {x.shape(), {4}, {4}},
                     [=, &b](std::vector<Tensor>& out, Write write) {
                       b.batch_norm_backward(x, grad_like_x, gamma, mean, invstd, out[0], out[1],
                                             out[2], write);
                     }});
    const Tensor residual = random_tensor(x.shape(), 11);
    Tensor fused_y = Tensor::empty(x.shape(), DType::Float64);
    b.batch_norm_add_relu_forward_train(x, gamma, beta, residual, fused_y, mean, invstd, unused,
                                        unused, {}, RunningStatsUpdate::Skip);
    cases.push_back({"batch_norm_add_relu_backward",
                     {x.shape(), {4}, {4}, x.shape()},
                     [=, &b](std::vector<Tensor>& out, Write write) {
                       b.batch_norm_add_relu_backward(x, fused_y, grad_like_x, gamma, mean, invstd,
                                                      out[0], out[1], out[2], out[3], write);
                     }});
  }
  {
    const Tensor relu_y = forward_of([&](Tensor& y) { b.relu_forward(x, y); }, x.shape());
    const Tensor sigmoid_y = forward_of([&](Tensor& y) { b.sigmoid_forward(x, y); }, x.shape());
    cases.push_back({"relu_backward", {x.shape()}, [=, &b](std::vector<Tensor>& out, Write write) {
                       b.relu_backward(relu_y, grad_like_x, out[0], write);
                     }});
    cases.push_back(
        {"sigmoid_backward", {x.shape()}, [=, &b](std::vector<Tensor>& out, Write write) {
           b.sigmoid_backward(sigmoid_y, grad_like_x, out[0], write);
         }});
    cases.push_back({"mul", {x.shape()}, [=, &b](std::vector<Tensor>& out, Write write) {
                       b.mul(x, grad_like_x, out[0], write);
                     }});
  }
  for (PoolKind kind : {PoolKind::Max, PoolKind::Average}) {
    const Pool2dParams params{.kernel = 3, .stride = 2, .padding = 1};
    const Shape y_shape = pool2d_output_shape(x.shape(), params);
    const Tensor y =
        forward_of([&](Tensor& out) { b.pool2d_forward(x, out, kind, params); }, y_shape);
    const Tensor grad_y = random_tensor(y_shape, 11);
    cases.push_back({kind == PoolKind::Max ? "pool2d_backward max" : "pool2d_backward average",
                     {x.shape()},
                     [=, &b](std::vector<Tensor>& out, Write write) {
                       b.pool2d_backward(x, y, grad_y, out[0], kind, params, write);
                     }});
  }
  {
    const Tensor grad_y = random_tensor({2, 4}, 12);
    cases.push_back(
        {"global_avg_pool_backward", {x.shape()}, [=, &b](std::vector<Tensor>& out, Write write) {
           b.global_avg_pool_backward(grad_y, out[0], write);
         }});
  }
  for (ResizeMode mode : {ResizeMode::Nearest, ResizeMode::Bilinear}) {
    const Tensor grad_y = random_tensor({2, 4, 9, 4}, 13);
    cases.push_back(
        {mode == ResizeMode::Nearest ? "resize_backward nearest" : "resize_backward bilinear",
         {x.shape()},
         [=, &b](std::vector<Tensor>& out, Write write) {
           b.resize_backward(grad_y, out[0], mode, write);
         }});
  }
  {
    const Tensor grad_y = random_tensor({2, 7, 3}, 14);
    cases.push_back({"concat_channels_backward",
                     {{2, 3, 3}, {2, 4, 3}},
                     [=, &b](std::vector<Tensor>& out, Write write) {
                       std::vector<Tensor> grads = out;
                       b.concat_channels_backward(grad_y, grads, write);
                     }});
  }
  {
    const Tensor logits = random_tensor({5, 6}, 15, -3, 3);
    const Tensor teacher = random_tensor({5, 6}, 16, -3, 3);
    const Tensor grad = random_tensor({5, 6}, 17);
    const Tensor softmax_y = forward_of([&](Tensor& y) { b.softmax_forward(logits, y); }, {5, 6});
    const Tensor log_softmax_y =
        forward_of([&](Tensor& y) { b.log_softmax_forward(logits, y); }, {5, 6});
    const Tensor labels = Tensor::from_vector<std::int32_t>({5}, {0, 5, 2, 2, 1});
    const Tensor grad_loss = Tensor::full({}, 0.7, DType::Float64);
    cases.push_back({"softmax_backward", {{5, 6}}, [=, &b](std::vector<Tensor>& out, Write write) {
                       b.softmax_backward(softmax_y, grad, out[0], write);
                     }});
    cases.push_back(
        {"log_softmax_backward", {{5, 6}}, [=, &b](std::vector<Tensor>& out, Write write) {
           b.log_softmax_backward(log_softmax_y, grad, out[0], write);
         }});
    cases.push_back(
        {"cross_entropy_backward", {{5, 6}}, [=, &b](std::vector<Tensor>& out, Write write) {
           b.cross_entropy_backward(logits, labels, grad_loss, out[0], 0.1, write);
         }});
    cases.push_back(
        {"kl_div_backward", {{5, 6}, {5, 6}}, [=, &b](std::vector<Tensor>& out, Write write) {
           b.kl_div_backward(logits, teacher, grad_loss, out[0], out[1], 2.0, write);
         }});
    cases.push_back(
        {"mse_backward", {{5, 6}, {5, 6}}, [=, &b](std::vector<Tensor>& out, Write write) {
           b.mse_backward(logits, teacher, grad_loss, out[0], out[1], write);
         }});
  }
  return cases;
}

TEST(CpuWriteModes, OverwriteReplacesAndAccumulateAdds) {
  Backend& backend = cpu_backend();
  for (const WriteCase& c : write_cases()) {
    SCOPED_TRACE(c.name);
    std::vector<Tensor> overwritten, accumulated, prefills;
    std::uint64_t seed = 500;
    for (const Shape& shape : c.output_shapes) {
      overwritten.push_back(Tensor::full(shape, std::nan(""), DType::Float64));
      prefills.push_back(random_tensor(shape, ++seed));
      accumulated.push_back(prefills.back().clone());
    }
    c.run(overwritten, Write::Overwrite);
    c.run(accumulated, Write::Accumulate);
    for (std::size_t i = 0; i < overwritten.size(); ++i) {
      EXPECT_EQ(backend.count_nonfinite(overwritten[i]), 0) << "output " << i;
      EXPECT_GT(backend.dot(overwritten[i], overwritten[i]), 0.0) << "output " << i;
      Tensor expected = prefills[i].clone();
      backend.axpby(1.0, overwritten[i], 1.0, expected);
      EXPECT_LT(max_relative_error(accumulated[i], expected, 1.0), 1e-13) << "output " << i;
    }
  }
}

}  // namespace
}  // namespace md::test
