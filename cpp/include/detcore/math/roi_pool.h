// RoI max pooling geometry (Fast R-CNN), shared by the CPU and CUDA kernels.
//
// The arithmetic follows torchvision.ops.roi_pool step by step, in the
// compute type T (float for float32/16/bf16, double for float64):
//   * each corner is scaled by spatial_scale and rounded half away from zero;
//   * the RoI covers (end - start + 1) cells, at least 1, in each direction;
//   * bin i spans [start + floor(i * size / n), start + ceil((i + 1) * size / n)),
//     clipped to the feature map, so neighbouring bins may share a row or
//     column, and a bin outside the map is empty (it outputs 0, argmax -1).
//
// Safety beyond torchvision: a scaled coordinate is clamped to +-2^40 in
// floating point before it is converted to an integer (converting NaN or
// 1e30 to an integer is undefined behaviour), integer arithmetic is 64-bit,
// and an RoI with a NaN corner has only empty bins. Within torchvision's
// defined range (coordinates that fit an int) the results are identical;
// +-inf acts as a coordinate far outside the map.
#pragma once

#include <math.h>
#include <stdint.h>

#include "detcore/macros.h"
#include "detcore/math/max_pool.h"
#include "detcore/math/rois.h"

namespace detcore::math {

namespace roi_pool_detail {
using max_pool_detail::ceil_of;
using max_pool_detail::clip;
using max_pool_detail::floor_of;
using max_pool_detail::round_half_away;

// Scaled coordinate rounded to a cell index. Clamped in floating point first;
// NaN (0 * inf when a huge spatial_scale overflows float) becomes -2^40.
template <typename T>
DETCORE_HOST_DEVICE int64_t to_cell(T scaled) {
  const T limit = T(1099511627776.0);  // 2^40: exact in float, far beyond any feature map
  scaled = scaled >= -limit ? (scaled <= limit ? scaled : limit) : -limit;
  return static_cast<int64_t>(round_half_away(scaled));
}
}  // namespace roi_pool_detail

// The initial value of a bin's running maximum (max_pool_lowest): the
// lowest finite value of the compute type (torchvision uses -FLT_MAX for
// every type; the two agree for float).
template <typename T>
DETCORE_HOST_DEVICE T roi_pool_lowest() {
  return max_pool_lowest<T>();
}

// The RoI's bin grid along one axis: first cell and bin size in cells.
template <typename T>
struct RoiPoolAxis {
  int64_t start;
  T bin_size;
};

// Along one axis: corners c1, c2 in image coordinates, `bins` bins.
template <typename T>
DETCORE_HOST_DEVICE RoiPoolAxis<T> roi_pool_axis(T c1, T c2, T spatial_scale, int64_t bins) {
  const int64_t start = roi_pool_detail::to_cell(c1 * spatial_scale);
  const int64_t end = roi_pool_detail::to_cell(c2 * spatial_scale);
  const int64_t size = end - start + 1 > 1 ? end - start + 1 : 1;
  return {start, static_cast<T>(size) / static_cast<T>(bins)};
}

using RoiPoolSpan = PoolSpan;

// Cells of bin `index` along an axis of `extent` cells, clipped to [0, extent].
template <typename T>
DETCORE_HOST_DEVICE RoiPoolSpan roi_pool_bin(const RoiPoolAxis<T>& axis, int64_t index, int64_t extent) {
  using roi_pool_detail::ceil_of;
  using roi_pool_detail::clip;
  using roi_pool_detail::floor_of;
  // Both products are at most bins * bin_size <= 2^41 + 1: the casts are defined.
  const int64_t lo = static_cast<int64_t>(floor_of(static_cast<T>(index) * axis.bin_size));
  const int64_t hi = static_cast<int64_t>(ceil_of(static_cast<T>(index + 1) * axis.bin_size));
  return {clip(axis.start + lo, extent), clip(axis.start + hi, extent)};
}

// The bin grid of one RoI (x1, y1, x2, y2 in image coordinates).
template <typename T>
struct RoiPoolGrid {
  RoiPoolAxis<T> y, x;
  bool valid;  // false when a corner is NaN: every bin is empty
};

template <typename T>
DETCORE_HOST_DEVICE RoiPoolGrid<T> roi_pool_grid(T x1, T y1, T x2, T y2, T spatial_scale, int64_t pooled_height,
                                                 int64_t pooled_width) {
  // x != x is the portable NaN test on host and device.
  const bool has_nan = x1 != x1 || y1 != y1 || x2 != x2 || y2 != y2;
  if (has_nan) return {{0, T(0)}, {0, T(0)}, false};
  return {roi_pool_axis(y1, y2, spatial_scale, pooled_height), roi_pool_axis(x1, x2, spatial_scale, pooled_width),
          true};
}

template <typename T>
DETCORE_HOST_DEVICE RoiPoolSpan roi_pool_rows(const RoiPoolGrid<T>& grid, int64_t ph, int64_t height) {
  return grid.valid ? roi_pool_bin(grid.y, ph, height) : RoiPoolSpan{0, 0};
}

template <typename T>
DETCORE_HOST_DEVICE RoiPoolSpan roi_pool_cols(const RoiPoolGrid<T>& grid, int64_t pw, int64_t width) {
  return grid.valid ? roi_pool_bin(grid.x, pw, width) : RoiPoolSpan{0, 0};
}

}  // namespace detcore::math
