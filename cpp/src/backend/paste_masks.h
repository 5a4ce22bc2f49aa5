// Backend entry points of paste_masks; arguments are already checked and out
// is non-empty.
#pragma once

#include "detcore/ops/paste_masks.h"
#include "detcore/tensor.h"

namespace detcore::cpu {
// params.out_holds_zeros: skip the pixels outside the boxes where they would get 0.
void paste_masks(const PasteMasksParams& params, const TensorRef& masks, const TensorRef& boxes, const TensorRef& out);
}  // namespace detcore::cpu

namespace detcore::cuda {
// Writes every pixel of out (params.out_holds_zeros is not used).
void paste_masks(const PasteMasksParams& params, const TensorRef& masks, const TensorRef& boxes, const TensorRef& out,
                 Stream stream);
}  // namespace detcore::cuda
