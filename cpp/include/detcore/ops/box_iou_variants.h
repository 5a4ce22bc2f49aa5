#pragma once

#include <cstdint>

#include "detcore/math/box_iou_variants.h"
#include "detcore/ops/focal_loss.h"  // Reduction
#include "detcore/tensor.h"

namespace detcore {

using math::IoUVariant;

// Which pairwise IoU and its eps (ignored by Generalized, which has none).
struct PairwiseIoUParams {
  IoUVariant variant = IoUVariant::Generalized;
  double eps = 1e-7;  // finite, >= 0
};

// generalized_box_iou / distance_box_iou / complete_box_iou, as
// torchvision.ops (formulas in detcore/math/box_iou_variants.h). boxes1
// (N, 4), boxes2 (M, 4) and out (N, M) share one floating dtype and device.
void pairwise_box_iou(const PairwiseIoUParams& params, const TensorRef& boxes1, const TensorRef& boxes2,
                      const TensorRef& out, Stream stream = nullptr);

struct BoxIoULossParams {
  IoUVariant variant = IoUVariant::Generalized;
  Reduction reduction = Reduction::None;
  double eps = 1e-7;  // finite, >= 0
};

// Bytes of workspace box_iou_loss_forward needs for n pairs of `dtype` on `device`
// (CUDA sum / mean: one partial sum per block; 0 otherwise).
int64_t box_iou_loss_workspace_bytes(const BoxIoULossParams& params, Device device, DType dtype, int64_t n);

// generalized / distance / complete box IoU loss of paired boxes, as
// torchvision.ops.*_box_iou_loss. boxes1 and boxes2 (N, 4); loss (N,) for
// Reduction::None, else one element (Mean of no pairs is 0, as torchvision's).
// Sum and Mean are deterministic (chunked on the CPU, a fixed tree on CUDA).
void box_iou_loss_forward(const BoxIoULossParams& params, const TensorRef& boxes1, const TensorRef& boxes2,
                          const TensorRef& loss, const TensorRef* workspace = nullptr, Stream stream = nullptr);

// The gradients of the loss with respect to both boxes: grad_loss is (N,)
// for Reduction::None, else one element (Mean divides it by N); grad1 and
// grad2 (N, 4) are overwritten.
void box_iou_loss_backward(const BoxIoULossParams& params, const TensorRef& boxes1, const TensorRef& boxes2,
                           const TensorRef& grad_loss, const TensorRef& grad1, const TensorRef& grad2,
                           Stream stream = nullptr);

}  // namespace detcore
