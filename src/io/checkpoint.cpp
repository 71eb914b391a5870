// write_checkpoint / read_checkpoint over the HDF5 C API (io/h5_handle.h): the layout, dtype
// read rule and commit protocol are stated in checkpoint.h. Tensors are contiguous (unchunked)
// datasets written straight from host memory; nothing here interprets names or shapes.
#include "io/checkpoint.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <limits>
#include <set>

#include "core/error.h"
#include "io/h5_handle.h"
#include "io/log_schema.h"

namespace md::io {

namespace {

struct StoredType {
  hid_t file_type = H5I_INVALID_HID;
  hid_t memory_type = H5I_INVALID_HID;
};

// The file and memory types of a dtype; bfloat16 uses `bfloat16` for both (no conversion).
StoredType stored_type(DType dtype, const h5::Datatype& bfloat16) {
  switch (dtype) {
    case DType::Float32:
      return {H5T_IEEE_F32LE, H5T_NATIVE_FLOAT};
    case DType::Float64:
      return {H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE};
    case DType::Int32:
      return {H5T_STD_I32LE, H5T_NATIVE_INT32};
    case DType::UInt8:
      return {H5T_STD_U8LE, H5T_NATIVE_UINT8};
    case DType::BFloat16:
      return {bfloat16.id(), bfloat16.id()};
  }
  MD_CHECK(false, "no HDF5 type for dtype ", dtype_name(dtype));
  return {};
}

h5::Dataspace dataspace_for(const std::vector<hsize_t>& extent, const h5::FileContext& file,
                            std::string_view path) {
  if (extent.empty()) return h5::Dataspace(MD_H5(H5Screate(H5S_SCALAR), file, path));
  return h5::Dataspace(
      MD_H5(H5Screate_simple(static_cast<int>(extent.size()), extent.data(), nullptr), file, path));
}

void write_tensor(hid_t group, const std::string& name, const Tensor& tensor,
                  const h5::Datatype& bfloat16, const h5::FileContext& file,
                  const std::string& path) {
  Tensor host = tensor.to(Device::cpu());
  std::vector<hsize_t> extent(host.shape().begin(), host.shape().end());
  StoredType type = stored_type(host.dtype(), bfloat16);
  h5::Dataspace space = dataspace_for(extent, file, path);
  h5::Dataset dataset(MD_H5(H5Dcreate2(group, name.c_str(), type.file_type, space.id(), H5P_DEFAULT,
                                       H5P_DEFAULT, H5P_DEFAULT),
                            file, path));
  if (host.numel() == 0) return;
  MD_H5(H5Dwrite(dataset.id(), type.memory_type, H5S_ALL, H5S_ALL, H5P_DEFAULT, host.raw_data()),
        file, path);
}

void write_blob(hid_t group, const std::string& name, const std::vector<std::uint64_t>& blob,
                const h5::FileContext& file, const std::string& path) {
  h5::Dataspace space = dataspace_for({blob.size()}, file, path);
  h5::Dataset dataset(MD_H5(H5Dcreate2(group, name.c_str(), H5T_STD_U64LE, space.id(), H5P_DEFAULT,
                                       H5P_DEFAULT, H5P_DEFAULT),
                            file, path));
  if (blob.empty()) return;
  MD_H5(H5Dwrite(dataset.id(), H5T_NATIVE_UINT64, H5S_ALL, H5S_ALL, H5P_DEFAULT, blob.data()), file,
        path);
}

Tensor read_tensor(hid_t group, const std::string& name, const h5::FileContext& file,
                   const std::string& path) {
  h5::Dataset dataset(MD_H5(H5Dopen2(group, name.c_str(), H5P_DEFAULT), file, path));
  std::vector<hsize_t> extent = h5::dataset_extent(dataset, file, path);
  Shape shape(extent.begin(), extent.end());
  h5::Datatype type(MD_H5(H5Dget_type(dataset.id()), file, path));
  H5T_class_t type_class = H5Tget_class(type.id());
  std::size_t type_size = H5Tget_size(type.id());
  auto read_into = [&](const Tensor& tensor, hid_t memory_type) {
    if (tensor.numel() == 0) return;
    MD_H5(H5Dread(dataset.id(), memory_type, H5S_ALL, H5S_ALL, H5P_DEFAULT, tensor.raw_data()),
          file, path);
  };
  if (type_class == H5T_FLOAT) {
    if (h5::is_bfloat16(type.id())) {
      Tensor tensor = Tensor::empty(shape, DType::BFloat16);
      read_into(tensor, h5::bfloat16_type(file).id());
      return tensor;
    }
    Tensor tensor = Tensor::empty(shape, type_size == 8 ? DType::Float64 : DType::Float32);
    read_into(tensor, type_size == 8 ? H5T_NATIVE_DOUBLE : H5T_NATIVE_FLOAT);
    return tensor;
  }
  if (type_class == H5T_INTEGER) {
    if (type_size == 1 && H5Tget_sign(type.id()) == H5T_SGN_NONE) {
      Tensor tensor = Tensor::empty(shape, DType::UInt8);
      read_into(tensor, H5T_NATIVE_UINT8);
      return tensor;
    }
    Tensor tensor = Tensor::empty(shape, DType::Int32);
    std::vector<std::int64_t> wide(static_cast<std::size_t>(tensor.numel()));
    if (!wide.empty()) {
      MD_H5(H5Dread(dataset.id(), H5T_NATIVE_INT64, H5S_ALL, H5S_ALL, H5P_DEFAULT, wide.data()),
            file, path);
    }
    std::int32_t* values = tensor.data<std::int32_t>();
    for (std::size_t i = 0; i < wide.size(); ++i) {
      if (wide[i] < std::numeric_limits<std::int32_t>::min() ||
          wide[i] > std::numeric_limits<std::int32_t>::max()) {
        h5::throw_file_error(
            file, path,
            detail::concat("integer value ", wide[i], " at element ", i, " does not fit in int32"));
      }
      values[i] = static_cast<std::int32_t>(wide[i]);
    }
    return tensor;
  }
  h5::throw_file_error(file, path,
                       "unsupported dataset type for a tensor (not an integer or float type)");
}

std::vector<std::uint64_t> read_blob(hid_t group, const std::string& name,
                                     const h5::FileContext& file, const std::string& path) {
  h5::Dataset dataset(MD_H5(H5Dopen2(group, name.c_str(), H5P_DEFAULT), file, path));
  h5::Datatype type(MD_H5(H5Dget_type(dataset.id()), file, path));
  std::vector<hsize_t> extent = h5::dataset_extent(dataset, file, path);
  if (H5Tget_class(type.id()) != H5T_INTEGER || H5Tget_sign(type.id()) != H5T_SGN_NONE ||
      extent.size() != 1) {
    h5::throw_file_error(file, path, "a /state blob must be a 1-D unsigned integer dataset");
  }
  std::vector<std::uint64_t> blob(static_cast<std::size_t>(extent[0]));
  if (!blob.empty()) {
    MD_H5(H5Dread(dataset.id(), H5T_NATIVE_UINT64, H5S_ALL, H5S_ALL, H5P_DEFAULT, blob.data()),
          file, path);
  }
  return blob;
}

void check_storable(const CheckpointData& data) {
  for (const auto& [name, value] : data.attributes) h5::check_link_name(name, "attribute");
  for (const auto& [group, tensors] : data.groups) {
    h5::check_link_name(group, "checkpoint group");
    MD_CHECK(group != kCheckpointStateGroup, "checkpoint group '", group,
             "' is reserved for blobs");
    std::set<std::string> seen;
    for (const auto& [name, tensor] : tensors) {
      h5::check_link_name(name, "tensor");
      MD_CHECK(seen.insert(name).second, "tensor '", name, "' appears twice in group ", group);
      MD_CHECK(tensor.defined(), "tensor '", group, "/", name, "' is undefined");
    }
  }
  for (const auto& [name, blob] : data.blobs) h5::check_link_name(name, "blob");
}

// fsync of a file or directory; `what` names it in the error.
void sync_path(const std::string& path, int flags) {
  int descriptor = ::open(path.c_str(), flags | O_CLOEXEC);
  if (descriptor < 0)
    throw Error(detail::concat(path, ": open for fsync failed: ", std::strerror(errno)));
  int status = ::fsync(descriptor);
  int saved_errno = errno;
  ::close(descriptor);
  if (status != 0)
    throw Error(detail::concat(path, ": fsync failed: ", std::strerror(saved_errno)));
}

void write_contents(const h5::File& handle, const h5::FileContext& file,
                    const CheckpointData& data) {
  hid_t root = handle.id();
  for (const auto& [name, value] : data.attributes) {
    h5::write_attribute(root, name, value, file, "/");
  }
  h5::Datatype bfloat16 = h5::bfloat16_type(file);
  for (const auto& [group_name, tensors] : data.groups) {
    std::string group_path = "/" + group_name;
    h5::Group group = h5::create_group(root, group_name, h5::LinkOrder::Tracked, file, group_path);
    for (const auto& [name, tensor] : tensors) {
      write_tensor(group.id(), name, tensor, bfloat16, file, h5::child_path(group_path, name));
    }
  }
  if (!data.blobs.empty()) {
    std::string group_path = std::string("/") + kCheckpointStateGroup;
    h5::Group group =
        h5::create_group(root, kCheckpointStateGroup, h5::LinkOrder::ByName, file, group_path);
    for (const auto& [name, blob] : data.blobs) {
      write_blob(group.id(), name, blob, file, h5::child_path(group_path, name));
    }
  }
}

}  // namespace

void write_checkpoint(const std::string& path, const CheckpointData& data) {
  check_storable(data);
  h5::ApiGuard guard;
  const std::string temporary = path + ".tmp";
  h5::FileContext file{temporary, h5::Blame::Library};
  // A failed create leaves nothing of ours to remove (the path may be a directory, say).
  h5::File handle = h5::create_file(file);
  try {
    write_contents(handle, file, data);
    h5::flush_file(handle, file);
    handle.close(file, "");
    sync_path(temporary, O_RDONLY);
    if (std::rename(temporary.c_str(), path.c_str()) != 0) {
      throw Error(
          detail::concat("renaming ", temporary, " to ", path, " failed: ", std::strerror(errno)));
    }
    std::filesystem::path directory = std::filesystem::path(path).parent_path();
    sync_path(directory.empty() ? "." : directory.string(), O_RDONLY | O_DIRECTORY);
  } catch (...) {
    handle = h5::File();
    std::error_code ignored;
    std::filesystem::remove(temporary, ignored);
    throw;
  }
}

CheckpointData read_checkpoint(const std::string& path) {
  h5::ApiGuard guard;
  h5::FileContext file{path, h5::Blame::Input};
  h5::File handle = h5::open_file(file, h5::FileMode::ReadOnly);
  CheckpointData data;
  data.attributes = h5::read_attributes(handle.id(), file, "/");
  // A file written by PyTorch + h5py has no version; ours have had one from the start.
  if (data.attributes.count(kSchemaVersionAttribute) != 0) {
    check_schema_version(FileKind::Checkpoint, path,
                         attribute_int(data.attributes, kSchemaVersionAttribute, path));
  }
  for (const h5::Child& child : h5::list_children(handle.id(), file, "/")) {
    std::string group_path = "/" + child.name;
    if (child.kind != h5::ChildKind::GroupLink) {
      h5::throw_file_error(file, group_path, "expected a group at the root of a checkpoint");
    }
    h5::Group group = h5::open_group(handle.id(), child.name, file, group_path);
    bool is_state = child.name == kCheckpointStateGroup;
    NamedTensors* tensors = is_state ? nullptr : &data.groups[child.name];
    for (const h5::Child& entry : h5::list_children(group.id(), file, group_path)) {
      std::string entry_path = h5::child_path(group_path, entry.name);
      if (entry.kind != h5::ChildKind::DatasetLink) {
        h5::throw_file_error(file, entry_path, "expected a dataset (nested groups are not read)");
      }
      if (is_state) {
        data.blobs[entry.name] = read_blob(group.id(), entry.name, file, entry_path);
      } else {
        tensors->emplace_back(entry.name, read_tensor(group.id(), entry.name, file, entry_path));
      }
    }
  }
  return data;
}

Tensor read_array(const std::string& path, const std::string& dataset) {
  h5::ApiGuard guard;
  h5::FileContext file{path, h5::Blame::Input};
  h5::File handle = h5::open_file(file, h5::FileMode::ReadOnly);
  const std::string dataset_path = "/" + dataset;
  if (!h5::link_exists(handle.id(), dataset, file, dataset_path)) {
    h5::throw_file_error(file, dataset_path, "no such dataset");
  }
  return read_tensor(handle.id(), dataset, file, dataset_path);
}

void write_arrays(const std::string& path, const NamedTensors& arrays) {
  std::set<std::string> seen;
  for (const auto& [name, tensor] : arrays) {
    h5::check_link_name(name, "array");
    MD_CHECK(seen.insert(name).second, "array '", name, "' appears twice");
    MD_CHECK(tensor.defined(), "array '", name, "' is undefined");
  }
  h5::ApiGuard guard;
  const std::string temporary = path + ".tmp";
  h5::FileContext file{temporary, h5::Blame::Library};
  h5::File handle = h5::create_file(file);
  try {
    h5::Datatype bfloat16 = h5::bfloat16_type(file);
    for (const auto& [name, tensor] : arrays) {
      write_tensor(handle.id(), name, tensor, bfloat16, file, "/" + name);
    }
    h5::flush_file(handle, file);
    handle.close(file, "");
    if (std::rename(temporary.c_str(), path.c_str()) != 0) {
      throw Error(
          detail::concat("renaming ", temporary, " to ", path, " failed: ", std::strerror(errno)));
    }
  } catch (...) {
    handle = h5::File();
    std::error_code ignored;
    std::filesystem::remove(temporary, ignored);
    throw;
  }
}

const Tensor* find_tensor(const NamedTensors& tensors, const std::string& name) {
  for (const auto& [tensor_name, tensor] : tensors) {
    if (tensor_name == name) return &tensor;
  }
  return nullptr;
}

}  // namespace md::io
