// Pieces shared by the max-pooling ops (roi_pool, spp_pool) on CPU and CUDA:
// the span of rows or columns a bin covers and the initial running maximum.
#pragma once

#include <stdint.h>

#include "detcore/macros.h"

namespace detcore::math {

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

}  // namespace detcore::math
