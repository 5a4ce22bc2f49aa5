#pragma once

#include "detcore/tensor.h"

namespace detcore {

// Pairwise IoU. boxes1 (N, 4), boxes2 (M, 4) and out (N, M) share one
// floating dtype and one device.
void box_iou(const TensorRef& boxes1, const TensorRef& boxes2, const TensorRef& out, Stream stream = nullptr);

}  // namespace detcore
