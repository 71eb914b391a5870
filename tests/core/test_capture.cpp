// CaptureRegion (core/capture.h): inside one, every host round trip of the core throws an
// md::Error naming itself; outside, and after the region ends, the same calls work.
#include <gtest/gtest.h>

#include <cstdint>
#include <string>
#include <vector>

#include "core/capture.h"
#include "core/runtime.h"
#include "core/tensor.h"

namespace md {
namespace {

// Runs `call` and returns the md::Error message it threw ("" when it did not throw).
template <typename Call>
std::string error_of(Call call) {
  try {
    call();
  } catch (const Error& error) {
    return error.what();
  }
  return "";
}

TEST(CaptureRegion, NestsAndEnds) {
  EXPECT_FALSE(capturing());
  {
    CaptureRegion outer;
    EXPECT_TRUE(capturing());
    {
      CaptureRegion inner;
      EXPECT_TRUE(capturing());
    }
    EXPECT_TRUE(capturing());
  }
  EXPECT_FALSE(capturing());
  EXPECT_NO_THROW(check_not_capturing("anything"));
}

TEST(CaptureRegion, HostRoundTripsThrowNamingThemselves) {
  const Tensor scalar = Tensor::full({}, 2.5);
  const Tensor values = Tensor::full({3}, 1.0);
  std::vector<std::string> messages;
  {
    CaptureRegion region;
    messages.push_back(error_of([&] { (void)scalar.item(); }));
    messages.push_back(error_of([&] { (void)values.to_vector<float>(); }));
    messages.push_back(error_of([] { (void)Tensor::from_vector<float>({2}, {1.0f, 2.0f}); }));
    messages.push_back(error_of([] { runtime_for(DeviceType::Cpu).synchronize(Device::cpu()); }));
  }
  const char* names[] = {"Tensor::item", "Tensor::to_vector", "Tensor::from_vector",
                         "synchronizing with the device"};
  ASSERT_EQ(messages.size(), std::size(names));
  for (std::size_t i = 0; i < messages.size(); ++i) {
    EXPECT_NE(messages[i].find(names[i]), std::string::npos) << messages[i];
    EXPECT_NE(messages[i].find("inside a captured step"), std::string::npos) << messages[i];
  }
  // Device work that stays on the device is allowed: copies within it, fills.
  {
    CaptureRegion region;
    Tensor copy = Tensor::empty({3});
    EXPECT_NO_THROW(copy.copy_from(values));
    EXPECT_NO_THROW((void)Tensor::full({4}, 3.0));
  }
  EXPECT_EQ(scalar.item(), 2.5);
  EXPECT_EQ(values.to_vector<float>(), (std::vector<float>{1.0f, 1.0f, 1.0f}));
}

}  // namespace
}  // namespace md
