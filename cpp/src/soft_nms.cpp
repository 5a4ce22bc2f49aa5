#include "detcore/ops/soft_nms.h"

#include <cmath>

#include "backend/soft_nms.h"
#include "checks.h"
#include "dispatch.h"

namespace detcore {

int64_t soft_nms_workspace_bytes(const SoftNMSParams& params, Device device, DType dtype, int64_t num_boxes) {
  (void)dtype;  // arrays of 8-byte slots whatever the dtype
  if (num_boxes < 0) throw_value_error("num_boxes: expected a number >= 0, got ", num_boxes);
  if (num_boxes == 0) return 0;
  TensorRef on_device;
  on_device.device = device;
  int64_t size = 0;
  DETCORE_DEVICE_DISPATCH(on_device, "soft_nms_workspace_bytes", size = cpu::soft_nms_workspace_bytes(num_boxes),
                          size = cuda::soft_nms_workspace_bytes(num_boxes));
  return size;
}

int64_t soft_nms(const SoftNMSParams& params, const TensorRef& boxes, const TensorRef& scores, const TensorRef* idxs,
                 const TensorRef& keep, const TensorRef& out_scores, const TensorRef& workspace, Stream stream) {
  if (params.method != SoftNMSMethod::Linear && params.method != SoftNMSMethod::Gaussian) {
    throw_value_error("method: expected 'gaussian' or 'linear'");
  }
  check::non_negative(params.iou_threshold, "iou_threshold");
  if (!(params.sigma > 0) || std::isinf(params.sigma)) {
    throw_value_error("sigma: expected a finite number > 0, got ", params.sigma);
  }
  if (std::isnan(params.score_threshold)) throw_value_error("score_threshold: expected a number, got nan");
  check::matrix(boxes, "boxes", 4, "(N, 4)");
  check::floating(boxes, "boxes");
  const int64_t n = boxes.shape[0];
  check::same_dtype(boxes, "boxes", scores, "scores");
  check::same_device(boxes, "boxes", scores, "scores");
  check::shape(scores, "scores", {n});
  if (idxs != nullptr) {
    check::dtype(*idxs, "idxs", DType::Int64);
    check::same_device(boxes, "boxes", *idxs, "idxs");
    check::shape(*idxs, "idxs", {n});
  }
  check::dtype(keep, "keep", DType::Int64);
  check::same_device(boxes, "boxes", keep, "keep");
  check::shape(keep, "keep", {n});
  check::same_dtype(boxes, "boxes", out_scores, "out_scores");
  check::same_device(boxes, "boxes", out_scores, "out_scores");
  check::shape(out_scores, "out_scores", {n});
  check::dtype(workspace, "workspace", DType::UInt8);
  check::same_device(boxes, "boxes", workspace, "workspace");
  check::ndim(workspace, "workspace", 1, "(W,)");
  if (n == 0) return 0;
  const int64_t needed = soft_nms_workspace_bytes(params, boxes.device, boxes.dtype, n);
  if (workspace.shape[0] < needed) {
    throw_value_error("workspace: expected at least soft_nms_workspace_bytes(", n, ") = ", needed, " bytes, got ",
                      workspace.shape[0]);
  }
  check::data(boxes, "boxes");
  check::data(scores, "scores");
  if (idxs != nullptr) check::data(*idxs, "idxs");
  check::data(keep, "keep");
  check::data(out_scores, "out_scores");
  check::data(workspace, "workspace");
  check::aligned(workspace, "workspace");
  int64_t count = 0;
  DETCORE_DEVICE_DISPATCH(boxes, "soft_nms",
                          count = cpu::soft_nms(params, boxes, scores, idxs, keep, out_scores, workspace),
                          count = cuda::soft_nms(params, boxes, scores, idxs, keep, out_scores, workspace, stream));
  return count;
}

}  // namespace detcore
