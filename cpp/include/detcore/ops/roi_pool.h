#pragma once

#include <cstdint>

#include "detcore/tensor.h"

namespace detcore {

// Fast R-CNN RoI max pooling, as torchvision.ops.roi_pool.
struct RoIPoolParams {
  int64_t pooled_height = 1;   // positive
  int64_t pooled_width = 1;    // positive
  double spatial_scale = 1.0;  // finite, > 0 (forward only)
  // Backward only. The CPU result is always deterministic. CUDA accumulates
  // with atomicAdd, or, when true, with one warp per input plane adding in a
  // fixed order (bitwise reproducible, slower when planes are few).
  bool deterministic = false;
};

// input (N, C, H, W) floating; boxes (K, 5) RoIs [batch_index, x1, y1, x2, y2]
// of the same dtype and device; out (K, C, PH, PW) of the input's dtype and
// argmax (K, C, PH, PW) int32 receive the maximum of each bin and its index
// h * W + w into the input plane (first in row-major scan order on ties,
// -1 for an empty bin, whose output is 0). NaN feature values never win a
// comparison. On the CPU every batch index must be an integer in [0, N)
// (ValueError otherwise); on CUDA an RoI with an invalid batch index outputs
// zeros and argmax -1.
void roi_pool_forward(const RoIPoolParams& params, const TensorRef& input, const TensorRef& boxes, const TensorRef& out,
                      const TensorRef& argmax, Stream stream = nullptr);

// Gradient of roi_pool_forward with respect to `input`: grad_input (N, C, H, W)
// is overwritten with the sum of grad_out (K, C, PH, PW) over the bins whose
// argmax points at each cell. Argmax entries outside [0, H * W) (and, on
// CUDA, RoIs with an invalid batch index) contribute nothing.
void roi_pool_backward(const RoIPoolParams& params, const TensorRef& grad_out, const TensorRef& boxes,
                       const TensorRef& argmax, const TensorRef& grad_input, Stream stream = nullptr);

}  // namespace detcore
