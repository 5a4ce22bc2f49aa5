#include "detcore/ops/box_coding.h"

#include <cmath>

#include "backend/box_coding.h"
#include "checks.h"
#include "dispatch.h"

namespace detcore {
namespace {

void check_weights(const std::array<double, 4>& weights) {
  for (double w : weights) {
    if (!(w > 0.0) || !std::isfinite(w)) {
      throw_value_error("weights: expected 4 positive finite numbers, got (", weights[0], ", ", weights[1], ", ",
                        weights[2], ", ", weights[3], ")");
    }
  }
}

void check_clamp(double clamp) {
  if (std::isnan(clamp)) throw_value_error("clamp: expected a number or inf, got nan");
}

// deltas (N, 4 * K) and boxes (N, 4) of one floating dtype and device.
void check_deltas_and_boxes(const TensorRef& deltas, const TensorRef& boxes) {
  check::ndim(deltas, "deltas", 2, "(N, 4 * K)");
  if (deltas.shape[1] % 4 != 0) {
    throw_value_error("deltas: expected an array of shape (N, 4 * K), got shape ", deltas.shape_string());
  }
  check::matrix(boxes, "boxes", 4, "(N, 4)");
  if (boxes.shape[0] != deltas.shape[0]) {
    throw_value_error("boxes: expected one box per row of deltas (", deltas.shape[0], "), got ", boxes.shape[0]);
  }
  check::floating(deltas, "deltas");
  check::same_dtype(deltas, "deltas", boxes, "boxes");
  check::same_device(deltas, "deltas", boxes, "boxes");
}

void check_output(const TensorRef& like, const char* like_name, const TensorRef& out, const char* name) {
  check::same_dtype(like, like_name, out, name);
  check::same_device(like, like_name, out, name);
}

}  // namespace

void encode_boxes(const BoxCodingParams& params, const TensorRef& reference_boxes, const TensorRef& proposals,
                  const TensorRef& out, Stream stream) {
  check_weights(params.weights);
  check::matrix(reference_boxes, "reference_boxes", 4, "(N, 4)");
  check::matrix(proposals, "proposals", 4, "(N, 4)");
  if (proposals.shape[0] != reference_boxes.shape[0]) {
    throw_value_error("proposals: expected one proposal per reference box (", reference_boxes.shape[0], "), got ",
                      proposals.shape[0]);
  }
  check::floating(reference_boxes, "reference_boxes");
  check::same_dtype(reference_boxes, "reference_boxes", proposals, "proposals");
  check::same_device(reference_boxes, "reference_boxes", proposals, "proposals");
  check_output(reference_boxes, "reference_boxes", out, "out");
  check::shape(out, "out", {reference_boxes.shape[0], 4});
  if (out.numel() == 0) return;
  check::data(reference_boxes, "reference_boxes");
  check::data(proposals, "proposals");
  check::data(out, "out");
  DETCORE_DEVICE_DISPATCH(out, "encode_boxes", cpu::encode_boxes(params, reference_boxes, proposals, out),
                          cuda::encode_boxes(params, reference_boxes, proposals, out, stream));
}

void decode_boxes(const BoxCodingParams& params, const TensorRef& deltas, const TensorRef& boxes, const TensorRef& out,
                  Stream stream) {
  check_weights(params.weights);
  check_clamp(params.clamp);
  check_deltas_and_boxes(deltas, boxes);
  check_output(deltas, "deltas", out, "out");
  check::shape(out, "out", {deltas.shape[0], deltas.shape[1]});
  if (out.numel() == 0) return;
  check::data(deltas, "deltas");
  check::data(boxes, "boxes");
  check::data(out, "out");
  DETCORE_DEVICE_DISPATCH(out, "decode_boxes", cpu::decode_boxes(params, deltas, boxes, out),
                          cuda::decode_boxes(params, deltas, boxes, out, stream));
}

void decode_boxes_backward(const BoxCodingParams& params, const TensorRef& grad_out, const TensorRef& deltas,
                           const TensorRef& boxes, const TensorRef& grad_deltas, const TensorRef& grad_boxes,
                           Stream stream) {
  check_weights(params.weights);
  check_clamp(params.clamp);
  check_deltas_and_boxes(deltas, boxes);
  check_output(deltas, "deltas", grad_out, "grad_out");
  check::shape(grad_out, "grad_out", {deltas.shape[0], deltas.shape[1]});
  check_output(deltas, "deltas", grad_deltas, "grad_deltas");
  check::shape(grad_deltas, "grad_deltas", {deltas.shape[0], deltas.shape[1]});
  check_output(deltas, "deltas", grad_boxes, "grad_boxes");
  check::shape(grad_boxes, "grad_boxes", {boxes.shape[0], 4});
  if (grad_boxes.numel() == 0) return;
  check::data(grad_out, "grad_out");
  check::data(deltas, "deltas");
  check::data(boxes, "boxes");
  check::data(grad_deltas, "grad_deltas");
  check::data(grad_boxes, "grad_boxes");
  DETCORE_DEVICE_DISPATCH(
      deltas, "decode_boxes_backward",
      cpu::decode_boxes_backward(params, grad_out, deltas, boxes, grad_deltas, grad_boxes),
      cuda::decode_boxes_backward(params, grad_out, deltas, boxes, grad_deltas, grad_boxes, stream));
}

}  // namespace detcore
