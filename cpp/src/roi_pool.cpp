#include "detcore/ops/roi_pool.h"

#include <cstdint>

#include "backend/roi_pool.h"
#include "checks.h"
#include "detcore/math/roi_pool.h"
#include "dispatch.h"
#include "rois_checks.h"

namespace detcore {
namespace {

constexpr const char* kPooledLayout = "(K, C, PH, PW)";

void check_params(const RoIPoolParams& p, bool forward) {
  if (p.pooled_height <= 0 || p.pooled_width <= 0) {
    throw_value_error("output_size: expected positive (height, width), got (", p.pooled_height, ", ", p.pooled_width,
                      ")");
  }
  if (forward) rois_checks::spatial_scale(p.spatial_scale);
}

// The pooled tensors (out / argmax or grad_out / argmax) and the RoIs.
void check_pooled(const RoIPoolParams& params, const TensorRef& values, const char* values_name, const TensorRef& boxes,
                  const TensorRef& argmax) {
  check::ndim(values, values_name, 4, kPooledLayout);
  check::floating(values, values_name);
  check::matrix(boxes, "boxes", 5, "(K, 5) [batch_index, x1, y1, x2, y2]");
  check::shape(values, values_name, {boxes.size(0), values.size(1), params.pooled_height, params.pooled_width});
  check::same_dtype(values, values_name, boxes, "boxes");
  check::same_device(values, values_name, boxes, "boxes");
  check::dtype(argmax, "argmax", DType::Int32);
  check::same_device(values, values_name, argmax, "argmax");
  check::shape(argmax, "argmax", {values.size(0), values.size(1), values.size(2), values.size(3)});
}

}  // namespace

void roi_pool_forward(const RoIPoolParams& params, const TensorRef& input, const TensorRef& boxes, const TensorRef& out,
                      const TensorRef& argmax, Stream stream) {
  check_params(params, true);
  check::ndim(input, "input", 4, "(N, C, H, W)");
  check::floating(input, "input");
  check::matrix(boxes, "boxes", 5, "(K, 5) [batch_index, x1, y1, x2, y2]");
  check::same_dtype(input, "input", boxes, "boxes");
  check::same_device(input, "input", boxes, "boxes");
  rois_checks::plane_fits_int32(input, "input");
  check_pooled(params, out, "out", boxes, argmax);
  check::same_dtype(input, "input", out, "out");
  check::same_device(input, "input", out, "out");
  check::shape(out, "out", {boxes.size(0), input.size(1), params.pooled_height, params.pooled_width});
  check::data(input, "input");
  check::data(boxes, "boxes");
  check::data(out, "out");
  check::data(argmax, "argmax");
  if (!boxes.is_cuda()) rois_checks::batch_indices(boxes, input.size(0));
  if (out.numel() == 0) return;
  DETCORE_DEVICE_DISPATCH(input, "roi_pool", cpu::roi_pool_forward(params, input, boxes, out, argmax),
                          cuda::roi_pool_forward(params, input, boxes, out, argmax, stream));
}

void roi_pool_backward(const RoIPoolParams& params, const TensorRef& grad_out, const TensorRef& boxes,
                       const TensorRef& argmax, const TensorRef& grad_input, Stream stream) {
  check_params(params, false);
  check_pooled(params, grad_out, "grad_out", boxes, argmax);
  check::ndim(grad_input, "grad_input", 4, "(N, C, H, W)");
  check::same_dtype(grad_out, "grad_out", grad_input, "grad_input");
  check::same_device(grad_out, "grad_out", grad_input, "grad_input");
  if (grad_input.size(1) != grad_out.size(1)) {
    throw_value_error("grad_input: expected ", grad_out.size(1), " channels (those of grad_out), got shape ",
                      grad_input.shape_string());
  }
  rois_checks::plane_fits_int32(grad_input, "grad_input");
  check::data(grad_out, "grad_out");
  check::data(boxes, "boxes");
  check::data(argmax, "argmax");
  check::data(grad_input, "grad_input");
  if (!boxes.is_cuda()) rois_checks::batch_indices(boxes, grad_input.size(0));
  if (grad_input.numel() == 0) return;
  DETCORE_DEVICE_DISPATCH(grad_out, "roi_pool_backward",
                          cpu::roi_pool_backward(params, grad_out, boxes, argmax, grad_input),
                          cuda::roi_pool_backward(params, grad_out, boxes, argmax, grad_input, stream));
}

}  // namespace detcore
