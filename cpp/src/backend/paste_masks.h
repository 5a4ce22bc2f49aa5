// Backend entry points of paste_masks; arguments are already checked and out
// is non-empty.
#pragma once

#include <optional>

#include "detcore/tensor.h"

namespace detcore::cpu {
// out_holds_zeros: skip the pixels outside the boxes where they would get 0.
void paste_masks(const TensorRef& masks, const TensorRef& boxes, const TensorRef& out,
                 std::optional<double> threshold, bool out_holds_zeros);
}

namespace detcore::cuda {
void paste_masks(const TensorRef& masks, const TensorRef& boxes, const TensorRef& out,
                 std::optional<double> threshold, Stream stream);
}
