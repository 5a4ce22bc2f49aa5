// Per-element rules of Soft-NMS (Bodla et al. 2017, "Soft-NMS -- Improving
// Object Detection With One Line of Code") shared by the CPU and CUDA kernels.
//
// The algorithm: repeatedly take the remaining box M with the highest
// (current) score, output it with that score, and multiply the score of every
// other remaining box b by a weight w(iou(M, b)); a box whose score falls
// below score_threshold is discarded.
//   linear:   w = 1 - iou when iou > iou_threshold (strictly, as nms), else 1
//   gaussian: w = exp(-iou^2 / sigma) for every box; iou_threshold is NOT used
//             (the paper's and mmcv's convention)
// Details this library fixes:
// - Order: as nms (detcore/math/nms.h): decreasing score, equal scores take
//   the lower index first, NaN scores rank last (and are never discarded, so
//   such boxes are output last, in index order, with NaN scores).
// - A box is discarded when its score < score_threshold; this applies to the
//   initial scores too (a box that starts below the threshold is never output).
// - A NaN IoU (two empty boxes, NaN coordinates) leaves the score unchanged.
// - The output scores are non-increasing, so the output is in decreasing score
//   order; with batched (per class) soft-NMS, boxes of different classes never
//   decay each other and all classes share this one order.
// The IoU is box.h's; iou_threshold is compared as nms does (nms_threshold_in).
#pragma once

#include <math.h>

#include "detcore/macros.h"
#include "detcore/math/box.h"
#include "detcore/math/nms.h"

namespace detcore::math {

enum class SoftNMSMethod : int { Linear = 0, Gaussian = 1 };

template <typename T>
DETCORE_HOST_DEVICE T exp_of(T x) {
  return exp(x);
}
template <>
DETCORE_HOST_DEVICE float exp_of(float x) {
  return expf(x);
}

// The factor a remaining box's score is multiplied by, given its IoU with the
// box just output. `threshold` comes from nms_threshold_in<T>.
template <typename T>
DETCORE_HOST_DEVICE T soft_nms_weight(T iou, SoftNMSMethod method, T threshold, T sigma) {
  if (iou != iou) return T(1);
  if (method == SoftNMSMethod::Linear) return iou > threshold ? T(1) - iou : T(1);
  return exp_of(-(iou * iou) / sigma);
}

// Does a score rank strictly above another (positions break ties)? NaN last.
template <typename T>
DETCORE_HOST_DEVICE bool score_above(T a, T b) {
  return a > b || (b != b && a == a);
}

}  // namespace detcore::math
