#pragma once

#include <optional>

#include "detcore/tensor.h"

namespace detcore {

struct PasteMasksParams {
  // If set (finite), out is bool and holds `pasted > threshold`, the
  // comparison made in the masks' dtype (so pixels outside every box hold
  // 0 > threshold).
  std::optional<double> threshold;
  // The caller promises out is all zeros (false) already, as a fresh calloc'd
  // buffer is; the CPU kernel then writes only the pixels inside the boxes,
  // so the pages of such a buffer outside them are never touched. Otherwise,
  // and always on CUDA, every element of out is written.
  bool out_holds_zeros = false;
};

// Pastes soft masks into image-sized planes, as torchvision's
// paste_masks_in_image (padding = 1); see detcore/math/paste_masks.h.
// masks (N, Mh, Mw) floating with Mh, Mw >= 1; boxes (N, 4) of the same dtype
// and device; out (N, H, W) on that device: the masks' dtype, or bool with a
// threshold.
void paste_masks(const PasteMasksParams& params, const TensorRef& masks, const TensorRef& boxes, const TensorRef& out,
                 Stream stream = nullptr);

}  // namespace detcore
