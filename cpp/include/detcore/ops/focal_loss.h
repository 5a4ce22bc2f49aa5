#pragma once

#include <cstdint>

#include "detcore/tensor.h"

namespace detcore {

enum class Reduction : uint8_t { None, Sum, Mean };

// Sigmoid focal loss, forward and (optionally) backward in one pass; see
// detcore/math/focal_loss.h for the formula.
struct SigmoidFocalLossParams {
  // Weight of positives in [0, 1]; negative disables the weighting.
  double alpha = 0.25;
  // Finite, >= 0.
  double gamma = 2.0;
  // loss holds the inputs' shape for None, one element otherwise. Mean
  // divides by the number of elements, or with labels by C times the number
  // of non-ignored rows (NaN when that is 0, like the mean of nothing).
  Reduction reduction = Reduction::None;
};

// inputs: logits of any shape (float32/float64; float16/bfloat16 on CUDA).
// targets: either floats of the inputs' shape and dtype (one-hot or soft), or
//   int64 labels of shape (N,) for inputs (N, C): label c in [0, C) marks class
//   c positive, label C is background (all classes negative), a negative label
//   ignores the row (0 loss, 0 gradient, not counted by Mean). Labels > C are
//   refused on the CPU (ValueError); on CUDA they are not checked (that would
//   need a device sync) and give the row a NaN loss and NaN gradient instead.
// loss: see SigmoidFocalLossParams::reduction.
// grad: nullptr, or the inputs' shape: receives d loss / d inputs (for Mean
//   already divided by the count); the caller scales it by the upstream
//   gradient.
// workspace: nullptr when sigmoid_focal_loss_workspace_bytes() is 0, else a
//   uint8 array of at least that many bytes on the inputs' device.
//
// Sum and Mean are deterministic: the same inputs give the same bits whatever
// the thread count (CPU) and on every run (CUDA).
void sigmoid_focal_loss(const SigmoidFocalLossParams& params, const TensorRef& inputs, const TensorRef& targets,
                        const TensorRef& loss, const TensorRef* grad = nullptr, const TensorRef* workspace = nullptr,
                        Stream stream = nullptr);

// Bytes of workspace sigmoid_focal_loss needs for `numel` logits of `dtype`
// on `device`.
int64_t sigmoid_focal_loss_workspace_bytes(const SigmoidFocalLossParams& params, Device device, DType dtype,
                                           int64_t numel);

}  // namespace detcore
