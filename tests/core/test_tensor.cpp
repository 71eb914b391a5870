#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>

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

// Tensor::full writes the value in every dtype through the device runtime's fill (odd counts,
// signed zero, NaN, and an empty tensor).
TEST(Tensor, FullFillsEveryDtype) {
  EXPECT_EQ(Tensor::full({3}, 1.5).to_vector<float>(), (std::vector<float>{1.5f, 1.5f, 1.5f}));
  EXPECT_EQ(Tensor::full({2}, -2.25, DType::Float64).to_vector<double>(),
            (std::vector<double>{-2.25, -2.25}));
  EXPECT_EQ(Tensor::full({5}, -7, DType::Int32).to_vector<std::int32_t>(),
            (std::vector<std::int32_t>(5, -7)));
  EXPECT_EQ(Tensor::full({3}, 200, DType::UInt8).to_vector<std::uint8_t>(),
            (std::vector<std::uint8_t>(3, 200)));
  const std::vector<float> negative_zero = Tensor::full({2}, -0.0).to_vector<float>();
  EXPECT_TRUE(std::signbit(negative_zero[0]) && std::signbit(negative_zero[1]));
  EXPECT_TRUE(std::isnan(Tensor::full({1}, std::nan("")).to_vector<float>()[0]));
  EXPECT_EQ(Tensor::zeros({0, 4}).numel(), 0);
  const Tensor bf16 = Tensor::zeros({3}, DType::BFloat16);
  const auto* bytes = static_cast<const unsigned char*>(bf16.raw_data());
  EXPECT_TRUE(std::all_of(bytes, bytes + bf16.nbytes(), [](unsigned char b) { return b == 0; }));
  EXPECT_THROW(Tensor::full({1}, 1.0, DType::BFloat16), Error);
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
