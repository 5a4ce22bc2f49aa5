#include "detcore/ops/roi_align.h"

#include "backend/roi_align.h"
#include "checks.h"
#include "detcore/math/roi_align.h"
#include "dispatch.h"
#include "rois_checks.h"

namespace detcore {
namespace {

constexpr const char* kBoxesLayout = "(K, 5) [batch_index, x1, y1, x2, y2]";

void check_params(const RoIAlignParams& p) {
  if (p.pooled_height <= 0 || p.pooled_width <= 0) {
    throw_value_error("output_size: expected positive (height, width), got (", p.pooled_height, ", ", p.pooled_width,
                      ")");
  }
  rois_checks::spatial_scale(p.spatial_scale);
  // The adaptive grid is capped at the same size, so no bin samples more.
  if (p.sampling_ratio > math::kMaxRoIAlignGrid) {
    throw_value_error("sampling_ratio: expected at most ", math::kMaxRoIAlignGrid, " samples per axis, got ",
                      p.sampling_ratio);
  }
}

void check_boxes(const TensorRef& boxes, const TensorRef& like, const char* like_name, int64_t batch_size) {
  check::matrix(boxes, "boxes", 5, kBoxesLayout);
  check::same_dtype(like, like_name, boxes, "boxes");
  check::same_device(like, like_name, boxes, "boxes");
  check::data(boxes, "boxes");
  if (!boxes.is_cuda()) rois_checks::batch_indices(boxes, batch_size);
}

}  // namespace

void roi_align_forward(const RoIAlignParams& params, const TensorRef& input, const TensorRef& boxes,
                       const TensorRef& out, Stream stream) {
  check::ndim(input, "input", 4, "(N, C, H, W)");
  check::floating(input, "input");
  check_params(params);
  check::same_dtype(input, "input", out, "out");
  check::same_device(input, "input", out, "out");
  check::data(input, "input");
  check_boxes(boxes, input, "input", input.shape[0]);
  check::shape(out, "out", {boxes.shape[0], input.shape[1], params.pooled_height, params.pooled_width});
  check::data(out, "out");
  if (out.numel() == 0) return;
  DETCORE_DEVICE_DISPATCH(input, "roi_align", cpu::roi_align_forward(params, input, boxes, out),
                          cuda::roi_align_forward(params, input, boxes, out, stream));
}

int64_t roi_align_backward_workspace_bytes(const RoIAlignParams& params, Device device, DType dtype,
                                           int64_t grad_input_numel) {
  if (grad_input_numel < 0) throw_value_error("grad_input_numel: expected a number >= 0, got ", grad_input_numel);
  const bool half = dtype == DType::Float16 || dtype == DType::BFloat16;
  if (device.kind != DeviceKind::CUDA || !half || params.deterministic) return 0;
  return grad_input_numel * static_cast<int64_t>(sizeof(float));
}

void roi_align_backward(const RoIAlignParams& params, const TensorRef& grad_output, const TensorRef& boxes,
                        const TensorRef& grad_input, const TensorRef& workspace, Stream stream) {
  check::ndim(grad_input, "grad_input", 4, "(N, C, H, W)");
  check::floating(grad_input, "grad_input");
  check_params(params);
  check::same_dtype(grad_input, "grad_input", grad_output, "grad_output");
  check::same_device(grad_input, "grad_input", grad_output, "grad_output");
  check::data(grad_input, "grad_input");
  check_boxes(boxes, grad_input, "grad_input", grad_input.shape[0]);
  check::shape(grad_output, "grad_output",
               {boxes.shape[0], grad_input.shape[1], params.pooled_height, params.pooled_width});
  check::data(grad_output, "grad_output");
  check::dtype(workspace, "workspace", DType::UInt8);
  check::same_device(grad_input, "grad_input", workspace, "workspace");
  const int64_t needed =
      roi_align_backward_workspace_bytes(params, grad_input.device, grad_input.dtype, grad_input.numel());
  if (workspace.numel() < needed) {
    throw_value_error("workspace: expected at least ", needed, " bytes, got ", workspace.numel());
  }
  check::data(workspace, "workspace");
  check::aligned(workspace, "workspace");
  if (grad_input.numel() == 0) return;
  DETCORE_DEVICE_DISPATCH(grad_input, "roi_align_backward",
                          cpu::roi_align_backward(params, grad_output, boxes, grad_input),
                          cuda::roi_align_backward(params, grad_output, boxes, grad_input, workspace, stream));
}

}  // namespace detcore
