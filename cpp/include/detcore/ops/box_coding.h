#pragma once

#include <array>
#include <cmath>

#include "detcore/tensor.h"

namespace detcore {

// Faster R-CNN box coding, as torchvision's BoxCoder (see
// detcore/math/box_coding.h for the formulas).
struct BoxCodingParams {
  // (wx, wy, ww, wh), positive and finite.
  std::array<double, 4> weights{1.0, 1.0, 1.0, 1.0};
  // The largest dw / ww, dh / wh fed to exp when decoding: any number but NaN,
  // +inf turning the clamp off. Not used by encode_boxes.
  double clamp = std::log(1000.0 / 16.0);
};

// reference_boxes, proposals and out are (N, 4), one floating dtype and device.
void encode_boxes(const BoxCodingParams& params, const TensorRef& reference_boxes, const TensorRef& proposals,
                  const TensorRef& out, Stream stream = nullptr);

// deltas (N, 4 * K) against boxes (N, 4): out (N, 4 * K), box i decoded with
// each of its K deltas. One floating dtype and device.
void decode_boxes(const BoxCodingParams& params, const TensorRef& deltas, const TensorRef& boxes, const TensorRef& out,
                  Stream stream = nullptr);

// The gradient of decode_boxes: grad_out (N, 4 * K) in, grad_deltas
// (N, 4 * K) and grad_boxes (N, 4) out (written, not accumulated).
void decode_boxes_backward(const BoxCodingParams& params, const TensorRef& grad_out, const TensorRef& deltas,
                           const TensorRef& boxes, const TensorRef& grad_deltas, const TensorRef& grad_boxes,
                           Stream stream = nullptr);

}  // namespace detcore
