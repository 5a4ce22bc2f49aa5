// Backend entry points of soft_nms; arguments are already checked and N > 0.
#pragma once

#include "detcore/ops/soft_nms.h"

namespace detcore::cpu {
int64_t soft_nms_workspace_bytes(int64_t num_boxes);
int64_t soft_nms(const SoftNMSParams& params, const TensorRef& boxes, const TensorRef& scores, const TensorRef* idxs,
                 const TensorRef& keep, const TensorRef& out_scores, const TensorRef& workspace);
}  // namespace detcore::cpu

namespace detcore::cuda {
int64_t soft_nms_workspace_bytes(int64_t num_boxes);
int64_t soft_nms(const SoftNMSParams& params, const TensorRef& boxes, const TensorRef& scores, const TensorRef* idxs,
                 const TensorRef& keep, const TensorRef& out_scores, const TensorRef& workspace, Stream stream);
}  // namespace detcore::cuda
