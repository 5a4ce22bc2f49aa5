// Backend entry points of roi_align; arguments are already checked.
#pragma once

#include "detcore/ops/roi_align.h"
#include "detcore/tensor.h"

namespace detcore::cpu {
void roi_align_forward(const RoIAlignParams& params, const TensorRef& input, const TensorRef& boxes,
                       const TensorRef& out);
void roi_align_backward(const RoIAlignParams& params, const TensorRef& grad_output, const TensorRef& boxes,
                        const TensorRef& grad_input);
}  // namespace detcore::cpu

namespace detcore::cuda {
void roi_align_forward(const RoIAlignParams& params, const TensorRef& input, const TensorRef& boxes,
                       const TensorRef& out, Stream stream);
void roi_align_backward(const RoIAlignParams& params, const TensorRef& grad_output, const TensorRef& boxes,
                        const TensorRef& grad_input, const TensorRef& workspace, Stream stream);
}  // namespace detcore::cuda
