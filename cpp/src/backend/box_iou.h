// Backend entry points of box_iou; arguments are already checked.
#pragma once

#include "detcore/tensor.h"

namespace detcore::cpu {
void box_iou(const TensorRef& boxes1, const TensorRef& boxes2, const TensorRef& out);
}

namespace detcore::cuda {
void box_iou(const TensorRef& boxes1, const TensorRef& boxes2, const TensorRef& out, Stream stream);
}
