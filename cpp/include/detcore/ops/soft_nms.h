#pragma once

#include <cstdint>

#include "detcore/math/soft_nms.h"
#include "detcore/tensor.h"

namespace detcore {

using math::SoftNMSMethod;

// The rule is in detcore/math/soft_nms.h.
struct SoftNMSParams {
  SoftNMSMethod method = SoftNMSMethod::Gaussian;
  double iou_threshold = 0.3;      // linear only; finite, >= 0
  double sigma = 0.5;              // gaussian only; finite, > 0
  double score_threshold = 0.001;  // not NaN; -inf keeps every box
};

// Bytes of workspace soft_nms needs for num_boxes boxes of `dtype` on `device`.
int64_t soft_nms_workspace_bytes(const SoftNMSParams& params, Device device, DType dtype, int64_t num_boxes);

// Soft-NMS of boxes (N, 4) with scores (N,) (one floating dtype and device;
// float16 / bfloat16 on CUDA computing in float). idxs: nullptr, or int64
// class ids (N,) for batched soft-NMS (classes never decay each other).
// Writes the kept indices into keep[0, count) (int64 (N,)) and their decayed
// scores into out_scores[0, count) ((N,) of the scores' dtype), in decreasing
// score order, and returns count. workspace: uint8, at least
// soft_nms_workspace_bytes(...) long, 16-byte aligned. On CUDA the call runs
// on `stream` and waits for it once, to read the count.
int64_t soft_nms(const SoftNMSParams& params, const TensorRef& boxes, const TensorRef& scores, const TensorRef* idxs,
                 const TensorRef& keep, const TensorRef& out_scores, const TensorRef& workspace,
                 Stream stream = nullptr);

}  // namespace detcore
