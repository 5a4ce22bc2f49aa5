#pragma once

#include "detcore/tensor.h"

namespace detcore {

// Pairwise IoU (no scalar parameters, hence no params struct). boxes1 (N, 4)
// and boxes2 (M, 4) share one dtype and device: floating, with out (N, M) of
// that dtype, or int32 / int64 (areas and intersections exact in int64, the
// ratio in float) with a float32 out, as torchvision.
void box_iou(const TensorRef& boxes1, const TensorRef& boxes2, const TensorRef& out, Stream stream = nullptr);

}  // namespace detcore
