// Backend entry points of nms and batched_nms; arguments are already checked
// and N > 0. `idxs` is nullptr for plain nms.
#pragma once

#include <cstdint>

#include "detcore/ops/nms.h"
#include "detcore/tensor.h"

namespace detcore::cpu {
int64_t nms_workspace_bytes(int64_t num_boxes);
int64_t nms(const NmsParams& params, const TensorRef& boxes, const TensorRef& scores, const TensorRef* idxs,
            const TensorRef& keep, const TensorRef& workspace);
}  // namespace detcore::cpu

namespace detcore::cuda {
// Throws ValueError beyond the largest N the kernels' grid covers.
int64_t nms_workspace_bytes(int64_t num_boxes, Device device);
int64_t nms(const NmsParams& params, const TensorRef& boxes, const TensorRef& scores, const TensorRef* idxs,
            const TensorRef& keep, const TensorRef& workspace, Stream stream);
}  // namespace detcore::cuda
