// Box geometry shared by the CPU and CUDA kernels (box_iou, nms, ...).
// Boxes are (x1, y1, x2, y2) in absolute pixels; width is x2 - x1 (no +1).
// The arithmetic and its order match torchvision.ops, so results agree bit
// for bit on the CPU: an inverted box has a negative area, and the IoU of two
// empty boxes is 0 / 0 = NaN.
#pragma once

#include <cstdint>

#include "detcore/macros.h"

namespace detcore::math {

template <typename T>
struct Box {
  T x1, y1, x2, y2;
};

// Reads four consecutive values of any storage type S into accumulation type T.
template <typename T, typename S>
DETCORE_HOST_DEVICE Box<T> load_box(const S* p) {
  return {static_cast<T>(p[0]), static_cast<T>(p[1]), static_cast<T>(p[2]), static_cast<T>(p[3])};
}

template <typename T>
DETCORE_HOST_DEVICE T min_of(T a, T b) {
  return b < a ? b : a;
}

template <typename T>
DETCORE_HOST_DEVICE T max_of(T a, T b) {
  return a < b ? b : a;
}

template <typename T>
DETCORE_HOST_DEVICE T area(const Box<T>& b) {
  return (b.x2 - b.x1) * (b.y2 - b.y1);
}

template <typename T>
DETCORE_HOST_DEVICE T intersection(const Box<T>& a, const Box<T>& b) {
  const T w = max_of(min_of(a.x2, b.x2) - max_of(a.x1, b.x1), T(0));
  const T h = max_of(min_of(a.y2, b.y2) - max_of(a.y1, b.y1), T(0));
  return w * h;
}

// area_a and area_b are area(a) and area(b), passed in so callers that compare
// one box with many compute each area once.
template <typename T>
DETCORE_HOST_DEVICE T iou(const Box<T>& a, T area_a, const Box<T>& b, T area_b) {
  const T inter = intersection(a, b);
  return inter / (area_a + area_b - inter);
}

// The IoU of integer boxes, as torchvision computes it: areas and the
// intersection exact in int64, their ratio in float.
DETCORE_HOST_DEVICE float integer_iou(const Box<int64_t>& a, int64_t area_a, const Box<int64_t>& b, int64_t area_b) {
  const int64_t inter = intersection(a, b);
  return static_cast<float>(inter) / static_cast<float>(area_a + area_b - inter);
}

}  // namespace detcore::math
