// Argument checks shared by the RoI ops (roi_align, roi_pool, spp_pool).
#pragma once

#include <cmath>
#include <cstdint>
#include <limits>

#include "checks.h"
#include "cpu/float_staging.h"
#include "detcore/math/rois.h"

namespace detcore::rois_checks {

inline void spatial_scale(double spatial_scale) {
  if (!(spatial_scale > 0.0) || !std::isfinite(spatial_scale)) {
    throw_value_error("spatial_scale: expected a finite number > 0, got ", spatial_scale);
  }
}

// argmax stores h * W + w as int32.
inline void plane_fits_int32(const TensorRef& t, const char* name) {
  if (t.size(2) * t.size(3) > std::numeric_limits<int32_t>::max()) {
    throw_value_error(name, ": H * W must fit the int32 argmax, got shape ", t.shape_string());
  }
}

// The CPU kernels index the batch with the RoIs' first column; a value that
// is not an integer in [0, batch_size) is refused here. (CUDA guards in the
// kernel instead, so that no device synchronization is needed.)
inline void batch_indices(const TensorRef& boxes, int64_t batch_size) {
  for (int64_t k = 0; k < boxes.size(0); ++k) {
    const double index = cpu::floating_element(boxes, 5 * k);  // exact for every floating dtype
    if (math::roi_batch_index(index, batch_size) < 0) {
      throw_value_error("boxes: the batch index (column 0) of RoI ", k, " must be an integer in [0, ", batch_size,
                        "), got ", index);
    }
  }
}

}  // namespace detcore::rois_checks
