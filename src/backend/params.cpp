// Shape rules of the parametrized ops (params.h), shared by both backends and by autograd, which
// allocates outputs from them. They validate their arguments: a bad shape or parameter is an
// md::Error that shows the shapes, never a silent wrong size.
#include "backend/params.h"

#include "core/error.h"

namespace md {

Shape conv2d_output_shape(const Shape& x, const Shape& weight, const Conv2dParams& params) {
  MD_CHECK(x.size() == 4, "conv2d: input ", shape_str(x), " is not (N, C, H, W)");
  MD_CHECK(weight.size() == 4, "conv2d: weight ", shape_str(weight), " is not (O, C/groups, K, K)");
  MD_CHECK(params.stride >= 1 && params.padding >= 0 && params.dilation >= 1 && params.groups >= 1,
           "conv2d: invalid parameters stride ", params.stride, ", padding ", params.padding,
           ", dilation ", params.dilation, ", groups ", params.groups);
  const std::int64_t channels = x[1];
  const std::int64_t out_channels = weight[0];
  const std::int64_t kernel = weight[2];
  MD_CHECK(weight[3] == kernel && kernel >= 1, "conv2d: weight ", shape_str(weight),
           " is not a square kernel");
  MD_CHECK(channels % params.groups == 0 && out_channels % params.groups == 0 &&
               weight[1] * params.groups == channels,
           "conv2d: input ", shape_str(x), " and weight ", shape_str(weight),
           " do not match groups ", params.groups);
  const std::int64_t reach = static_cast<std::int64_t>(params.dilation) * (kernel - 1) + 1;
  const std::int64_t padded_height = x[2] + 2 * static_cast<std::int64_t>(params.padding);
  const std::int64_t padded_width = x[3] + 2 * static_cast<std::int64_t>(params.padding);
  MD_CHECK(padded_height >= reach && padded_width >= reach, "conv2d: input ", shape_str(x),
           " with padding ", params.padding, " is smaller than the dilated kernel of weight ",
           shape_str(weight), " (dilation ", params.dilation, ")");
  return {x[0], out_channels, (padded_height - reach) / params.stride + 1,
          (padded_width - reach) / params.stride + 1};
}

Shape pool2d_output_shape(const Shape& x, const Pool2dParams& params) {
  MD_CHECK(x.size() == 4, "pool2d: input ", shape_str(x), " is not (N, C, H, W)");
  MD_CHECK(params.kernel >= 1 && params.stride >= 1 && params.padding >= 0,
           "pool2d: invalid parameters kernel ", params.kernel, ", stride ", params.stride,
           ", padding ", params.padding);
  MD_CHECK(2 * params.padding <= params.kernel, "pool2d: padding ", params.padding,
           " exceeds half the kernel ", params.kernel);
  const std::int64_t padded_height = x[2] + 2 * static_cast<std::int64_t>(params.padding);
  const std::int64_t padded_width = x[3] + 2 * static_cast<std::int64_t>(params.padding);
  MD_CHECK(padded_height >= params.kernel && padded_width >= params.kernel, "pool2d: input ",
           shape_str(x), " with padding ", params.padding, " is smaller than the kernel ",
           params.kernel);
  return {x[0], x[1], (padded_height - params.kernel) / params.stride + 1,
          (padded_width - params.kernel) / params.stride + 1};
}

math::AugmentGeometry augment_geometry(const char* op, const Tensor& pixels, const Tensor& draws,
                                       const Tensor& table, const Tensor& out,
                                       const AugmentParams& params, Device device) {
  for (const Tensor* tensor : {&pixels, &draws, &table, &out}) {
    MD_CHECK(tensor->defined() && tensor->device() == device, op, ": ",
             tensor->defined() ? tensor->describe() : std::string("an undefined tensor"),
             " is not on ", device.str());
  }
  MD_CHECK(pixels.dtype() == DType::UInt8 && pixels.ndim() == 4, op, ": pixels ", pixels.describe(),
           " is not uint8 (N, C, H, W)");
  const std::int64_t channels = pixels.dim(1);
  const std::int64_t height = pixels.dim(2);
  const std::int64_t width = pixels.dim(3);
  MD_CHECK(draws.dtype() == DType::Int32 && draws.ndim() == 2 &&
               draws.dim(1) == AugmentDrawColumn::count,
           op, ": draws ", draws.describe(), " is not int32 (B, ", AugmentDrawColumn::count, ")");
  const Shape table_shape{channels, 256};
  const Shape out_shape{draws.dim(0), channels, height, width};
  MD_CHECK(table.dtype() == DType::Float32 && table.shape() == table_shape, op, ": table ",
           table.describe(), " is not float32 ", shape_str(table_shape));
  MD_CHECK(out.dtype() == DType::Float32 && out.shape() == out_shape, op, ": out ", out.describe(),
           " is not float32 ", shape_str(out_shape));
  MD_CHECK(params.crop_padding >= 0 && params.cutout >= 0, op, ": crop padding ",
           params.crop_padding, " and cutout ", params.cutout, " must be >= 0");
  constexpr std::int64_t kLargestSide = std::int64_t{1} << 20;
  MD_CHECK(channels <= kLargestSide && height <= kLargestSide && width <= kLargestSide, op,
           ": images of ", channels, "x", height, "x", width, " are too large");
  return math::AugmentGeometry{static_cast<int>(channels), static_cast<int>(height),
                               static_cast<int>(width), params.crop_padding, params.cutout};
}

}  // namespace md
