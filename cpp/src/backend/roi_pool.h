// Backend entry points of roi_pool; arguments are already checked.
#pragma once

#include "detcore/tensor.h"

namespace detcore::cpu {
void roi_pool_forward(const TensorRef& input, const TensorRef& boxes, double spatial_scale, const TensorRef& out,
                      const TensorRef& argmax);
void roi_pool_backward(const TensorRef& grad_out, const TensorRef& boxes, const TensorRef& argmax,
                       const TensorRef& grad_input);
}  // namespace detcore::cpu

namespace detcore::cuda {
void roi_pool_forward(const TensorRef& input, const TensorRef& boxes, double spatial_scale, const TensorRef& out,
                      const TensorRef& argmax, Stream stream);
void roi_pool_backward(const TensorRef& grad_out, const TensorRef& boxes, const TensorRef& argmax,
                       const TensorRef& grad_input, Stream stream, bool deterministic);
}  // namespace detcore::cuda
