#pragma once

#include <cstdint>

#include "detcore/tensor.h"

namespace detcore {

// The pooling of torchvision.ops.roi_align (see detcore/math/roi_align.h for
// the exact rule, including what NaN and infinite RoIs give).
struct RoIAlignParams {
  int64_t pooled_height = 1;
  int64_t pooled_width = 1;
  double spatial_scale = 1.0;   // finite, > 0
  int64_t sampling_ratio = -1;  // <= 0: adaptive, ceil(roi_size / pooled_size)
  bool aligned = false;         // shift the RoI by -0.5 pixel (detectron2)
  // Backward only. The CPU kernel is always deterministic; on CUDA true picks
  // a gather kernel that gives bitwise identical results run to run instead
  // of atomics.
  bool deterministic = false;
};

// input (N, C, H, W), boxes (K, 5) [batch_index, x1, y1, x2, y2] and out
// (K, C, pooled_height, pooled_width) share one floating dtype and device.
// On the CPU every batch index must be an integer in [0, N) (ValueError
// otherwise); on CUDA, where checking would need a device sync, an RoI with
// an invalid batch index pools to zeros.
void roi_align_forward(const RoIAlignParams& params, const TensorRef& input, const TensorRef& boxes,
                       const TensorRef& out, Stream stream = nullptr);

// The gradient with respect to input: grad_output (K, C, pooled_height,
// pooled_width), boxes (K, 5), grad_input (N, C, H, W) (overwritten).
// workspace: uint8, at least roi_align_backward_workspace_bytes(...) long.
void roi_align_backward(const RoIAlignParams& params, const TensorRef& grad_output, const TensorRef& boxes,
                        const TensorRef& grad_input, const TensorRef& workspace, Stream stream = nullptr);

// Bytes of workspace roi_align_backward needs for a grad_input of `dtype` and
// grad_input_numel elements on `device`: a float buffer for the atomics of
// the CUDA float16/bfloat16 path, 0 otherwise.
int64_t roi_align_backward_workspace_bytes(const RoIAlignParams& params, Device device, DType dtype,
                                           int64_t grad_input_numel);

}  // namespace detcore
