// Per-element rules of non-maximum suppression shared by the CPU and CUDA
// kernels: the order in which boxes are visited and when one box suppresses
// another.
//
// Order: decreasing score; equal scores visit the lower index first (every
// sort used is stable over indices). NaN scores rank below every number,
// -inf included, so a box without a usable score never suppresses one with a
// score. -0.0 and +0.0 are equal scores.
//
// Suppression: box b is suppressed by a kept, higher-ranked box a when
// iou(a, b) > iou_threshold, strictly, with the IoU arithmetic of box.h (a
// NaN IoU never suppresses). The threshold is compared in the IoU's own type:
// rounding the double threshold DOWN to that type gives exactly the result of
// comparing the IoU, widened to double, with the double threshold (as
// torchvision's CPU kernel does), without widening every IoU.
#pragma once

#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>

#include "detcore/macros.h"
#include "detcore/math/box.h"

namespace detcore::math {

// Sort keys whose ASCENDING order is the visiting order above: a float's bit
// pattern made order-preserving as an unsigned integer, then complemented.
DETCORE_HOST_DEVICE uint32_t nms_sort_key(float score) {
  if (score != score) return 0xFFFFFFFFu;  // NaN: last
  score += 0.0f;                           // -0.0 -> +0.0
  uint32_t bits;
  memcpy(&bits, &score, sizeof(bits));
  const uint32_t ordered = (bits & 0x80000000u) ? ~bits : (bits | 0x80000000u);
  return ~ordered;
}

DETCORE_HOST_DEVICE uint64_t nms_sort_key(double score) {
  if (score != score) return ~uint64_t{0};
  score += 0.0;
  uint64_t bits;
  memcpy(&bits, &score, sizeof(bits));
  const uint64_t sign = uint64_t{1} << 63;
  const uint64_t ordered = (bits & sign) ? ~bits : (bits | sign);
  return ~ordered;
}

// The largest T <= threshold (host only: computed once per call).
template <typename T>
inline T nms_threshold_in(double threshold) {
  T t = static_cast<T>(threshold);
  if (static_cast<double>(t) > threshold) t = std::nextafter(t, -std::numeric_limits<T>::infinity());
  return t;
}

// Does the kept box a (area area_a) suppress the lower-ranked box b?
// `threshold` comes from nms_threshold_in<T>.
template <typename T>
DETCORE_HOST_DEVICE bool suppresses(const Box<T>& a, T area_a, const Box<T>& b, T area_b, T threshold) {
  return iou(a, area_a, b, area_b) > threshold;
}

}  // namespace detcore::math
