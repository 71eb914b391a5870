// The CUDA augment_images op (device-resident training batches) against the CPU op, bit for bit:
// both call math::augmented_value, and tests/train/test_device_batches.cpp ties the CPU op to
// data::render_sample, so equality here makes GPU batches equal the CPU loader's. Random sets
// of 1 and 3 channels, random and edge draws; a source index outside the set gives NaN on the
// GPU (the kernel cannot throw). Reports SKIPPED without a GPU.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <limits>
#include <vector>

#include "backend/backend.h"
#include "core/rng.h"

namespace md {
namespace {

struct AugmentCase {
  int channels;
  int height;
  int width;
  AugmentParams params;
};

// Draw rows (batch, 6): random crops within [0, 2·padding], flips and cutout centers, with the
// first rows at the extremes.
std::vector<std::int32_t> random_draws(std::int64_t batch, std::int64_t set_count,
                                       const AugmentCase& test_case, std::uint64_t seed) {
  Rng rng(seed);
  const auto offsets = static_cast<std::uint64_t>(2 * test_case.params.crop_padding + 1);
  std::vector<std::int32_t> rows;
  for (std::int64_t i = 0; i < batch; ++i) {
    const bool edge = i < 4;
    const int far = 2 * test_case.params.crop_padding;
    rows.push_back(static_cast<std::int32_t>(rng.below(static_cast<std::uint64_t>(set_count))));
    rows.push_back(edge ? (i % 2 == 0 ? 0 : far) : static_cast<std::int32_t>(rng.below(offsets)));
    rows.push_back(edge ? (i / 2 == 0 ? 0 : far) : static_cast<std::int32_t>(rng.below(offsets)));
    rows.push_back(static_cast<std::int32_t>(rng.below(2)));
    rows.push_back(
        edge ? 0
             : static_cast<std::int32_t>(rng.below(static_cast<std::uint64_t>(test_case.height))));
    rows.push_back(
        edge ? test_case.width - 1
             : static_cast<std::int32_t>(rng.below(static_cast<std::uint64_t>(test_case.width))));
  }
  return rows;
}

class CudaAugment : public ::testing::Test {
 protected:
  void SetUp() override {
    backend::init();
    if (backend::cuda_device_count() == 0) GTEST_SKIP() << "no CUDA device";
  }
};

TEST_F(CudaAugment, EqualsTheCpuOpBitForBit) {
  const AugmentCase cases[] = {
      {3, 32, 32, {.crop_padding = 4, .cutout = 16}},
      {1, 28, 28, {.crop_padding = 4, .cutout = 0}},
      {3, 9, 7, {.crop_padding = 0, .cutout = 3}},
      {1, 5, 6, {.crop_padding = 8, .cutout = 0}},
  };
  const Device gpu = Device::cuda(0);
  std::uint64_t seed = 40;
  for (const AugmentCase& test_case : cases) {
    SCOPED_TRACE(testing::Message()
                 << test_case.channels << "x" << test_case.height << "x" << test_case.width
                 << " padding " << test_case.params.crop_padding << " cutout "
                 << test_case.params.cutout);
    const std::int64_t set_count = 50;
    const std::int64_t batch = 33;
    Rng rng(++seed);
    std::vector<std::uint8_t> pixel_values(static_cast<std::size_t>(
        set_count * test_case.channels * test_case.height * test_case.width));
    for (std::uint8_t& pixel : pixel_values) pixel = static_cast<std::uint8_t>(rng.below(256));
    std::vector<float> table_values(static_cast<std::size_t>(test_case.channels) * 256);
    for (float& value : table_values) value = static_cast<float>(rng.uniform() * 4.0 - 2.0);
    const Tensor pixels = Tensor::from_vector<std::uint8_t>(
        {set_count, test_case.channels, test_case.height, test_case.width}, pixel_values);
    const Tensor draws = Tensor::from_vector<std::int32_t>(
        {batch, AugmentDrawColumn::count}, random_draws(batch, set_count, test_case, ++seed));
    const Tensor table = Tensor::from_vector<float>({test_case.channels, 256}, table_values);
    const Shape out_shape{batch, test_case.channels, test_case.height, test_case.width};
    Tensor expected = Tensor::full(out_shape, std::nan(""));
    backend::get(Device::cpu()).augment_images(pixels, draws, table, expected, test_case.params);
    Tensor actual = Tensor::full(out_shape, std::nan(""), DType::Float32, gpu);
    backend::get(gpu).augment_images(pixels.to(gpu), draws.to(gpu), table.to(gpu), actual,
                                     test_case.params);
    const Tensor actual_host = actual.to(Device::cpu());
    EXPECT_EQ(std::memcmp(actual_host.raw_data(), expected.raw_data(), expected.nbytes()), 0);
  }
}

TEST_F(CudaAugment, ASourceOutsideTheSetIsNaN) {
  const Device gpu = Device::cuda(0);
  const Tensor pixels = Tensor::zeros({2, 1, 3, 3}, DType::UInt8).to(gpu);
  const Tensor table = Tensor::zeros({1, 256}).to(gpu);
  const Tensor draws =
      Tensor::from_vector<std::int32_t>({2, 6}, {1, 0, 0, 0, 0, 0, 2, 0, 0, 0, 0, 0}).to(gpu);
  Tensor out = Tensor::full({2, 1, 3, 3}, 7.0, DType::Float32, gpu);
  backend::get(gpu).augment_images(pixels, draws, table, out, AugmentParams{});
  const std::vector<float> values = out.to_vector<float>();
  for (std::size_t i = 0; i < 9; ++i) EXPECT_EQ(values[i], 0.0f) << i;
  for (std::size_t i = 9; i < 18; ++i) EXPECT_TRUE(std::isnan(values[i])) << i;
}

}  // namespace
}  // namespace md
