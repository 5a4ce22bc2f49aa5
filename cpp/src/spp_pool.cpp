#include "detcore/ops/spp_pool.h"

#include <cstdint>

#include "backend/spp_pool.h"
#include "checks.h"
#include "detcore/math/spp_pool.h"
#include "dispatch.h"
#include "rois_checks.h"

namespace detcore {
namespace {

constexpr const char* kRoisLayout = "(K, 5) [batch_index, x1, y1, x2, y2]";

// The level table the kernels take by value.
math::SppLevels make_levels(const SppPoolParams& params) {
  const auto count = static_cast<int64_t>(params.levels.size());
  if (count < 1 || count > math::kSppMaxLevels) {
    throw_value_error("levels: expected 1 to ", math::kSppMaxLevels, " pyramid levels, got ", count);
  }
  math::SppLevels levels{};
  levels.count = static_cast<int>(count);
  for (int i = 0; i < levels.count; ++i) {
    const int64_t n = params.levels[i];
    if (n < 1 || n > math::kSppMaxLevelSize) {
      throw_value_error("levels: expected bins per side in [1, ", math::kSppMaxLevelSize, "], got ", n);
    }
    levels.size[i] = n;
    levels.first_bin[i + 1] = levels.first_bin[i] + n * n;
    levels.first_side[i + 1] = levels.first_side[i] + n;
  }
  return levels;
}

// The pooled tensors (out / argmax or grad_out / argmax) and the RoIs, for
// `channels` input channels.
void check_pooled(const TensorRef& values, const char* values_name, const TensorRef& boxes, const TensorRef& argmax,
                  int64_t channels, int64_t bins) {
  check::matrix(boxes, "boxes", 5, kRoisLayout);
  check::ndim(values, values_name, 2, "(K, C * bins)");
  check::floating(values, values_name);
  check::same_dtype(values, values_name, boxes, "boxes");
  check::same_device(values, values_name, boxes, "boxes");
  check::shape(values, values_name, {boxes.size(0), channels * bins});
  check::dtype(argmax, "argmax", DType::Int32);
  check::same_device(values, values_name, argmax, "argmax");
  check::shape(argmax, "argmax", {boxes.size(0), channels * bins});
}

}  // namespace

int64_t spp_pool_bins(const SppPoolParams& params) {
  const math::SppLevels levels = make_levels(params);
  return levels.first_bin[levels.count];
}

void spp_pool_forward(const SppPoolParams& params, const TensorRef& input, const TensorRef& boxes, const TensorRef& out,
                      const TensorRef& argmax, Stream stream) {
  const math::SppLevels levels = make_levels(params);
  rois_checks::spatial_scale(params.spatial_scale);
  check::ndim(input, "input", 4, "(N, C, H, W)");
  check::floating(input, "input");
  check::matrix(boxes, "boxes", 5, kRoisLayout);
  check::same_dtype(input, "input", boxes, "boxes");
  check::same_device(input, "input", boxes, "boxes");
  rois_checks::plane_fits_int32(input, "input");
  check_pooled(out, "out", boxes, argmax, input.size(1), levels.first_bin[levels.count]);
  check::same_dtype(input, "input", out, "out");
  check::same_device(input, "input", out, "out");
  check::data(input, "input");
  check::data(boxes, "boxes");
  check::data(out, "out");
  check::data(argmax, "argmax");
  if (!boxes.is_cuda()) rois_checks::batch_indices(boxes, input.size(0));
  if (out.numel() == 0) return;
  DETCORE_DEVICE_DISPATCH(input, "spp_pool",
                          cpu::spp_pool_forward(levels, params.spatial_scale, input, boxes, out, argmax),
                          cuda::spp_pool_forward(levels, params.spatial_scale, input, boxes, out, argmax, stream));
}

void spp_pool_backward(const SppPoolParams& params, const TensorRef& grad_out, const TensorRef& boxes,
                       const TensorRef& argmax, const TensorRef& grad_input, Stream stream) {
  const math::SppLevels levels = make_levels(params);
  check::ndim(grad_input, "grad_input", 4, "(N, C, H, W)");
  check::floating(grad_input, "grad_input");
  check_pooled(grad_out, "grad_out", boxes, argmax, grad_input.size(1), levels.first_bin[levels.count]);
  check::same_dtype(grad_out, "grad_out", grad_input, "grad_input");
  check::same_device(grad_out, "grad_out", grad_input, "grad_input");
  rois_checks::plane_fits_int32(grad_input, "grad_input");
  check::data(grad_out, "grad_out");
  check::data(boxes, "boxes");
  check::data(argmax, "argmax");
  check::data(grad_input, "grad_input");
  if (!boxes.is_cuda()) rois_checks::batch_indices(boxes, grad_input.size(0));
  if (grad_input.numel() == 0) return;
  DETCORE_DEVICE_DISPATCH(
      grad_out, "spp_pool_backward", cpu::spp_pool_backward(levels, grad_out, boxes, argmax, grad_input),
      cuda::spp_pool_backward(levels, params.deterministic, grad_out, boxes, argmax, grad_input, stream));
}

}  // namespace detcore
