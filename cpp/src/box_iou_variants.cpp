#include "detcore/ops/box_iou_variants.h"

#include "backend/box_iou_variants.h"
#include "checks.h"
#include "dispatch.h"

namespace detcore {
namespace {

void check_variant(IoUVariant variant) {
  if (variant != IoUVariant::Generalized && variant != IoUVariant::Distance && variant != IoUVariant::Complete) {
    throw_value_error("variant: expected generalized, distance or complete");
  }
}

void check_reduction(Reduction reduction) {
  if (reduction != Reduction::None && reduction != Reduction::Sum && reduction != Reduction::Mean) {
    throw_value_error("reduction: expected none, sum or mean");
  }
}

void check_output(const TensorRef& t, const char* name, const TensorRef& boxes1) {
  check::same_dtype(boxes1, "boxes1", t, name);
  check::same_device(boxes1, "boxes1", t, name);
}

// Paired boxes: boxes1 and boxes2 (N, 4) of one floating dtype and device; returns N.
int64_t check_pairs(const BoxIoULossParams& params, const TensorRef& boxes1, const TensorRef& boxes2) {
  check_variant(params.variant);
  check_reduction(params.reduction);
  check::non_negative(params.eps, "eps");
  check::matrix(boxes1, "boxes1", 4, "(N, 4)");
  check::floating(boxes1, "boxes1");
  check_output(boxes2, "boxes2", boxes1);
  check::shape(boxes2, "boxes2", {boxes1.shape[0], 4});
  check::data(boxes1, "boxes1");
  check::data(boxes2, "boxes2");
  return boxes1.shape[0];
}

// (N,) for Reduction::None, else one element.
void check_per_pair(const TensorRef& t, const char* name, const BoxIoULossParams& params, const TensorRef& boxes1,
                    int64_t n) {
  check_output(t, name, boxes1);
  if (params.reduction == Reduction::None) {
    check::shape(t, name, {n});
  } else if (t.numel() != 1) {
    throw_value_error(name, ": expected one element for a sum or mean reduction, got shape ", t.shape_string());
  }
  check::data(t, name);
}

}  // namespace

void pairwise_box_iou(const PairwiseIoUParams& params, const TensorRef& boxes1, const TensorRef& boxes2,
                      const TensorRef& out, Stream stream) {
  check_variant(params.variant);
  check::non_negative(params.eps, "eps");
  check::matrix(boxes1, "boxes1", 4, "(N, 4)");
  check::matrix(boxes2, "boxes2", 4, "(M, 4)");
  check::floating(boxes1, "boxes1");
  check::same_dtype(boxes1, "boxes1", boxes2, "boxes2");
  check::same_device(boxes1, "boxes1", boxes2, "boxes2");
  check_output(out, "out", boxes1);
  check::shape(out, "out", {boxes1.shape[0], boxes2.shape[0]});
  if (out.numel() == 0) return;
  check::data(boxes1, "boxes1");
  check::data(boxes2, "boxes2");
  check::data(out, "out");
  DETCORE_DEVICE_DISPATCH(boxes1, "pairwise_box_iou", cpu::pairwise_box_iou(params, boxes1, boxes2, out),
                          cuda::pairwise_box_iou(params, boxes1, boxes2, out, stream));
}

int64_t box_iou_loss_workspace_bytes(const BoxIoULossParams& params, Device device, DType dtype, int64_t n) {
  if (n < 0) throw_value_error("n: expected a number >= 0, got ", n);
  (void)dtype;  // the partial sums are 8 bytes whatever the dtype
  if (device.kind != DeviceKind::CUDA || params.reduction == Reduction::None) return 0;
#ifdef DETCORE_WITH_CUDA
  return cuda::box_iou_loss_workspace_bytes(n);
#else
  return 0;
#endif
}

void box_iou_loss_forward(const BoxIoULossParams& params, const TensorRef& boxes1, const TensorRef& boxes2,
                          const TensorRef& loss, const TensorRef* workspace, Stream stream) {
  const int64_t n = check_pairs(params, boxes1, boxes2);
  check_per_pair(loss, "loss", params, boxes1, n);
  const int64_t needed = box_iou_loss_workspace_bytes(params, boxes1.device, boxes1.dtype, n);
  if (needed > 0) {
    if (workspace == nullptr) throw_value_error("workspace: expected ", needed, " bytes, got none");
    check::dtype(*workspace, "workspace", DType::UInt8);
    check::same_device(boxes1, "boxes1", *workspace, "workspace");
    if (workspace->numel() < needed) {
      throw_value_error("workspace: expected at least ", needed, " bytes, got ", workspace->numel());
    }
    check::data(*workspace, "workspace");
    check::aligned(*workspace, "workspace");
  }
  if (params.reduction == Reduction::None && n == 0) return;
  DETCORE_DEVICE_DISPATCH(boxes1, "box_iou_loss", cpu::box_iou_loss_forward(params, boxes1, boxes2, loss),
                          cuda::box_iou_loss_forward(params, boxes1, boxes2, loss, workspace, stream));
}

void box_iou_loss_backward(const BoxIoULossParams& params, const TensorRef& boxes1, const TensorRef& boxes2,
                           const TensorRef& grad_loss, const TensorRef& grad1, const TensorRef& grad2, Stream stream) {
  const int64_t n = check_pairs(params, boxes1, boxes2);
  check_per_pair(grad_loss, "grad_loss", params, boxes1, n);
  check_output(grad1, "grad1", boxes1);
  check::shape(grad1, "grad1", {n, 4});
  check_output(grad2, "grad2", boxes1);
  check::shape(grad2, "grad2", {n, 4});
  if (n == 0) return;
  check::data(grad1, "grad1");
  check::data(grad2, "grad2");
  DETCORE_DEVICE_DISPATCH(boxes1, "box_iou_loss_backward",
                          cpu::box_iou_loss_backward(params, boxes1, boxes2, grad_loss, grad1, grad2),
                          cuda::box_iou_loss_backward(params, boxes1, boxes2, grad_loss, grad1, grad2, stream));
}

}  // namespace detcore
