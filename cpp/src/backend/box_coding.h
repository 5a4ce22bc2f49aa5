// Backend entry points of encode_boxes / decode_boxes; arguments are already
// checked.
#pragma once

#include <array>

#include "detcore/tensor.h"

namespace detcore::cpu {
void encode_boxes(const TensorRef& reference_boxes, const TensorRef& proposals, const std::array<double, 4>& weights,
                  const TensorRef& out);
void decode_boxes(const TensorRef& deltas, const TensorRef& boxes, const std::array<double, 4>& weights, double clamp,
                  const TensorRef& out);
void decode_boxes_backward(const TensorRef& grad_out, const TensorRef& deltas, const TensorRef& boxes,
                           const std::array<double, 4>& weights, double clamp, const TensorRef& grad_deltas,
                           const TensorRef& grad_boxes);
}  // namespace detcore::cpu

namespace detcore::cuda {
void encode_boxes(const TensorRef& reference_boxes, const TensorRef& proposals, const std::array<double, 4>& weights,
                  const TensorRef& out, Stream stream);
void decode_boxes(const TensorRef& deltas, const TensorRef& boxes, const std::array<double, 4>& weights, double clamp,
                  const TensorRef& out, Stream stream);
void decode_boxes_backward(const TensorRef& grad_out, const TensorRef& deltas, const TensorRef& boxes,
                           const std::array<double, 4>& weights, double clamp, const TensorRef& grad_deltas,
                           const TensorRef& grad_boxes, Stream stream);
}  // namespace detcore::cuda
