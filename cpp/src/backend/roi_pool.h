// Backend entry points of roi_pool; arguments are already checked.
#pragma once

#include "detcore/ops/roi_pool.h"
#include "detcore/tensor.h"

namespace detcore::cpu {
void roi_pool_forward(const RoIPoolParams& params, const TensorRef& input, const TensorRef& boxes, const TensorRef& out,
                      const TensorRef& argmax);
void roi_pool_backward(const RoIPoolParams& params, const TensorRef& grad_out, const TensorRef& boxes,
                       const TensorRef& argmax, const TensorRef& grad_input);
}  // namespace detcore::cpu

namespace detcore::cuda {
void roi_pool_forward(const RoIPoolParams& params, const TensorRef& input, const TensorRef& boxes, const TensorRef& out,
                      const TensorRef& argmax, Stream stream);
void roi_pool_backward(const RoIPoolParams& params, const TensorRef& grad_out, const TensorRef& boxes,
                       const TensorRef& argmax, const TensorRef& grad_input, Stream stream);
}  // namespace detcore::cuda
