// Backend entry points of nms and batched_nms; arguments are already checked
// and N > 0. `idxs` is nullptr for plain nms.
#pragma once

#include <cstdint>

#include "detcore/tensor.h"

namespace detcore::cpu {
int64_t nms_workspace_size(int64_t num_boxes);
int64_t nms(const TensorRef& boxes, const TensorRef& scores, const TensorRef* idxs, double iou_threshold,
            const TensorRef& keep, const TensorRef& workspace);
}  // namespace detcore::cpu

namespace detcore::cuda {
// Throws ValueError beyond the largest N the kernels' grid covers.
int64_t nms_workspace_size(int64_t num_boxes, Device device);
int64_t nms(const TensorRef& boxes, const TensorRef& scores, const TensorRef* idxs, double iou_threshold,
            const TensorRef& keep, const TensorRef& workspace, Stream stream);
}  // namespace detcore::cuda
