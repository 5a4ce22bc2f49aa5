#pragma once

#include <cstdint>

#include "detcore/tensor.h"

namespace detcore {

// Non-maximum suppression, as torchvision.ops.nms / batched_nms.
struct NmsParams {
  // A box is dropped when its IoU with a kept, higher-ranked box is strictly
  // greater. Finite, >= 0.
  double iou_threshold = 0.5;
};

// boxes (N, 4) and scores (N,) share one floating dtype and device (float16
// and bfloat16 are compared with a float IoU). Writes the indices of the kept
// boxes into keep[0, count) in the visiting order (decreasing score, equal
// scores by lower index, NaN scores last; see detcore/math/nms.h) and returns
// count. keep is a caller-allocated int64 (N,) array; workspace a uint8 (W,)
// array with W >= nms_workspace_bytes(...) on the same device. On CUDA the
// call runs on `stream` and waits for it once, to read the count.
int64_t nms(const NmsParams& params, const TensorRef& boxes, const TensorRef& scores, const TensorRef& keep,
            const TensorRef& workspace, Stream stream = nullptr);

// As nms, but boxes whose int64 class ids `idxs` (N,) differ never suppress
// each other; the kept indices of all classes are in the one visiting order.
int64_t batched_nms(const NmsParams& params, const TensorRef& boxes, const TensorRef& scores, const TensorRef& idxs,
                    const TensorRef& keep, const TensorRef& workspace, Stream stream = nullptr);

// Bytes of workspace nms and batched_nms need for num_boxes boxes of `dtype`
// on `device`.
int64_t nms_workspace_bytes(const NmsParams& params, Device device, DType dtype, int64_t num_boxes);

}  // namespace detcore
