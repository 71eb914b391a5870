// Tensor: a dense, row-major (contiguous) n-d array of one dtype on one device, sharing its
// Storage with views. Views are contiguous ranges of a storage (a flat parameter buffer is one
// storage; each parameter is a view into it), so a forward pass can run on any buffer of the
// same layout without copies. Ops live in backend/, not here: this file only owns memory,
// shape and host<->device transfer.
#pragma once

#include <cstddef>
#include <cstdint>
#include <initializer_list>
#include <memory>
#include <string>
#include <vector>

#include "core/capture.h"
#include "core/device.h"
#include "core/dtype.h"
#include "core/error.h"

namespace md {

using Shape = std::vector<std::int64_t>;

std::int64_t shape_numel(const Shape& shape);
std::string shape_str(const Shape& shape);

// Owns one allocation on one device. Move-only; the destructor never throws.
class Storage {
 public:
  Storage(std::size_t bytes, Device device);
  ~Storage();
  Storage(const Storage&) = delete;
  Storage& operator=(const Storage&) = delete;

  void* data() const { return data_; }
  std::size_t bytes() const { return bytes_; }
  Device device() const { return device_; }

 private:
  void* data_ = nullptr;
  std::size_t bytes_ = 0;
  Device device_;
};

class Tensor {
 public:
  Tensor() = default;  // undefined tensor: defined() == false

  static Tensor empty(const Shape& shape, DType dtype = DType::Float32,
                      Device device = Device::cpu());
  static Tensor zeros(const Shape& shape, DType dtype = DType::Float32,
                      Device device = Device::cpu());
  static Tensor full(const Shape& shape, double value, DType dtype = DType::Float32,
                     Device device = Device::cpu());
  template <typename T>
  static Tensor from_vector(const Shape& shape, const std::vector<T>& values,
                            Device device = Device::cpu());

  bool defined() const { return storage_ != nullptr; }
  const Shape& shape() const { return shape_; }
  std::int64_t dim(int axis) const;  // negative axes count from the end
  int ndim() const { return static_cast<int>(shape_.size()); }
  std::int64_t numel() const { return numel_; }
  Shape strides() const;  // in elements, row-major
  DType dtype() const { return dtype_; }
  Device device() const { return device_; }
  std::size_t nbytes() const { return static_cast<std::size_t>(numel_) * dtype_size(dtype_); }
  const std::shared_ptr<Storage>& storage() const { return storage_; }
  std::size_t offset() const { return offset_; }  // in elements

  void* raw_data() const;
  template <typename T>
  T* data() const {
    MD_CHECK(dtype_of<T>() == dtype_, "tensor of ", dtype_name(dtype_), " read as ",
             dtype_name(dtype_of<T>()));
    return static_cast<T*>(raw_data());
  }

  // A view with another shape of the same numel, sharing storage.
  Tensor view(const Shape& shape) const;
  // A view of `shape` starting `element_offset` elements into this tensor's range.
  Tensor slice_flat(std::int64_t element_offset, const Shape& shape) const;
  // Rows [begin, end) along axis 0.
  Tensor narrow_rows(std::int64_t begin, std::int64_t end) const;

  Tensor clone() const;
  Tensor to(Device device) const;      // copy to another device (returns *this when already there)
  Tensor to_dtype(DType dtype) const;  // CPU only: converting copy between float types
  void copy_from(const Tensor& src);   // same numel and dtype; any devices
  template <typename T>
  std::vector<T> to_vector() const;  // copies to the host
  double item() const;               // numel() == 1, float types

  bool same_shape(const Tensor& other) const { return shape_ == other.shape_; }
  std::string describe() const;  // "float32[2, 3] on cpu"

 private:
  std::shared_ptr<Storage> storage_;
  std::size_t offset_ = 0;
  Shape shape_;
  std::int64_t numel_ = 0;
  DType dtype_ = DType::Float32;
  Device device_;
};

template <typename T>
Tensor Tensor::from_vector(const Shape& shape, const std::vector<T>& values, Device device) {
  MD_CHECK(shape_numel(shape) == static_cast<std::int64_t>(values.size()), "from_vector: shape ",
           shape_str(shape), " needs ", shape_numel(shape), " values, got ", values.size());
  check_not_capturing("a tensor made from host values (Tensor::from_vector)");
  Tensor host = empty(shape, dtype_of<T>(), Device::cpu());
  std::copy(values.begin(), values.end(), host.data<T>());
  return host.to(device);
}

template <typename T>
std::vector<T> Tensor::to_vector() const {
  MD_CHECK(dtype_of<T>() == dtype_, "to_vector of ", describe(), " as ", dtype_name(dtype_of<T>()));
  check_not_capturing("a read of tensor values on the host (Tensor::to_vector)");
  std::vector<T> values(static_cast<std::size_t>(numel_));
  Tensor host = to(Device::cpu());
  std::copy(host.data<T>(), host.data<T>() + numel_, values.begin());
  return values;
}

}  // namespace md
