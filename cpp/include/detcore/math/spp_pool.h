// Spatial pyramid pooling of RoIs (SPP-net, He et al. 2014), shared by the
// CPU and CUDA kernels.
//
// Pixel convention: feature cell j (0-based) is centred at image coordinate
// j / spatial_scale, and a box covers the cells whose centres lie strictly
// inside it. That is the projection of the paper's appendix, in the compute
// type T (float for float32/16/bf16, double for float64):
//   first = floor(x1 * spatial_scale) + 1,   last = ceil(x2 * spatial_scale) - 1
// (the same for y), and the RoI's window is the a = last - first + 1 cells
// [first, last]. When no cell centre lies inside the box (a <= 0: boxes under
// about two cells, inverted boxes) the window is the one cell nearest the
// box centre, round((x1 + x2) / 2 * spatial_scale), half away from zero.
//
// A pyramid level of n x n bins splits a window of a cells, per axis, as the
// paper does: bin i spans [first + i * floor(a / n), ... + ceil(a / n)), so
// the bins overlap when n does not divide a and the last may stop short of
// the window's end. When a < n the paper's stride floor(a / n) is 0 (every
// bin would be the first cell); there bin i is the single cell
// first + floor(i * a / n), which spreads the a cells over the n bins in
// order. Bins are clipped to the feature map; a bin outside it is empty and
// outputs 0 (argmax -1), as roi_pool's.
//
// Safety: a scaled coordinate is clamped to +-2^40 in floating point before
// it becomes an integer (NaN from 0 * inf becomes -2^40), integer arithmetic
// is 64-bit, and an RoI with a NaN corner has only empty bins.
#pragma once

#include <math.h>
#include <stdint.h>

#include "detcore/macros.h"
#include "detcore/math/ceil_div.h"
#include "detcore/math/max_pool.h"
#include "detcore/math/rois.h"

namespace detcore::math {

// At most this many pyramid levels, each of at most kSppMaxLevelSize bins a
// side (the entry points refuse more): the level table is passed by value to
// the CUDA kernels and every index product stays far inside int64.
constexpr int kSppMaxLevels = 16;
constexpr int64_t kSppMaxLevelSize = 1024;

// The pyramid: level L has size[L] x size[L] bins; its bins come after
// first_bin[L] = sum of size^2 over the earlier levels, its per-axis spans
// after first_side[L] = sum of size over the earlier levels.
struct SppLevels {
  int count;
  int64_t size[kSppMaxLevels];
  int64_t first_bin[kSppMaxLevels + 1];
  int64_t first_side[kSppMaxLevels + 1];
};

namespace spp_pool_detail {
using max_pool_detail::ceil_of;
using max_pool_detail::clip;
using max_pool_detail::floor_of;
using max_pool_detail::round_half_away;

// Clamped to +-2^40 (exact in float, far beyond any feature map); NaN
// becomes -2^40.
template <typename T>
DETCORE_HOST_DEVICE T clamp_scaled(T scaled) {
  const T limit = T(1099511627776.0);
  return scaled >= -limit ? (scaled <= limit ? scaled : limit) : -limit;
}
}  // namespace spp_pool_detail

// A bin's running maximum starts at max_pool_lowest, as roi_pool's.
template <typename T>
DETCORE_HOST_DEVICE T spp_pool_lowest() {
  return max_pool_lowest<T>();
}

// The RoI's window along one axis: cells [start, start + size), size >= 1.
struct SppAxis {
  int64_t start, size;
};

template <typename T>
DETCORE_HOST_DEVICE SppAxis spp_pool_axis(T c1, T c2, T spatial_scale) {
  using namespace spp_pool_detail;
  const T s1 = clamp_scaled(c1 * spatial_scale), s2 = clamp_scaled(c2 * spatial_scale);
  const int64_t first = static_cast<int64_t>(floor_of(s1)) + 1;
  const int64_t last = static_cast<int64_t>(ceil_of(s2)) - 1;
  if (last >= first) return {first, last - first + 1};
  // No cell centre strictly inside: the cell nearest the centre (both
  // halves are within +-2^40, so the sum cannot overflow).
  return {static_cast<int64_t>(round_half_away((s1 + s2) * T(0.5))), 1};
}

using SppSpan = PoolSpan;

// Cells of bin `index` of `bins` along an axis of `extent` cells.
DETCORE_HOST_DEVICE SppSpan spp_pool_bin(const SppAxis& axis, int64_t index, int64_t bins, int64_t extent) {
  const int64_t window = ceil_div<int64_t>(axis.size, bins);  // ceil(a / n) >= 1
  const int64_t stride = axis.size / bins;                    // floor(a / n)
  const int64_t offset = stride > 0 ? index * stride : index * axis.size / bins;
  const int64_t begin = axis.start + offset;
  return {spp_pool_detail::clip(begin, extent), spp_pool_detail::clip(begin + window, extent)};
}

// The windows of one RoI (x1, y1, x2, y2 in image coordinates).
struct SppGrid {
  SppAxis y, x;
  bool valid;  // false when a corner is NaN: every bin is empty
};

template <typename T>
DETCORE_HOST_DEVICE SppGrid spp_pool_grid(T x1, T y1, T x2, T y2, T spatial_scale) {
  // x != x is the portable NaN test on host and device.
  if (x1 != x1 || y1 != y1 || x2 != x2 || y2 != y2) return {{0, 1}, {0, 1}, false};
  return {spp_pool_axis(y1, y2, spatial_scale), spp_pool_axis(x1, x2, spatial_scale), true};
}

DETCORE_HOST_DEVICE SppSpan spp_pool_rows(const SppGrid& grid, int64_t index, int64_t bins, int64_t height) {
  return grid.valid ? spp_pool_bin(grid.y, index, bins, height) : SppSpan{0, 0};
}

DETCORE_HOST_DEVICE SppSpan spp_pool_cols(const SppGrid& grid, int64_t index, int64_t bins, int64_t width) {
  return grid.valid ? spp_pool_bin(grid.x, index, bins, width) : SppSpan{0, 0};
}

// Where output column `column` of an RoI's row (C * first_bin[count] values:
// level by level, within a level channel-major, then bins row-major) points:
// its level, channel and bin row / column.
struct SppBin {
  int level;
  int64_t channel, row, col;
};

DETCORE_HOST_DEVICE SppBin spp_pool_locate(const SppLevels& levels, int64_t channels, int64_t column) {
  int level = 0;
  while (level + 1 < levels.count && column >= channels * levels.first_bin[level + 1]) ++level;
  const int64_t n = levels.size[level];
  const int64_t within = column - channels * levels.first_bin[level];
  const int64_t bin = within % (n * n);
  return {level, within / (n * n), bin / n, bin % n};
}

}  // namespace detcore::math
