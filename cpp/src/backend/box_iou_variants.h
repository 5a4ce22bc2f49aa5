// Backend entry points of the generalized / distance / complete IoU ops;
// arguments are already checked.
#pragma once

#include "detcore/ops/box_iou_variants.h"

namespace detcore::cpu {
void pairwise_box_iou(const PairwiseIoUParams& params, const TensorRef& boxes1, const TensorRef& boxes2,
                      const TensorRef& out);
void box_iou_loss_forward(const BoxIoULossParams& params, const TensorRef& boxes1, const TensorRef& boxes2,
                          const TensorRef& loss);
void box_iou_loss_backward(const BoxIoULossParams& params, const TensorRef& boxes1, const TensorRef& boxes2,
                           const TensorRef& grad_loss, const TensorRef& grad1, const TensorRef& grad2);
}  // namespace detcore::cpu

namespace detcore::cuda {
int64_t box_iou_loss_workspace_bytes(int64_t n);
void pairwise_box_iou(const PairwiseIoUParams& params, const TensorRef& boxes1, const TensorRef& boxes2,
                      const TensorRef& out, Stream stream);
void box_iou_loss_forward(const BoxIoULossParams& params, const TensorRef& boxes1, const TensorRef& boxes2,
                          const TensorRef& loss, const TensorRef* workspace, Stream stream);
void box_iou_loss_backward(const BoxIoULossParams& params, const TensorRef& boxes1, const TensorRef& boxes2,
                           const TensorRef& grad_loss, const TensorRef& grad1, const TensorRef& grad2, Stream stream);
}  // namespace detcore::cuda
