// Pieces shared by the max-pooling ops (roi_pool, spp_pool) on CPU and CUDA:
// the rounding of bin borders, the span of rows or columns a bin covers, the
// initial running maximum and the maximum of one bin.
#pragma once

#include <math.h>
#include <stdint.h>

#include "detcore/macros.h"

namespace detcore::math {

// Rounding and clipping of bin borders, for both compute types.
namespace max_pool_detail {
DETCORE_HOST_DEVICE float round_half_away(float v) { return roundf(v); }
DETCORE_HOST_DEVICE double round_half_away(double v) { return round(v); }
DETCORE_HOST_DEVICE float floor_of(float v) { return floorf(v); }
DETCORE_HOST_DEVICE double floor_of(double v) { return floor(v); }
DETCORE_HOST_DEVICE float ceil_of(float v) { return ceilf(v); }
DETCORE_HOST_DEVICE double ceil_of(double v) { return ceil(v); }

DETCORE_HOST_DEVICE int64_t clip(int64_t v, int64_t extent) { return v < 0 ? 0 : (v > extent ? extent : v); }
}  // namespace max_pool_detail

// Half-open range [begin, end) of rows or columns; empty when end <= begin.
struct PoolSpan {
  int64_t begin, end;
  DETCORE_HOST_DEVICE bool empty() const { return end <= begin; }
};

// The initial value of a bin's running maximum: the lowest finite value of
// the compute type. Only values strictly greater replace it, so a bin holding
// only NaN and -inf keeps it and reports argmax -1.
template <typename T>
DETCORE_HOST_DEVICE T max_pool_lowest();
template <>
DETCORE_HOST_DEVICE float max_pool_lowest<float>() {
  return -3.402823466e+38F;
}
template <>
DETCORE_HOST_DEVICE double max_pool_lowest<double>() {
  return -1.7976931348623157e+308;
}

// The maximum of one bin (rows x cols) of a row-major plane of `width`
// columns in the compute type A, and the index h * W + w of its first
// occurrence in row-major scan order. An empty bin, or one holding only NaN
// and -inf, has index -1 (value 0 when empty). NaN never wins.
template <typename A>
struct PooledMax {
  A value;
  int32_t index;
};

template <typename A, typename T>
DETCORE_HOST_DEVICE PooledMax<A> max_pool_bin(const T* plane, int64_t width, const PoolSpan& rows,
                                              const PoolSpan& cols) {
  PooledMax<A> best{A(0), -1};
  if (rows.empty() || cols.empty()) return best;
  best.value = max_pool_lowest<A>();
  for (int64_t h = rows.begin; h < rows.end; ++h) {
    for (int64_t w = cols.begin; w < cols.end; ++w) {
      const A v = static_cast<A>(plane[h * width + w]);
      if (v > best.value) {  // first maximum in scan order; NaN never wins
        best.value = v;
        best.index = static_cast<int32_t>(h * width + w);
      }
    }
  }
  return best;
}

}  // namespace detcore::math
