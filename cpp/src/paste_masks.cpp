#include "detcore/ops/paste_masks.h"

#include <cmath>

#include "backend/paste_masks.h"
#include "checks.h"
#include "dispatch.h"

namespace detcore {

void paste_masks(const PasteMasksParams& params, const TensorRef& masks, const TensorRef& boxes, const TensorRef& out,
                 Stream stream) {
  const std::optional<double>& threshold = params.threshold;
  check::ndim(masks, "masks", 3, "(N, Mh, Mw)");
  check::floating(masks, "masks");
  if (masks.shape[1] < 1 || masks.shape[2] < 1) {
    throw_value_error("masks: expected masks of at least 1 x 1 pixels, got shape ", masks.shape_string());
  }
  check::shape(boxes, "boxes", {masks.shape[0], 4});
  check::same_dtype(masks, "masks", boxes, "boxes");
  check::same_device(masks, "masks", boxes, "boxes");
  check::same_device(masks, "masks", out, "out");
  if (threshold) {
    if (!std::isfinite(*threshold)) throw_value_error("threshold: expected a finite number, got ", *threshold);
    check::dtype(out, "out", DType::Bool);
  } else {
    check::same_dtype(masks, "masks", out, "out");
  }
  if (params.mode != PasteMode::Bilinear && params.mode != PasteMode::Bicubic) {
    throw_value_error("mode: expected 'bilinear' or 'bicubic', got mode ", static_cast<int>(params.mode));
  }
  check::ndim(out, "out", 3, "(N, H, W)");
  if (out.shape[0] != masks.shape[0]) {
    throw_value_error("out: expected ", masks.shape[0], " planes (one per mask), got shape ", out.shape_string());
  }
  if (out.numel() == 0) return;
  check::data(masks, "masks");
  check::data(boxes, "boxes");
  check::data(out, "out");
  DETCORE_DEVICE_DISPATCH(masks, "paste_masks", cpu::paste_masks(params, masks, boxes, out),
                          cuda::paste_masks(params, masks, boxes, out, stream));
}

}  // namespace detcore
