// The HDF5 plumbing of io/: attribute lookups, MD_H5 error messages (call, object, file, HDF5
// stack), blame (md::Error vs md::InputError), handle ownership, and the silencing guard.
#include <gtest/gtest.h>

#include "io/h5.h"
#include "io/h5_handle.h"
#include "io_test_util.h"

namespace md::io {
namespace {

TEST(Attributes, ToStringAndTypedLookups) {
  AttributeMap attributes{
      {"epoch", std::int64_t{3}}, {"lr", 0.1}, {"arch", std::string("vgg11_bn")}};
  EXPECT_EQ(attr_to_string(attributes["epoch"]), "3");
  EXPECT_EQ(attr_to_string(attributes["arch"]), "vgg11_bn");
  EXPECT_EQ(std::stod(attr_to_string(attributes["lr"])), 0.1);
  EXPECT_EQ(attribute_int(attributes, "epoch", "ckpt.h5"), 3);
  EXPECT_EQ(attribute_double(attributes, "epoch", "ckpt.h5"), 3.0);
  EXPECT_EQ(attribute_double(attributes, "lr", "ckpt.h5"), 0.1);
  EXPECT_EQ(attribute_string(attributes, "arch", "ckpt.h5"), "vgg11_bn");
  test::expect_input_error([&] { attribute_int(attributes, "step", "ckpt.h5"); },
                           {"ckpt.h5", "'step'", "missing"});
  test::expect_input_error([&] { attribute_int(attributes, "arch", "ckpt.h5"); },
                           {"ckpt.h5", "'arch'", "integer"});
  test::expect_input_error([&] { attribute_string(attributes, "lr", "ckpt.h5"); },
                           {"ckpt.h5", "'lr'", "string"});
  test::expect_input_error([&] { attribute_double(attributes, "arch", "ckpt.h5"); },
                           {"'arch'", "number"});
}

TEST(H5Check, FailureNamesCallObjectFileAndStack) {
  test::TempDir dir;
  std::string path = dir.file("not_hdf5.h5");
  test::write_bytes(path, std::vector<char>(4096, 'x'));
  h5::ApiGuard guard;
  h5::FileContext library{path, h5::Blame::Library};
  try {
    MD_H5(H5Fopen(path.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT), library, "/model");
    FAIL() << "H5Fopen of a non-HDF5 file succeeded";
  } catch (const InputError&) {
    FAIL() << "Library blame must throw md::Error, not md::InputError";
  } catch (const Error& error) {
    std::string message = error.what();
    EXPECT_NE(message.find("H5Fopen"), std::string::npos) << message;
    EXPECT_EQ(message.find("H5P_DEFAULT"), std::string::npos) << "arguments leak: " << message;
    EXPECT_NE(message.find(path), std::string::npos) << message;
    EXPECT_NE(message.find("'/model'"), std::string::npos) << message;
    EXPECT_NE(message.find("unable to open file"), std::string::npos) << message;
    EXPECT_NE(message.find("test_h5.cpp"), std::string::npos) << message;
  }
  h5::FileContext input{path, h5::Blame::Input};
  test::expect_input_error(
      [&] { MD_H5(H5Fopen(path.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT), input, ""); },
      {path, "H5Fopen"});
}

TEST(H5Check, SuccessReturnsTheResult) {
  h5::ApiGuard guard;
  h5::FileContext context{"memory", h5::Blame::Library};
  hid_t space = MD_H5(H5Screate(H5S_SCALAR), context, "");
  EXPECT_GE(space, 0);
  EXPECT_GE(MD_H5(H5Sclose(space), context, ""), 0);
}

TEST(H5Handle, MoveOnlyOwnershipClosesExactlyOnce) {
  h5::ApiGuard guard;
  h5::FileContext context{"memory", h5::Blame::Library};
  hid_t id = H5I_INVALID_HID;
  {
    h5::Dataspace first(MD_H5(H5Screate(H5S_SCALAR), context, ""));
    id = first.id();
    h5::Dataspace second(std::move(first));
    EXPECT_FALSE(first.valid());
    EXPECT_EQ(second.id(), id);
    h5::Dataspace third;
    third = std::move(second);
    EXPECT_EQ(third.id(), id);
    EXPECT_GT(H5Iis_valid(id), 0);
  }
  EXPECT_EQ(H5Iis_valid(id), 0);
}

TEST(H5Handle, FailedCloseInDestructorIsLoggedNotThrown) {
  h5::ApiGuard guard;
  h5::FileContext context{"memory", h5::Blame::Library};
  hid_t id = MD_H5(H5Screate(H5S_SCALAR), context, "");
  H5Sclose(id);  // the handle below now owns a stale id: its close fails
  testing::internal::CaptureStderr();
  EXPECT_NO_THROW({ h5::Dataspace stale(id); });
  std::string logged = testing::internal::GetCapturedStderr();
  EXPECT_NE(logged.find("H5Sclose failed"), std::string::npos) << logged;
}

TEST(H5Handle, ExplicitCloseThrows) {
  h5::ApiGuard guard;
  h5::FileContext context{"memory", h5::Blame::Library};
  hid_t id = MD_H5(H5Screate(H5S_SCALAR), context, "space");
  H5Sclose(id);
  h5::Dataspace stale(id);
  EXPECT_THROW(stale.close(context, "space"), Error);
  EXPECT_FALSE(stale.valid());
}

TEST(ApiGuard, SilencesHdf5PrintingAndRestoresIt) {
  H5E_auto2_t printer_before = nullptr;
  void* data_before = nullptr;
  H5Eget_auto2(H5E_DEFAULT, &printer_before, &data_before);
  ASSERT_NE(printer_before, nullptr) << "HDF5 prints error stacks by default";
  {
    h5::ApiGuard guard;
    testing::internal::CaptureStderr();
    EXPECT_LT(H5Fopen("/nonexistent/dir/file.h5", H5F_ACC_RDONLY, H5P_DEFAULT), 0);
    std::string printed = testing::internal::GetCapturedStderr();
    EXPECT_EQ(printed, "");
    H5E_auto2_t printer_inside = nullptr;
    void* data_inside = nullptr;
    H5Eget_auto2(H5E_DEFAULT, &printer_inside, &data_inside);
    EXPECT_EQ(printer_inside, nullptr);
    H5Eclear2(H5E_DEFAULT);
  }
  H5E_auto2_t printer_after = nullptr;
  void* data_after = nullptr;
  H5Eget_auto2(H5E_DEFAULT, &printer_after, &data_after);
  EXPECT_EQ(printer_after, printer_before);
  EXPECT_EQ(data_after, data_before);
}

TEST(H5Names, LinkNamesAreChecked) {
  EXPECT_NO_THROW(h5::check_link_name("layer1.0.conv1.weight", "tensor"));
  EXPECT_THROW(h5::check_link_name("a/b", "tensor"), Error);
  EXPECT_THROW(h5::check_link_name("", "tensor"), Error);
  EXPECT_THROW(h5::check_link_name(".", "tensor"), Error);
  EXPECT_EQ(h5::child_path("/", "model"), "/model");
  EXPECT_EQ(h5::child_path("/model", "fc.bias"), "/model/fc.bias");
}

}  // namespace
}  // namespace md::io
