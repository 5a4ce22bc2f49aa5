// RoIAlign geometry and bilinear sampling shared by the CPU and CUDA kernels.
//
// The arithmetic and its order follow torchvision.ops.roi_align:
//   * the RoI is scaled by spatial_scale and, when aligned, shifted by -0.5;
//     when not aligned its width and height are clamped to >= 1;
//   * each of the pooled_h x pooled_w bins averages a grid_h x grid_w grid of
//     samples (sampling_ratio, or ceil(roi_size / pooled_size) when <= 0) and
//     the average divides by all grid samples, including the ones that fall
//     outside the feature map;
//   * a sample at y < -1 or y > H (x likewise) contributes 0; otherwise y is
//     clamped at 0 and at H - 1 and interpolated bilinearly.
//
// Bilinear interpolation is separable: a sample at (y, x) reads rows
// (y.lo, y.hi) and columns (x.lo, x.hi) with weights y.w_lo * x.w_lo etc., and
// is valid exactly when both its coordinates are. The kernels therefore work
// with per-axis samples (AxisSample) and multiply the two axes' weights.
//
// Non-finite input (the safety rule): a coordinate that is NaN or infinite
// is outside [-1, size], so the sample contributes 0 -- every index that
// reaches memory comes from a coordinate inside [-1, size] and is clamped to
// [0, size - 1]. A NaN or infinite adaptive grid size counts as 0 samples
// (count 1, output 0) and a huge one is capped at kMaxRoIAlignGrid, so a bad RoI
// never makes a kernel loop for ever. A NaN RoI thus pools to 0.
#pragma once

#include <cstdint>

#include "detcore/macros.h"
#include "detcore/math/rois.h"

namespace detcore::math {

// Cap on the sampling grid per axis, the documented bound on one call's work
// (at most 128 x 128 samples per bin): sampling_ratio above it is refused and
// the adaptive grid is capped there, which only RoIs spanning more than 128
// times the output size in feature cells reach.
constexpr int64_t kMaxRoIAlignGrid = 128;

template <typename T>
struct RoIAlignGeometry {
  T start_y, start_x;      // the RoI's top-left corner on the feature map
  T bin_h, bin_w;          // size of one output bin
  int64_t grid_h, grid_w;  // samples per bin along each axis (>= 0)
  T count;                 // the divisor of the average: max(grid_h * grid_w, 1)
};

template <typename T>
DETCORE_HOST_DEVICE int64_t adaptive_grid(T roi_size, int64_t pooled) {
  const T samples = roi_size / static_cast<T>(pooled);
  // NaN and sizes <= 0 give an empty grid; this comparison is false for NaN.
  if (!(samples > T(0))) return 0;
  if (!(samples < static_cast<T>(kMaxRoIAlignGrid))) return kMaxRoIAlignGrid;  // also +inf
  const int64_t whole = static_cast<int64_t>(samples);                         // ceil for positive values
  return static_cast<T>(whole) < samples ? whole + 1 : whole;
}

// `roi` points at [x1, y1, x2, y2] (after the batch index), read as T.
template <typename T, typename S>
DETCORE_HOST_DEVICE RoIAlignGeometry<T> roi_align_geometry(const S* roi, T spatial_scale, bool aligned,
                                                           int64_t pooled_h, int64_t pooled_w, int64_t sampling_ratio) {
  const T offset = aligned ? T(0.5) : T(0);
  RoIAlignGeometry<T> g;
  g.start_x = static_cast<T>(roi[0]) * spatial_scale - offset;
  g.start_y = static_cast<T>(roi[1]) * spatial_scale - offset;
  const T end_x = static_cast<T>(roi[2]) * spatial_scale - offset;
  const T end_y = static_cast<T>(roi[3]) * spatial_scale - offset;
  T roi_w = end_x - g.start_x;
  T roi_h = end_y - g.start_y;
  if (!aligned) {
    // Written so NaN stays NaN, as std::max(roi_w, 1) does in torchvision.
    roi_w = roi_w < T(1) ? T(1) : roi_w;
    roi_h = roi_h < T(1) ? T(1) : roi_h;
  }
  g.bin_h = roi_h / static_cast<T>(pooled_h);
  g.bin_w = roi_w / static_cast<T>(pooled_w);
  g.grid_h = sampling_ratio > 0 ? sampling_ratio : adaptive_grid(roi_h, pooled_h);
  g.grid_w = sampling_ratio > 0 ? sampling_ratio : adaptive_grid(roi_w, pooled_w);
  const T samples = static_cast<T>(g.grid_h) * static_cast<T>(g.grid_w);
  g.count = samples > T(1) ? samples : T(1);
  return g;
}

// Coordinate of sample i (0 <= i < grid) of bin p along one axis, with
// torchvision's order of operations.
template <typename T>
DETCORE_HOST_DEVICE T sample_coordinate(T start, T bin, int64_t p, int64_t i, int64_t grid) {
  return start + static_cast<T>(p) * bin + (static_cast<T>(i) + T(0.5)) * bin / static_cast<T>(grid);
}

// One sample along one axis: it reads positions lo and hi (0 <= lo <= hi <
// size) with weights w_lo and w_hi, or nothing when !valid.
template <typename T>
struct AxisSample {
  bool valid;
  int64_t lo, hi;
  T w_lo, w_hi;
};

template <typename T>
DETCORE_HOST_DEVICE AxisSample<T> axis_sample(T coord, int64_t size) {
  AxisSample<T> s{false, 0, 0, T(0), T(0)};
  // Outside [-1, size], NaN included, or an empty axis: no contribution.
  if (size <= 0 || !(coord >= T(-1) && coord <= static_cast<T>(size))) return s;
  if (coord <= T(0)) coord = T(0);
  s.lo = static_cast<int64_t>(coord);  // coord is in [0, size]: no overflow
  if (s.lo >= size - 1) {
    s.lo = s.hi = size - 1;
    coord = static_cast<T>(s.lo);
  } else {
    s.hi = s.lo + 1;
  }
  s.valid = true;
  s.w_hi = coord - static_cast<T>(s.lo);
  s.w_lo = T(1) - s.w_hi;
  return s;
}

// The samples of bin p whose coordinate may lie in [lower, upper]: a range
// [begin, end) of sample indices that contains every such sample, found by
// inverting the (monotonic) coordinate formula with a safety margin for
// rounding. Callers test each sample exactly; this only bounds the loop, so
// a huge RoI costs work in proportion to the samples that touch the map, not
// to its grid. When the coordinates are not finite, no sample is in range.
struct SampleRange {
  int64_t begin, end;
};

template <typename T>
DETCORE_HOST_DEVICE SampleRange sample_range(T start, T bin, int64_t p, int64_t grid, double lower, double upper) {
  SampleRange r{0, grid};
  if (grid <= 0) return SampleRange{0, 0};
  const double base = static_cast<double>(start) + static_cast<double>(p) * static_cast<double>(bin);
  const double step = static_cast<double>(bin) / static_cast<double>(grid);
  // Non-finite RoI geometry: every coordinate is NaN or infinite.
  if (!(base - base == 0.0) || !(step - step == 0.0)) return SampleRange{0, 0};
  if (step == 0.0) return r;  // every sample at (about) `base`: test them all
  // Rounding of the T arithmetic, in units of samples, plus slack.
  const double eps = sizeof(T) >= 8 ? 1e-15 : 1e-6;
  const double abs_base = base < 0 ? -base : base;
  const double abs_step = step < 0 ? -step : step;
  const double abs_bound = (upper < 0 ? -upper : upper) + (lower < 0 ? -lower : lower);
  const double slack = 2.0 + 8.0 * eps * (abs_base + abs_bound + abs_step * static_cast<double>(grid)) / abs_step;
  double a = (lower - base) / step - 0.5;
  double b = (upper - base) / step - 0.5;
  if (a > b) {
    const double t = a;
    a = b;
    b = t;
  }
  a -= slack;
  b += slack;
  const double g = static_cast<double>(grid);
  if (b < 0.0 || a >= g) return SampleRange{0, 0};
  if (a > 0.0) r.begin = static_cast<int64_t>(a);
  if (b < g) r.end = static_cast<int64_t>(b) + 1;
  return r;
}

}  // namespace detcore::math
