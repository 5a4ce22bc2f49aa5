#pragma once

#include <cstdint>
#include <vector>

#include "detcore/tensor.h"

namespace detcore {

// The anchors of one feature level, as torchvision's AnchorGenerator: for
// every grid cell (y, x), row-major, the A = len(aspect_ratios) * len(sizes)
// cell anchors (ratio-major: anchor r * len(sizes) + s has aspect_ratios[r]
// and sizes[s]) shifted by (x * stride_w, y * stride_h).
//
// out is (H, W, A, 4), float32 or float64 (float16, bfloat16 on CUDA), on any
// device; nothing else is read from device memory. sizes and aspect_ratios are
// positive and finite (converted to float32, as torchvision does), strides
// positive.
void grid_anchors(const std::vector<double>& sizes, const std::vector<double>& aspect_ratios, int64_t stride_h,
                  int64_t stride_w, const TensorRef& out, Stream stream = nullptr);

}  // namespace detcore
