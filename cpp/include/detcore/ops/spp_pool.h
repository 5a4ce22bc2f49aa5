#pragma once

#include <cstdint>
#include <vector>

#include "detcore/tensor.h"

namespace detcore {

// Spatial pyramid max pooling of RoIs (SPP-net). See detcore/math/spp_pool.h
// for the exact projection and bin rule.
struct SppPoolParams {
  // Bins per side of each pyramid level, in output order: 1 to 16 levels,
  // each in [1, 1024].
  std::vector<int64_t> levels{6, 3, 2, 1};
  double spatial_scale = 1.0;  // finite, > 0 (forward only)
  // Backward only. The CPU result is always deterministic. CUDA accumulates
  // with atomicAdd, or, when true, with one warp per input plane adding in a
  // fixed order (bitwise reproducible, slower when planes are few).
  bool deterministic = false;
};

// Pooled values per channel: the sum of level^2 over the levels (50 for the
// default 6, 3, 2, 1 pyramid). Refuses levels outside the ranges above.
int64_t spp_pool_bins(const SppPoolParams& params);

// input (N, C, H, W) floating (float16/bfloat16 computed in float); boxes (K, 5) RoIs [batch_index, x1, y1, x2, y2]
// of the same dtype and device; out (K, C * spp_pool_bins(params)) of the
// input's dtype and argmax of that shape, int32, receive each bin's maximum
// and its index h * W + w into the input plane (first maximum in row-major
// scan order, -1 for an empty bin, whose output is 0). A row of out holds the
// levels in order, each level's (C, n, n) block flattened channel-major: the
// concatenation of the flattened level outputs of SPP-net. NaN feature values
// never win a comparison. On the CPU every batch index must be an integer in
// [0, N) (ValueError otherwise); on CUDA an RoI with an invalid batch index
// outputs zeros and argmax -1.
void spp_pool_forward(const SppPoolParams& params, const TensorRef& input, const TensorRef& boxes, const TensorRef& out,
                      const TensorRef& argmax, Stream stream = nullptr);

// Gradient with respect to `input`: grad_input (N, C, H, W) is overwritten
// with the sum of grad_out (K, C * bins) over the bins whose argmax points at
// each cell. Argmax entries outside [0, H * W) (and, on CUDA, RoIs with an
// invalid batch index) contribute nothing. See SppPoolParams::deterministic.
void spp_pool_backward(const SppPoolParams& params, const TensorRef& grad_out, const TensorRef& boxes,
                       const TensorRef& argmax, const TensorRef& grad_input, Stream stream = nullptr);

}  // namespace detcore
