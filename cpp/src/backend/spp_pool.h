// Backend entry points of spp_pool; arguments are already checked.
#pragma once

#include "detcore/math/spp_pool.h"
#include "detcore/tensor.h"

namespace detcore::cpu {
void spp_pool_forward(const math::SppLevels& levels, double spatial_scale, const TensorRef& input,
                      const TensorRef& boxes, const TensorRef& out, const TensorRef& argmax);
void spp_pool_backward(const math::SppLevels& levels, const TensorRef& grad_out, const TensorRef& boxes,
                       const TensorRef& argmax, const TensorRef& grad_input);
}  // namespace detcore::cpu

namespace detcore::cuda {
void spp_pool_forward(const math::SppLevels& levels, double spatial_scale, const TensorRef& input,
                      const TensorRef& boxes, const TensorRef& out, const TensorRef& argmax, Stream stream);
void spp_pool_backward(const math::SppLevels& levels, const TensorRef& grad_out, const TensorRef& boxes,
                       const TensorRef& argmax, const TensorRef& grad_input, bool deterministic, Stream stream);
}  // namespace detcore::cuda
