// Builders of cuDNN descriptors and the device guard (see handles.h).
#include "backend/cuda/handles.h"

#include <limits>

#include "core/error.h"

namespace md::cuda {

DeviceGuard::DeviceGuard(int device) {
  MD_CUDA_CHECK(cudaGetDevice(&previous_));
  if (previous_ != device) {
    MD_CUDA_CHECK(cudaSetDevice(device));
    switched_ = true;
  }
}

DeviceGuard::~DeviceGuard() {
  if (switched_) MD_CUDA_LOG_ON_ERROR(cudaSetDevice(previous_));
}

int to_int(std::int64_t value, const char* what) {
  MD_CHECK(value >= 0 && value <= std::numeric_limits<int>::max(), what, " = ", value,
           " does not fit the int argument of cuDNN/cuBLAS");
  return static_cast<int>(value);
}

Nchw channel_view(const Shape& shape) {
  MD_CHECK(shape.size() >= 2, "per-channel op on a tensor of shape ", shape_str(shape),
           " (needs (N, C, ...))");
  std::int64_t spatial = 1;
  for (std::size_t axis = 2; axis < shape.size(); ++axis) spatial *= shape[axis];
  return Nchw{shape[0], shape[1], spatial, 1};
}

namespace {

cudnnTensorFormat_t format_of(ConvStorage storage) {
  return storage == ConvStorage::Bfloat16Nhwc ? CUDNN_TENSOR_NHWC : CUDNN_TENSOR_NCHW;
}
cudnnDataType_t data_type_of(ConvStorage storage) {
  return storage == ConvStorage::Bfloat16Nhwc ? CUDNN_DATA_BFLOAT16 : CUDNN_DATA_FLOAT;
}

}  // namespace

TensorDescriptor make_tensor_descriptor(const Nchw& dims, ConvStorage storage) {
  TensorDescriptor descriptor;
  MD_CUDNN_CHECK(cudnnSetTensor4dDescriptor(
      descriptor.get(), format_of(storage), data_type_of(storage), to_int(dims.n, "batch size"),
      to_int(dims.c, "channels"), to_int(dims.h, "height"), to_int(dims.w, "width")));
  return descriptor;
}

FilterDescriptor make_filter_descriptor(const Shape& weight_shape, ConvStorage storage) {
  MD_CHECK(weight_shape.size() == 4, "filter of shape ", shape_str(weight_shape));
  FilterDescriptor descriptor;
  MD_CUDNN_CHECK(cudnnSetFilter4dDescriptor(
      descriptor.get(), data_type_of(storage), format_of(storage),
      to_int(weight_shape[0], "output channels"), to_int(weight_shape[1], "input channels"),
      to_int(weight_shape[2], "kernel height"), to_int(weight_shape[3], "kernel width")));
  return descriptor;
}

ConvolutionDescriptor make_convolution_descriptor(const Conv2dParams& params) {
  ConvolutionDescriptor descriptor;
  MD_CUDNN_CHECK(cudnnSetConvolution2dDescriptor(
      descriptor.get(), params.padding, params.padding, params.stride, params.stride,
      params.dilation, params.dilation, CUDNN_CROSS_CORRELATION, CUDNN_DATA_FLOAT));
  MD_CUDNN_CHECK(cudnnSetConvolutionGroupCount(descriptor.get(), params.groups));
  return descriptor;
}

PoolingDescriptor make_pooling_descriptor(PoolKind kind, const Pool2dParams& params,
                                          Determinism determinism) {
  PoolingDescriptor descriptor;
  cudnnPoolingMode_t mode = CUDNN_POOLING_AVERAGE_COUNT_INCLUDE_PADDING;
  if (kind == PoolKind::Max) {
    mode = determinism == Determinism::Deterministic ? CUDNN_POOLING_MAX_DETERMINISTIC
                                                     : CUDNN_POOLING_MAX;
  }
  // NaN propagates like PyTorch's max_pool2d.
  MD_CUDNN_CHECK(cudnnSetPooling2dDescriptor(descriptor.get(), mode, CUDNN_PROPAGATE_NAN,
                                             params.kernel, params.kernel, params.padding,
                                             params.padding, params.stride, params.stride));
  return descriptor;
}

}  // namespace md::cuda
