#pragma once

#include <cstdint>
#include <optional>

#include "detcore/tensor.h"

namespace detcore {

// How each padded mask is resized to its box (detcore/math/paste_masks.h).
enum class PasteMode : uint8_t {
  Bilinear,  // torchvision's paste_masks_in_image, bit for bit
  Bicubic,   // Keys' cubic convolution, a = -0.75, clamped taps (torch's bicubic)
};

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
  // The resize of each padded mask to its box; bilinear by default.
  PasteMode mode = PasteMode::Bilinear;
};

// Pastes soft masks into image-sized planes, as torchvision's
// paste_masks_in_image (padding = 1) in Bilinear mode, with a cubic resize
// in Bicubic mode; see detcore/math/paste_masks.h.
// masks (N, Mh, Mw) floating with Mh, Mw >= 1; boxes (N, 4) of the same dtype
// and device; out (N, H, W) on that device: the masks' dtype, or bool with a
// threshold.
void paste_masks(const PasteMasksParams& params, const TensorRef& masks, const TensorRef& boxes, const TensorRef& out,
                 Stream stream = nullptr);

}  // namespace detcore
