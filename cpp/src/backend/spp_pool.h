// Backend entry points of spp_pool; arguments are already checked. They take
// the level table the entry point derives from SppPoolParams::levels.
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
void spp_pool_backward(const math::SppLevels& levels, bool deterministic, const TensorRef& grad_out,
                       const TensorRef& boxes, const TensorRef& argmax, const TensorRef& grad_input, Stream stream);
}  // namespace detcore::cuda
