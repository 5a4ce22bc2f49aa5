// The batch index of an RoI row [batch_index, x1, y1, x2, y2], shared by
// roi_align and roi_pool on the CPU and on CUDA.
#pragma once

#include <cstdint>

#include "detcore/macros.h"

namespace detcore::math {

// The image an RoI belongs to: its batch index if that is an integer in
// [0, batch_size), else -1 (NaN and infinities included). The CPU entry
// points refuse -1; the CUDA kernels output zeros for such an RoI.
template <typename T>
DETCORE_HOST_DEVICE int64_t roi_batch_index(T value, int64_t batch_size) {
  if (!(value >= T(0) && value < static_cast<T>(batch_size))) return -1;
  const int64_t index = static_cast<int64_t>(value);  // finite and in range here
  return static_cast<T>(index) == value && index < batch_size ? index : -1;
}

}  // namespace detcore::math
