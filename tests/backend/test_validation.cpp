// Argument validation of the CPU backend and the shape helpers: wrong shapes, dtypes and
// parameters are md::Error naming the op and the shapes, never a silent wrong result.
#include <gtest/gtest.h>

#include "cpu_test_util.h"

namespace md::test {
namespace {

template <typename Call>
void expect_error_mentioning(const Call& call, const std::string& fragment) {
  try {
    call();
    ADD_FAILURE() << "no error; expected one mentioning '" << fragment << "'";
  } catch (const Error& error) {
    EXPECT_NE(std::string(error.what()).find(fragment), std::string::npos) << error.what();
  }
}

TEST(ShapeHelpers, Conv2dOutputShape) {
  EXPECT_EQ(conv2d_output_shape({2, 3, 32, 32}, {16, 3, 3, 3}, {.stride = 1, .padding = 1}),
            (Shape{2, 16, 32, 32}));
  EXPECT_EQ(
      conv2d_output_shape({1, 8, 7, 5}, {8, 1, 3, 3}, {.stride = 2, .padding = 1, .groups = 8}),
      (Shape{1, 8, 4, 3}));
  EXPECT_EQ(conv2d_output_shape({1, 2, 9, 9}, {4, 2, 3, 3}, {.padding = 0, .dilation = 2}),
            (Shape{1, 4, 5, 5}));
  EXPECT_EQ(conv2d_output_shape({1, 2, 7, 5}, {4, 2, 1, 1}, {.stride = 2}), (Shape{1, 4, 4, 3}));
  expect_error_mentioning([] { conv2d_output_shape({2, 3, 8}, {4, 3, 3, 3}, {}); }, "[2, 3, 8]");
  expect_error_mentioning(
      [] {
        conv2d_output_shape({2, 3, 8, 8}, {4, 2, 3, 3}, {});
      },
      "[4, 2, 3, 3]");
  expect_error_mentioning(
      [] {
        conv2d_output_shape({2, 4, 8, 8}, {3, 2, 3, 3}, {.groups = 2});
      },
      "groups 2");
  expect_error_mentioning([] { conv2d_output_shape({2, 3, 2, 2}, {4, 3, 3, 3}, {}); }, "smaller");
  expect_error_mentioning([] { conv2d_output_shape({2, 3, 8, 8}, {4, 3, 3, 2}, {}); }, "square");
  expect_error_mentioning(
      [] {
        conv2d_output_shape({2, 3, 8, 8}, {4, 3, 3, 3}, {.stride = 0});
      },
      "stride 0");
}

TEST(ShapeHelpers, Pool2dOutputShape) {
  EXPECT_EQ(pool2d_output_shape({2, 3, 32, 32}, {.kernel = 2, .stride = 2}), (Shape{2, 3, 16, 16}));
  EXPECT_EQ(pool2d_output_shape({1, 1, 112, 112}, {.kernel = 3, .stride = 2, .padding = 1}),
            (Shape{1, 1, 56, 56}));
  expect_error_mentioning(
      [] {
        pool2d_output_shape({1, 1, 8, 8}, {.kernel = 2, .stride = 2, .padding = 2});
      },
      "half the kernel");
  expect_error_mentioning(
      [] {
        pool2d_output_shape({1, 1, 1, 8}, {.kernel = 3, .stride = 1});
      },
      "[1, 1, 1, 8]");
  expect_error_mentioning([] { pool2d_output_shape({1, 8, 8}, {}); }, "(N, C, H, W)");
}

TEST(CpuValidation, MismatchedShapesAndDtypesAreErrorsNamingTheOp) {
  Backend& backend = cpu_backend();
  Tensor x = Tensor::zeros({2, 3, 8, 8}, DType::Float32);
  Tensor weight = Tensor::zeros({4, 3, 3, 3}, DType::Float32);
  Tensor wrong_y = Tensor::empty({2, 4, 8, 8}, DType::Float32);
  expect_error_mentioning([&] { backend.conv2d_forward(x, weight, wrong_y, {}); },
                          "conv2d_forward");
  Tensor weight64 = Tensor::zeros({4, 3, 3, 3}, DType::Float64);
  Tensor y = Tensor::empty({2, 4, 6, 6}, DType::Float32);
  expect_error_mentioning([&] { backend.conv2d_forward(x, weight64, y, {}); }, "weight");
  Tensor a = Tensor::zeros({4}, DType::Float32), b = Tensor::zeros({5}, DType::Float32);
  Tensor out = Tensor::empty({4}, DType::Float32);
  expect_error_mentioning([&] { backend.add(a, b, out); }, "add");
  expect_error_mentioning([&] { backend.dot(a, b); }, "dot");
  Tensor labels = Tensor::zeros({2}, DType::Int32);
  Tensor ints = Tensor::zeros({2, 3}, DType::Int32);
  Tensor ints_y = Tensor::empty({2, 3}, DType::Int32);
  expect_error_mentioning([&] { backend.relu_forward(ints, ints_y); },
                          "relu_forward: unsupported dtype int32");
  Tensor logits = Tensor::zeros({3, 4}, DType::Float32);
  Tensor loss = Tensor::empty({}, DType::Float32);
  expect_error_mentioning([&] { backend.cross_entropy_forward(logits, labels, loss, 0.0); },
                          "labels");
  Tensor teacher = Tensor::zeros({3, 4}, DType::Float32);
  expect_error_mentioning([&] { backend.kl_div_forward(logits, teacher, loss, 0.0); },
                          "temperature");
  Tensor param = Tensor::zeros({4}, DType::Float32), grad = Tensor::zeros({4}, DType::Float32);
  Tensor short_buffer = Tensor::zeros({3}, DType::Float32);
  expect_error_mentioning([&] { backend.sgd_update(param, grad, short_buffer, {}); },
                          "momentum_buffer");
  Tensor small = Tensor::zeros({2, 3, 4, 4}, DType::Float32);
  Tensor pooled = Tensor::empty({2, 3, 3, 3}, DType::Float32);
  expect_error_mentioning([&] { backend.pool2d_forward(small, pooled, PoolKind::Max, {}); },
                          "pool2d_forward");
}

}  // namespace
}  // namespace md::test
