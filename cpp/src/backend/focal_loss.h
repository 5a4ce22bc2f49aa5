// Backend entry points of sigmoid_focal_loss; arguments are already checked
// (except the label values, which only the backends can read).
#pragma once

#include "detcore/ops/focal_loss.h"
#include "detcore/tensor.h"

namespace detcore {

struct FocalLossArgs {
  TensorRef inputs;
  TensorRef targets;  // floats like inputs, or int64 labels (N,)
  bool labels = false;
  double alpha = 0.25;
  double gamma = 2.0;
  Reduction reduction = Reduction::None;
  TensorRef loss;
  const TensorRef* grad = nullptr;       // optional
  const TensorRef* workspace = nullptr;  // CUDA Sum / Mean only
};

namespace cpu {
void sigmoid_focal_loss(const FocalLossArgs& args);
}

namespace cuda {
void sigmoid_focal_loss(const FocalLossArgs& args, Stream stream);
// Bytes of device workspace for Sum / Mean over numel logits.
int64_t sigmoid_focal_loss_workspace_bytes(int64_t numel);
}  // namespace cuda

}  // namespace detcore
