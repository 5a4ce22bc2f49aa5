// Backend entry points of encode_boxes / decode_boxes; arguments are already
// checked.
#pragma once

#include "detcore/ops/box_coding.h"
#include "detcore/tensor.h"

namespace detcore::cpu {
void encode_boxes(const BoxCodingParams& params, const TensorRef& reference_boxes, const TensorRef& proposals,
                  const TensorRef& out);
void decode_boxes(const BoxCodingParams& params, const TensorRef& deltas, const TensorRef& boxes, const TensorRef& out);
void decode_boxes_backward(const BoxCodingParams& params, const TensorRef& grad_out, const TensorRef& deltas,
                           const TensorRef& boxes, const TensorRef& grad_deltas, const TensorRef& grad_boxes);
}  // namespace detcore::cpu

namespace detcore::cuda {
void encode_boxes(const BoxCodingParams& params, const TensorRef& reference_boxes, const TensorRef& proposals,
                  const TensorRef& out, Stream stream);
void decode_boxes(const BoxCodingParams& params, const TensorRef& deltas, const TensorRef& boxes, const TensorRef& out,
                  Stream stream);
void decode_boxes_backward(const BoxCodingParams& params, const TensorRef& grad_out, const TensorRef& deltas,
                           const TensorRef& boxes, const TensorRef& grad_deltas, const TensorRef& grad_boxes,
                           Stream stream);
}  // namespace detcore::cuda
