// Checkpoints: bit-exact round trip of every dtype and of blobs, order and names kept, the
// tmp + rename commit, the dtype read rule on foreign files, the PyTorch + h5py fixture, and
// corrupt or malformed files.
#include <gtest/gtest.h>

#include <cstring>
#include <filesystem>
#include <limits>

#include "io/checkpoint.h"
#include "io/h5_handle.h"
#include "io_test_util.h"

namespace md::io {
namespace {

template <typename T>
Tensor tensor_of(const Shape& shape, const std::vector<T>& values) {
  return Tensor::from_vector<T>(shape, values);
}

Tensor bfloat16_of(const Shape& shape, const std::vector<std::uint16_t>& bits) {
  Tensor tensor = Tensor::empty(shape, DType::BFloat16);
  EXPECT_EQ(static_cast<std::size_t>(tensor.numel()), bits.size());
  std::memcpy(tensor.raw_data(), bits.data(), bits.size() * sizeof(std::uint16_t));
  return tensor;
}

void expect_bit_identical(const Tensor& actual, const Tensor& expected, const std::string& name) {
  EXPECT_EQ(actual.dtype(), expected.dtype()) << name;
  EXPECT_EQ(actual.shape(), expected.shape()) << name;
  EXPECT_TRUE(actual.device().is_cpu()) << name;
  ASSERT_EQ(actual.nbytes(), expected.nbytes()) << name;
  if (expected.nbytes() == 0) return;
  EXPECT_EQ(std::memcmp(actual.raw_data(), expected.raw_data(), expected.nbytes()), 0) << name;
}

void expect_same_checkpoint(const CheckpointData& actual, const CheckpointData& expected) {
  EXPECT_EQ(actual.attributes, expected.attributes);
  EXPECT_EQ(actual.blobs, expected.blobs);
  ASSERT_EQ(actual.groups.size(), expected.groups.size());
  for (const auto& [group, tensors] : expected.groups) {
    ASSERT_TRUE(actual.groups.count(group)) << group;
    const NamedTensors& read = actual.groups.at(group);
    ASSERT_EQ(read.size(), tensors.size()) << group;
    for (std::size_t i = 0; i < tensors.size(); ++i) {
      EXPECT_EQ(read[i].first, tensors[i].first) << group << " #" << i;
      expect_bit_identical(read[i].second, tensors[i].second, group + "/" + tensors[i].first);
    }
  }
}

CheckpointData sample_checkpoint(float scale) {
  const float inf = std::numeric_limits<float>::infinity();
  CheckpointData data;
  data.attributes = {{"arch", std::string("resnet18_cifar")},
                     {"num_classes", std::int64_t{100}},
                     {"epoch", std::int64_t{-1}},
                     {"step", std::int64_t{std::numeric_limits<std::int64_t>::max()}},
                     {"lr", 0.1 * scale},
                     {"note", std::string("")},
                     {"unicode", std::string("η=0.1, θ′")}};
  // Not in name order: the read must keep the written order.
  data.groups["model"] = {
      {"conv1.weight",
       tensor_of<float>({2, 1, 2, 2}, {scale, -0.0f, inf, -inf, 1e-45f,
                                       std::numeric_limits<float>::quiet_NaN(), 3.4e38f, 0.1f})},
      {"bn1.running_var", tensor_of<float>({2}, {1.0f, 2.0f})},
      {"bn1.num_batches_tracked", tensor_of<std::int32_t>({}, {12345})},
      {"fc.weight", tensor_of<double>({2, 3}, {0.1, -0.2, 1e-310, 1e300, -0.0, 3.0})},
      {"layer1.0.downsample.0.weight", Tensor::zeros({0, 3})},
  };
  data.groups["aux"] = {
      {"aux.0.fc.bias", tensor_of<std::int32_t>({3}, {std::numeric_limits<std::int32_t>::min(), 0,
                                                      std::numeric_limits<std::int32_t>::max()})}};
  data.groups["gen"] = {{"gen.lateral.0.weight",
                         bfloat16_of({2, 3}, {0x3F80, 0x8000, 0xFFFF, 0x7FC1, 0x0001, 0x7F80})}};
  data.groups["buffers"] = {{"images", tensor_of<std::uint8_t>({2, 2}, {0, 1, 254, 255})}};
  data.groups["optim"] = {};
  data.blobs = {{"rng", {1, 2, std::numeric_limits<std::uint64_t>::max(), 0}},
                {"data_order", {5, 3, 1}},
                {"empty", {}}};
  return data;
}

TEST(Checkpoint, RoundTripIsBitExactForEveryDtypeAndBlob) {
  test::TempDir dir;
  std::string path = dir.file("trial.ckpt.h5");
  CheckpointData data = sample_checkpoint(1.5f);
  write_checkpoint(path, data);
  EXPECT_FALSE(std::filesystem::exists(path + ".tmp"));
  expect_same_checkpoint(read_checkpoint(path), data);
}

TEST(Checkpoint, OverwriteCommitsTheNewContents) {
  test::TempDir dir;
  std::string path = dir.file("trial.ckpt.h5");
  write_checkpoint(path, sample_checkpoint(1.0f));
  CheckpointData second = sample_checkpoint(2.0f);
  write_checkpoint(path, second);
  expect_same_checkpoint(read_checkpoint(path), second);
}

TEST(Checkpoint, FailedWriteLeavesThePreviousCheckpointIntact) {
  test::TempDir dir;
  std::string path = dir.file("trial.ckpt.h5");
  CheckpointData first = sample_checkpoint(1.0f);
  write_checkpoint(path, first);
  // The temporary path cannot be created: the write fails before the commit.
  std::filesystem::create_directory(path + ".tmp");
  try {
    write_checkpoint(path, sample_checkpoint(3.0f));
    FAIL() << "write_checkpoint succeeded although " << path << ".tmp is a directory";
  } catch (const InputError& error) {
    FAIL() << "a failed write is not bad input: " << error.what();
  } catch (const Error& error) {
    EXPECT_NE(std::string(error.what()).find(path + ".tmp"), std::string::npos) << error.what();
  }
  EXPECT_TRUE(std::filesystem::is_directory(path + ".tmp")) << "not ours to remove";
  expect_same_checkpoint(read_checkpoint(path), first);
}

TEST(Checkpoint, UnstorableDataIsRejectedBeforeTouchingTheFile) {
  test::TempDir dir;
  std::string path = dir.file("trial.ckpt.h5");
  CheckpointData first = sample_checkpoint(1.0f);
  write_checkpoint(path, first);
  CheckpointData reserved;
  reserved.groups["state"] = {{"x", Tensor::zeros({1})}};
  EXPECT_THROW(write_checkpoint(path, reserved), Error);
  CheckpointData slash;
  slash.groups["model"] = {{"a/b", Tensor::zeros({1})}};
  EXPECT_THROW(write_checkpoint(path, slash), Error);
  CheckpointData duplicate;
  duplicate.groups["model"] = {{"w", Tensor::zeros({1})}, {"w", Tensor::zeros({1})}};
  EXPECT_THROW(write_checkpoint(path, duplicate), Error);
  CheckpointData undefined;
  undefined.groups["model"] = {{"w", Tensor()}};
  EXPECT_THROW(write_checkpoint(path, undefined), Error);
  EXPECT_FALSE(std::filesystem::exists(path + ".tmp"));
  expect_same_checkpoint(read_checkpoint(path), first);
}

TEST(Checkpoint, FindTensor) {
  CheckpointData data = sample_checkpoint(1.0f);
  const Tensor* found = find_tensor(data.groups["model"], "bn1.running_var");
  ASSERT_NE(found, nullptr);
  EXPECT_EQ(found->to_vector<float>(), (std::vector<float>{1.0f, 2.0f}));
  EXPECT_EQ(find_tensor(data.groups["model"], "bn1.bias"), nullptr);
}

// Element i of the k-th float tensor of the fixture (make_h5py_checkpoint.py's formula).
float fixture_value(std::int64_t i, int k) {
  return static_cast<float>(((i * 37 + k * 11) % 101) - 50) / 64.0f;
}

TEST(Checkpoint, LoadsAStateDictWrittenByPyTorchAndH5py) {
  std::string path = std::string(MD_SOURCE_DIR) + "/tests/fixtures/h5py_checkpoint.h5";
  CheckpointData data = read_checkpoint(path);
  EXPECT_EQ(attribute_string(data.attributes, "arch", path), "tiny_resnet");
  EXPECT_EQ(attribute_int(data.attributes, "num_classes", path), 5);
  EXPECT_TRUE(data.blobs.empty());
  ASSERT_EQ(data.groups.size(), 1u);
  const NamedTensors& model = data.groups.at("model");
  struct Expected {
    std::string name;
    Shape shape;
    int k;  // index among float tensors in state-dict order; -1: num_batches_tracked
  };
  const std::vector<Expected> expected = {
      {"conv1.weight", {4, 3, 3, 3}, 0},
      {"bn1.weight", {4}, 1},
      {"bn1.bias", {4}, 2},
      {"bn1.running_mean", {4}, 3},
      {"bn1.running_var", {4}, 4},
      {"bn1.num_batches_tracked", {}, -1},
      {"layer1.0.conv1.weight", {4, 4, 3, 3}, 5},
      {"layer1.0.bn1.weight", {4}, 6},
      {"layer1.0.bn1.bias", {4}, 7},
      {"layer1.0.bn1.running_mean", {4}, 8},
      {"layer1.0.bn1.running_var", {4}, 9},
      {"layer1.0.bn1.num_batches_tracked", {}, -1},
      {"fc.weight", {5, 4}, 10},
      {"fc.bias", {5}, 11},
  };
  ASSERT_EQ(model.size(), expected.size());
  // h5py does not track creation order: tensors come back in name order.
  for (std::size_t i = 1; i < model.size(); ++i) EXPECT_LT(model[i - 1].first, model[i].first);
  for (const Expected& entry : expected) {
    const Tensor* tensor = find_tensor(model, entry.name);
    ASSERT_NE(tensor, nullptr) << entry.name;
    EXPECT_EQ(tensor->shape(), entry.shape) << entry.name;
    if (entry.k < 0) {
      ASSERT_EQ(tensor->dtype(), DType::Int32) << entry.name;
      EXPECT_EQ(tensor->to_vector<std::int32_t>(), (std::vector<std::int32_t>{7})) << entry.name;
      continue;
    }
    ASSERT_EQ(tensor->dtype(), DType::Float32) << entry.name;
    std::vector<float> values = tensor->to_vector<float>();
    for (std::size_t i = 0; i < values.size(); ++i) {
      ASSERT_EQ(values[i], fixture_value(static_cast<std::int64_t>(i), entry.k))
          << entry.name << "[" << i << "]";
    }
  }
}

// Writes /model/<name> with an arbitrary HDF5 type (or a nested group) through the private
// wrappers, for files our writer never produces.
void write_foreign_dataset(const std::string& path, const std::string& name, hid_t file_type,
                           hid_t memory_type, const void* values, hsize_t count) {
  h5::ApiGuard guard;
  h5::FileContext file{path, h5::Blame::Library};
  h5::File handle = h5::create_file(file);
  h5::Group model = h5::create_group(handle.id(), "model", h5::LinkOrder::ByName, file, "/model");
  hsize_t extent[1] = {count};
  h5::Dataspace space(MD_H5(H5Screate_simple(1, extent, nullptr), file, name));
  h5::Dataset dataset(MD_H5(H5Dcreate2(model.id(), name.c_str(), file_type, space.id(), H5P_DEFAULT,
                                       H5P_DEFAULT, H5P_DEFAULT),
                            file, name));
  MD_H5(H5Dwrite(dataset.id(), memory_type, H5S_ALL, H5S_ALL, H5P_DEFAULT, values), file, name);
}

TEST(CheckpointReadRule, IntegersBecomeInt32OrUInt8AndFloatsKeepTheirWidth) {
  test::TempDir dir;
  std::string path = dir.file("foreign.h5");
  std::int16_t shorts[3] = {-7, 0, 300};
  write_foreign_dataset(path, "shorts", H5T_STD_I16BE, H5T_NATIVE_INT16, shorts, 3);
  Tensor read = read_checkpoint(path).groups.at("model").at(0).second;
  EXPECT_EQ(read.dtype(), DType::Int32);
  EXPECT_EQ(read.to_vector<std::int32_t>(), (std::vector<std::int32_t>{-7, 0, 300}));

  std::uint64_t big[2] = {1, 1ull << 40};
  write_foreign_dataset(path, "big", H5T_STD_U64LE, H5T_NATIVE_UINT64, big, 2);
  test::expect_input_error([&] { read_checkpoint(path); }, {path, "/model/big", "int32"});

  double doubles[2] = {0.1, -2.5};
  write_foreign_dataset(path, "doubles", H5T_IEEE_F64BE, H5T_NATIVE_DOUBLE, doubles, 2);
  read = read_checkpoint(path).groups.at("model").at(0).second;
  EXPECT_EQ(read.dtype(), DType::Float64);
  EXPECT_EQ(read.to_vector<double>(), (std::vector<double>{0.1, -2.5}));
}

TEST(CheckpointErrors, MissingCorruptAndTruncatedFilesNameTheFile) {
  test::TempDir dir;
  std::string missing = dir.file("missing.ckpt.h5");
  test::expect_input_error([&] { read_checkpoint(missing); }, {missing, "no such file"});
  test::expect_input_error([&] { read_checkpoint(dir.file("")); }, {"not a regular file"});

  std::string random = dir.file("random.ckpt.h5");
  std::vector<char> bytes(4096);
  for (std::size_t i = 0; i < bytes.size(); ++i) bytes[i] = static_cast<char>((i * 131 + 7) % 251);
  test::write_bytes(random, bytes);
  test::expect_input_error([&] { read_checkpoint(random); }, {random});

  std::string truncated = dir.file("truncated.ckpt.h5");
  CheckpointData data;
  data.groups["model"] = {{"big.weight", Tensor::full({256, 256}, 0.5)}};
  data.attributes["arch"] = std::string("resnet20");
  write_checkpoint(truncated, data);
  test::truncate_file(truncated, 0.6);
  test::expect_input_error([&] { read_checkpoint(truncated); }, {truncated});
}

TEST(CheckpointErrors, MalformedContentsNameTheObject) {
  test::TempDir dir;
  std::string path = dir.file("malformed.h5");
  {
    h5::ApiGuard guard;
    h5::FileContext file{path, h5::Blame::Library};
    h5::File handle = h5::create_file(file);
    h5::Group model = h5::create_group(handle.id(), "model", h5::LinkOrder::ByName, file, "/model");
    h5::Group nested = h5::create_group(model.id(), "layer1", h5::LinkOrder::ByName, file, "");
  }
  test::expect_input_error([&] { read_checkpoint(path); }, {path, "/model/layer1", "dataset"});

  {
    h5::ApiGuard guard;
    h5::FileContext file{path, h5::Blame::Library};
    h5::File handle = h5::create_file(file);
    h5::Dataspace scalar(MD_H5(H5Screate(H5S_SCALAR), file, ""));
    h5::Dataset loose(MD_H5(H5Dcreate2(handle.id(), "weights", H5T_IEEE_F32LE, scalar.id(),
                                       H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT),
                            file, ""));
  }
  test::expect_input_error([&] { read_checkpoint(path); }, {path, "/weights", "group"});

  {
    h5::ApiGuard guard;
    h5::FileContext file{path, h5::Blame::Library};
    h5::File handle = h5::create_file(file);
    h5::Group model = h5::create_group(handle.id(), "model", h5::LinkOrder::ByName, file, "/model");
    h5::Datatype text(MD_H5(H5Tcopy(H5T_C_S1), file, ""));
    MD_H5(H5Tset_size(text.id(), 4), file, "");
    h5::Dataspace scalar(MD_H5(H5Screate(H5S_SCALAR), file, ""));
    h5::Dataset name(MD_H5(H5Dcreate2(model.id(), "name", text.id(), scalar.id(), H5P_DEFAULT,
                                      H5P_DEFAULT, H5P_DEFAULT),
                           file, ""));
    hsize_t two[1] = {2};
    h5::Dataspace pair(MD_H5(H5Screate_simple(1, two, nullptr), file, ""));
    h5::Attribute vector_attribute(
        MD_H5(H5Acreate2(handle.id(), "pair", H5T_STD_I64LE, pair.id(), H5P_DEFAULT, H5P_DEFAULT),
              file, ""));
  }
  test::expect_input_error([&] { read_checkpoint(path); }, {path, "pair", "scalar"});

  std::string blob_path = dir.file("bad_blob.h5");
  {
    h5::ApiGuard guard;
    h5::FileContext file{blob_path, h5::Blame::Library};
    h5::File handle = h5::create_file(file);
    h5::Group state = h5::create_group(handle.id(), "state", h5::LinkOrder::ByName, file, "");
    hsize_t three[1] = {3};
    h5::Dataspace space(MD_H5(H5Screate_simple(1, three, nullptr), file, ""));
    h5::Dataset rng(MD_H5(H5Dcreate2(state.id(), "rng", H5T_IEEE_F32LE, space.id(), H5P_DEFAULT,
                                     H5P_DEFAULT, H5P_DEFAULT),
                          file, ""));
  }
  test::expect_input_error([&] { read_checkpoint(blob_path); }, {blob_path, "/state/rng", "blob"});
}

}  // namespace
}  // namespace md::io
