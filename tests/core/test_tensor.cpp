#include <gtest/gtest.h>

#include "core/tensor.h"

namespace md {
namespace {

TEST(Tensor, ShapeNumelAndStrides) {
  Tensor t = Tensor::zeros({2, 3, 4});
  EXPECT_EQ(t.numel(), 24);
  EXPECT_EQ(t.strides(), (Shape{12, 4, 1}));
  EXPECT_EQ(t.dim(-1), 4);
  EXPECT_EQ(t.describe(), "float32[2, 3, 4] on cpu");
}

TEST(Tensor, ViewsShareStorage) {
  Tensor flat = Tensor::from_vector<float>({6}, {0, 1, 2, 3, 4, 5});
  Tensor second = flat.slice_flat(2, {2, 2});
  second.data<float>()[0] = 42;
  EXPECT_EQ(flat.to_vector<float>()[2], 42);
  EXPECT_EQ(flat.narrow_rows(4, 6).to_vector<float>(), (std::vector<float>{4, 5}));
  EXPECT_THROW(flat.slice_flat(5, {2}), Error);
  EXPECT_THROW(flat.view({4}), Error);
}

TEST(Tensor, CloneIsDeepAndDtypeChecked) {
  Tensor a = Tensor::from_vector<double>({2}, {1.5, -2.0});
  Tensor b = a.clone();
  b.data<double>()[0] = 0;
  EXPECT_EQ(a.to_vector<double>()[0], 1.5);
  EXPECT_EQ(b.to_vector<double>()[0], 0.0);
  EXPECT_EQ(a.narrow_rows(1, 2).item(), -2.0);
  EXPECT_THROW(a.data<float>(), Error);
  EXPECT_EQ(a.to_dtype(DType::Float32).to_vector<float>(), (std::vector<float>{1.5f, -2.0f}));
}

TEST(Device, Parse) {
  EXPECT_EQ(Device::parse("cuda:3"), Device::cuda(3));
  EXPECT_EQ(Device::parse("cpu"), Device::cpu());
  EXPECT_THROW(Device::parse("gpu"), InputError);
  EXPECT_THROW(Device::parse("cuda:x"), InputError);
}

}  // namespace
}  // namespace md
