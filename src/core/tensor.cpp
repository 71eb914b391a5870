#include "core/tensor.h"

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <sstream>

#include "core/runtime.h"

namespace md {

std::int64_t shape_numel(const Shape& shape) {
  std::int64_t numel = 1;
  for (std::int64_t extent : shape) {
    MD_CHECK(extent >= 0, "negative extent in shape ", shape_str(shape));
    numel *= extent;
  }
  return numel;
}

std::string shape_str(const Shape& shape) {
  std::ostringstream out;
  out << "[";
  for (std::size_t i = 0; i < shape.size(); ++i) out << (i ? ", " : "") << shape[i];
  out << "]";
  return out.str();
}

Storage::Storage(std::size_t bytes, Device device) : bytes_(bytes), device_(device) {
  data_ = runtime_for(device.type).allocate(bytes, device);
}

Storage::~Storage() {
  if (data_ != nullptr) runtime_for(device_.type).deallocate(data_, bytes_, device_);
}

Tensor Tensor::empty(const Shape& shape, DType dtype, Device device) {
  Tensor tensor;
  tensor.shape_ = shape;
  tensor.numel_ = shape_numel(shape);
  tensor.dtype_ = dtype;
  tensor.device_ = device;
  tensor.storage_ = std::make_shared<Storage>(tensor.nbytes(), device);
  return tensor;
}

Tensor Tensor::zeros(const Shape& shape, DType dtype, Device device) {
  return full(shape, 0.0, dtype, device);
}

Tensor Tensor::full(const Shape& shape, double value, DType dtype, Device device) {
  // One element of the dtype, then the device's runtime fills the tensor with it.
  unsigned char element[8] = {};
  switch (dtype) {
    case DType::Float32: {
      const float typed = static_cast<float>(value);
      std::memcpy(element, &typed, sizeof(typed));
      break;
    }
    case DType::Float64:
      std::memcpy(element, &value, sizeof(value));
      break;
    case DType::Int32: {
      const auto typed = static_cast<std::int32_t>(value);
      std::memcpy(element, &typed, sizeof(typed));
      break;
    }
    case DType::UInt8:
      element[0] = static_cast<std::uint8_t>(value);
      break;
    case DType::BFloat16:
      MD_CHECK(value == 0.0, "Tensor::full: bfloat16 supports only zeros here");
      break;
  }
  Tensor tensor = empty(shape, dtype, device);
  runtime_for(device.type)
      .fill(tensor.raw_data(), element, dtype_size(dtype), static_cast<std::size_t>(tensor.numel()),
            device);
  return tensor;
}

std::int64_t Tensor::dim(int axis) const {
  int rank = ndim();
  if (axis < 0) axis += rank;
  MD_CHECK(axis >= 0 && axis < rank, "axis ", axis, " out of range for ", describe());
  return shape_[static_cast<std::size_t>(axis)];
}

Shape Tensor::strides() const {
  Shape strides(shape_.size(), 1);
  for (int i = ndim() - 2; i >= 0; --i) {
    strides[static_cast<std::size_t>(i)] =
        strides[static_cast<std::size_t>(i) + 1] * shape_[static_cast<std::size_t>(i) + 1];
  }
  return strides;
}

void* Tensor::raw_data() const {
  MD_CHECK(defined(), "data of an undefined tensor");
  return static_cast<unsigned char*>(storage_->data()) + offset_ * dtype_size(dtype_);
}

Tensor Tensor::view(const Shape& shape) const {
  MD_CHECK(shape_numel(shape) == numel_, "view ", shape_str(shape), " of ", describe());
  Tensor result = *this;
  result.shape_ = shape;
  return result;
}

Tensor Tensor::slice_flat(std::int64_t element_offset, const Shape& shape) const {
  std::int64_t count = shape_numel(shape);
  MD_CHECK(element_offset >= 0 && element_offset + count <= numel_, "slice_flat at ",
           element_offset, " of ", shape_str(shape), " out of ", describe());
  Tensor result = *this;
  result.offset_ = offset_ + static_cast<std::size_t>(element_offset);
  result.shape_ = shape;
  result.numel_ = count;
  return result;
}

Tensor Tensor::narrow_rows(std::int64_t begin, std::int64_t end) const {
  MD_CHECK(ndim() >= 1 && begin >= 0 && begin <= end && end <= shape_[0], "narrow_rows ", begin,
           ":", end, " of ", describe());
  Shape shape = shape_;
  shape[0] = end - begin;
  std::int64_t row = shape_[0] == 0 ? 0 : numel_ / shape_[0];
  return slice_flat(begin * row, shape);
}

Tensor Tensor::clone() const {
  Tensor result = empty(shape_, dtype_, device_);
  result.copy_from(*this);
  return result;
}

Tensor Tensor::to(Device device) const {
  if (device == device_) return *this;
  Tensor result = empty(shape_, dtype_, device);
  result.copy_from(*this);
  return result;
}

Tensor Tensor::to_dtype(DType dtype) const {
  if (dtype == dtype_) return clone();
  MD_CHECK(device_.is_cpu(), "to_dtype runs on the CPU; got ", describe());
  Tensor result = empty(shape_, dtype, device_);
  auto convert = [&](auto* dst) {
    using Dst = std::remove_pointer_t<decltype(dst)>;
    switch (dtype_) {
      case DType::Float32:
        std::transform(data<float>(), data<float>() + numel_, dst,
                       [](float v) { return static_cast<Dst>(v); });
        break;
      case DType::Float64:
        std::transform(data<double>(), data<double>() + numel_, dst,
                       [](double v) { return static_cast<Dst>(v); });
        break;
      case DType::Int32:
        std::transform(data<std::int32_t>(), data<std::int32_t>() + numel_, dst,
                       [](std::int32_t v) { return static_cast<Dst>(v); });
        break;
      case DType::UInt8:
        std::transform(data<std::uint8_t>(), data<std::uint8_t>() + numel_, dst,
                       [](std::uint8_t v) { return static_cast<Dst>(v); });
        break;
      default:
        MD_CHECK(false, "to_dtype from ", dtype_name(dtype_));
    }
  };
  switch (dtype) {
    case DType::Float32:
      convert(result.data<float>());
      break;
    case DType::Float64:
      convert(result.data<double>());
      break;
    case DType::Int32:
      convert(result.data<std::int32_t>());
      break;
    default:
      MD_CHECK(false, "to_dtype to ", dtype_name(dtype));
  }
  return result;
}

void Tensor::copy_from(const Tensor& src) {
  MD_CHECK(src.numel_ == numel_ && src.dtype_ == dtype_, "copy_from ", src.describe(), " into ",
           describe());
  copy_bytes(raw_data(), device_, src.raw_data(), src.device_, nbytes());
}

double Tensor::item() const {
  MD_CHECK(numel_ == 1, "item() of ", describe());
  check_not_capturing("a read of a tensor value on the host (Tensor::item)");
  Tensor host = to(Device::cpu());
  switch (dtype_) {
    case DType::Float32:
      return *host.data<float>();
    case DType::Float64:
      return *host.data<double>();
    case DType::Int32:
      return *host.data<std::int32_t>();
    default:
      MD_CHECK(false, "item() of ", describe());
  }
}

std::string Tensor::describe() const {
  if (!defined()) return "undefined tensor";
  return std::string(dtype_name(dtype_)) + shape_str(shape_) + " on " + device_.str();
}

}  // namespace md
