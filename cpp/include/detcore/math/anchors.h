// Anchor math shared by the CPU and CUDA kernels of make_anchors.
//
// The values and their rounding follow torchvision's AnchorGenerator, so
// anchors (and the detectors trained on them) match bit for bit:
// * a cell anchor is centred on (0, 0), with aspect ratio = height / width:
//   h_ratio = sqrt(ratio), w_ratio = 1 / h_ratio, w = w_ratio * size,
//   h = h_ratio * size, corners round(-w / 2), round(-h / 2), round(w / 2),
//   round(h / 2), all in float32 and rounded half to even (torch.round);
// * the anchor at grid cell (y, x) is the cell anchor shifted by the integer
//   (x * stride_w, y * stride_h), the shift and the cell coordinate each
//   converted to the output type before the sum.
#pragma once

#include <cmath>
#include <cstdint>

#include "detcore/macros.h"
#include "detcore/math/box.h"

namespace detcore::math {

// Round half to even (the current rounding mode, which is to nearest).
DETCORE_HOST_DEVICE float round_half_even(float x) {
#if defined(__CUDA_ARCH__)
  return rintf(x);
#else
  return std::nearbyint(x);
#endif
}

DETCORE_HOST_DEVICE Box<float> cell_anchor(float size, float aspect_ratio) {
#if defined(__CUDA_ARCH__)
  const float h_ratio = sqrtf(aspect_ratio);
#else
  const float h_ratio = std::sqrt(aspect_ratio);
#endif
  const float w_ratio = 1.0f / h_ratio;
  const float w = w_ratio * size;
  const float h = h_ratio * size;
  return {round_half_even(-w / 2.0f), round_half_even(-h / 2.0f), round_half_even(w / 2.0f), round_half_even(h / 2.0f)};
}

// Coordinate `shift + cell` in storage type T, summed in accumulation type A
// (T itself for float and double, float for the half types).
template <typename T, typename A>
DETCORE_HOST_DEVICE T shifted_coordinate(int64_t shift, float cell) {
  const A shift_t = static_cast<A>(static_cast<T>(static_cast<A>(shift)));
  const A cell_t = static_cast<A>(static_cast<T>(cell));
  return static_cast<T>(shift_t + cell_t);
}

// Coordinate c (0..3: x1, y1, x2, y2) of the anchor with cell anchor `cell`
// at grid position (y, x).
template <typename T, typename A>
DETCORE_HOST_DEVICE T anchor_coordinate(const Box<float>& cell, int c, int64_t x, int64_t y, int64_t stride_h,
                                        int64_t stride_w) {
  const float value = c == 0 ? cell.x1 : c == 1 ? cell.y1 : c == 2 ? cell.x2 : cell.y2;
  const int64_t shift = (c % 2 == 0) ? x * stride_w : y * stride_h;
  return shifted_coordinate<T, A>(shift, value);
}

}  // namespace detcore::math
