#pragma once

#include <cstdint>
#include <vector>

#include "detcore/tensor.h"

namespace detcore {

struct MakeAnchorsParams {
  std::vector<double> sizes;          // positive and finite (in float32, as torchvision)
  std::vector<double> aspect_ratios;  // positive and finite (in float32)
  int64_t stride_h = 1;               // positive
  int64_t stride_w = 1;               // positive
};

// The anchors of one feature level, as torchvision's AnchorGenerator: for
// every grid cell (y, x), row-major, the A = len(aspect_ratios) * len(sizes)
// cell anchors (ratio-major: anchor r * len(sizes) + s has aspect_ratios[r]
// and sizes[s]) shifted by (x * stride_w, y * stride_h).
//
// out is (H, W, A, 4), float32 or float64 (float16, bfloat16 on CUDA), on any
// device; nothing else is read from device memory.
void make_anchors(const MakeAnchorsParams& params, const TensorRef& out, Stream stream = nullptr);

}  // namespace detcore
