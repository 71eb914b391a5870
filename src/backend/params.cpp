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

}  // namespace md
