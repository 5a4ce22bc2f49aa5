#include "detcore/ops/nms.h"

#include "backend/nms.h"
#include "checks.h"
#include "dispatch.h"

namespace detcore {
namespace {

// Checks shared by nms and batched_nms; returns N.
int64_t check_nms_args(const TensorRef& boxes, const TensorRef& scores, const TensorRef* idxs, double iou_threshold,
                       const TensorRef& keep, const TensorRef& workspace) {
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
  check::non_negative(iou_threshold, "iou_threshold");
  check::dtype(keep, "keep", DType::Int64);
  check::same_device(boxes, "boxes", keep, "keep");
  check::shape(keep, "keep", {n});
  check::dtype(workspace, "workspace", DType::UInt8);
  check::same_device(boxes, "boxes", workspace, "workspace");
  check::ndim(workspace, "workspace", 1, "(W,)");
  if (n == 0) return 0;
  const int64_t needed = nms_workspace_size(n, boxes.device);
  if (workspace.shape[0] < needed) {
    throw_value_error("workspace: expected at least nms_workspace_size(", n, ") = ", needed, " bytes, got ",
                      workspace.shape[0]);
  }
  check::data(boxes, "boxes");
  check::data(scores, "scores");
  if (idxs != nullptr) check::data(*idxs, "idxs");
  check::data(keep, "keep");
  check::data(workspace, "workspace");
  return n;
}

int64_t run_nms(const TensorRef& boxes, const TensorRef& scores, const TensorRef* idxs, double iou_threshold,
                const TensorRef& keep, const TensorRef& workspace, Stream stream, const char* op_name) {
  if (check_nms_args(boxes, scores, idxs, iou_threshold, keep, workspace) == 0) return 0;
  int64_t count = 0;
  DETCORE_DEVICE_DISPATCH(boxes, op_name, count = cpu::nms(boxes, scores, idxs, iou_threshold, keep, workspace),
                          count = cuda::nms(boxes, scores, idxs, iou_threshold, keep, workspace, stream));
  return count;
}

}  // namespace

int64_t nms_workspace_size(int64_t num_boxes, Device device) {
  if (num_boxes < 0) throw_value_error("num_boxes: expected a number >= 0, got ", num_boxes);
  if (num_boxes == 0) return 0;
  TensorRef on_device;
  on_device.device = device;
  int64_t size = 0;
  DETCORE_DEVICE_DISPATCH(on_device, "nms_workspace_size",
                          size = cpu::nms_workspace_size(num_boxes), size = cuda::nms_workspace_size(num_boxes, device));
  return size;
}

int64_t nms(const TensorRef& boxes, const TensorRef& scores, double iou_threshold, const TensorRef& keep,
            const TensorRef& workspace, Stream stream) {
  return run_nms(boxes, scores, nullptr, iou_threshold, keep, workspace, stream, "nms");
}

int64_t batched_nms(const TensorRef& boxes, const TensorRef& scores, const TensorRef& idxs, double iou_threshold,
                    const TensorRef& keep, const TensorRef& workspace, Stream stream) {
  return run_nms(boxes, scores, &idxs, iou_threshold, keep, workspace, stream, "batched_nms");
}

}  // namespace detcore
