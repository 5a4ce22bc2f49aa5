// Backend entry points of roi_align; arguments are already checked.
#pragma once

#include "detcore/ops/roi_align.h"
#include "detcore/tensor.h"

namespace detcore::cpu {
void roi_align_forward(const TensorRef& input, const TensorRef& boxes, const TensorRef& out,
                       const RoIAlignParams& params);
void roi_align_backward(const TensorRef& grad_output, const TensorRef& boxes, const TensorRef& grad_input,
                        const RoIAlignParams& params);
}  // namespace detcore::cpu

namespace detcore::cuda {
void roi_align_forward(const TensorRef& input, const TensorRef& boxes, const TensorRef& out,
                       const RoIAlignParams& params, Stream stream);
void roi_align_backward(const TensorRef& grad_output, const TensorRef& boxes, const TensorRef& grad_input,
                        const TensorRef& workspace, const RoIAlignParams& params, bool deterministic,
                        Stream stream);
}  // namespace detcore::cuda
