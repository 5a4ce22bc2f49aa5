#include "detcore/ops/nms.h"

#include "backend/nms.h"
#include "checks.h"
#include "dispatch.h"

namespace detcore {
namespace {

// Checks shared by nms and batched_nms; returns N.
int64_t check_nms_args(const NmsParams& params, const TensorRef& boxes, const TensorRef& scores, const TensorRef* idxs,
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
  check::non_negative(params.iou_threshold, "iou_threshold");
  check::dtype(keep, "keep", DType::Int64);
  check::same_device(boxes, "boxes", keep, "keep");
  check::shape(keep, "keep", {n});
  check::dtype(workspace, "workspace", DType::UInt8);
  check::same_device(boxes, "boxes", workspace, "workspace");
  check::ndim(workspace, "workspace", 1, "(W,)");
  if (n == 0) return 0;
  const int64_t needed = nms_workspace_bytes(params, boxes.device, boxes.dtype, n);
  if (workspace.shape[0] < needed) {
    throw_value_error("workspace: expected at least nms_workspace_bytes(..., ", n, ") = ", needed, " bytes, got ",
                      workspace.shape[0]);
  }
  check::data(boxes, "boxes");
  check::data(scores, "scores");
  if (idxs != nullptr) check::data(*idxs, "idxs");
  check::data(keep, "keep");
  check::data(workspace, "workspace");
  return n;
}

int64_t run_nms(const NmsParams& params, const TensorRef& boxes, const TensorRef& scores, const TensorRef* idxs,
                const TensorRef& keep, const TensorRef& workspace, Stream stream, const char* op_name) {
  if (check_nms_args(params, boxes, scores, idxs, keep, workspace) == 0) return 0;
  int64_t count = 0;
  DETCORE_DEVICE_DISPATCH(boxes, op_name, count = cpu::nms(params, boxes, scores, idxs, keep, workspace),
                          count = cuda::nms(params, boxes, scores, idxs, keep, workspace, stream));
  return count;
}

}  // namespace

int64_t nms_workspace_bytes(const NmsParams& params, Device device, DType dtype, int64_t num_boxes) {
  // The layouts are sized for 8-byte elements: the same for every dtype.
  (void)params;
  (void)dtype;
  if (num_boxes < 0) throw_value_error("num_boxes: expected a number >= 0, got ", num_boxes);
  if (num_boxes == 0) return 0;
  TensorRef on_device;
  on_device.device = device;
  int64_t size = 0;
  DETCORE_DEVICE_DISPATCH(on_device, "nms_workspace_bytes", size = cpu::nms_workspace_bytes(num_boxes),
                          size = cuda::nms_workspace_bytes(num_boxes, device));
  return size;
}

int64_t nms(const NmsParams& params, const TensorRef& boxes, const TensorRef& scores, const TensorRef& keep,
            const TensorRef& workspace, Stream stream) {
  return run_nms(params, boxes, scores, nullptr, keep, workspace, stream, "nms");
}

int64_t batched_nms(const NmsParams& params, const TensorRef& boxes, const TensorRef& scores, const TensorRef& idxs,
                    const TensorRef& keep, const TensorRef& workspace, Stream stream) {
  return run_nms(params, boxes, scores, &idxs, keep, workspace, stream, "batched_nms");
}

}  // namespace detcore
