#include "detcore/ops/focal_loss.h"

#include <cmath>

#include "backend/focal_loss.h"
#include "checks.h"
#include "dispatch.h"

namespace detcore {
namespace {

constexpr const char* kOp = "sigmoid_focal_loss";

void check_same_shape(const TensorRef& t, const char* name, const TensorRef& like, const char* like_name) {
  bool same = t.ndim == like.ndim;
  for (int d = 0; same && d < t.ndim; ++d) same = t.shape[d] == like.shape[d];
  if (!same) {
    throw_value_error(name, ": expected the shape of ", like_name, " ", like.shape_string(), ", got shape ",
                      t.shape_string());
  }
}

// Returns whether targets are int64 labels (else floats like inputs).
bool check_targets(const TensorRef& inputs, const TensorRef& targets) {
  check::same_device(inputs, "inputs", targets, "targets");
  if (targets.dtype == DType::Int64) {
    if (inputs.ndim != 2) {
      throw_value_error("inputs: expected a 2-D array of shape (N, C) with int64 labels as targets, got shape ",
                        inputs.shape_string());
    }
    if (targets.ndim != 1 || targets.shape[0] != inputs.shape[0]) {
      throw_value_error("targets: expected int64 labels of shape (", inputs.shape[0], ",) for inputs of shape ",
                        inputs.shape_string(), ", got shape ", targets.shape_string());
    }
    return true;
  }
  if (targets.dtype != inputs.dtype) {
    throw_type_error("targets: expected floats of the inputs' dtype (", dtype_name(inputs.dtype),
                     ") or int64 labels, got ", dtype_name(targets.dtype));
  }
  check_same_shape(targets, "targets", inputs, "inputs");
  return false;
}

void check_output(const TensorRef& out, const char* name, const TensorRef& inputs) {
  check::same_dtype(inputs, "inputs", out, name);
  check::same_device(inputs, "inputs", out, name);
}

}  // namespace

int64_t sigmoid_focal_loss_workspace_bytes(const SigmoidFocalLossParams& params, Device device, DType dtype,
                                           int64_t numel) {
  (void)dtype;
  if (numel < 0) throw_value_error("numel: expected a number >= 0, got ", numel);
  if (device.kind != DeviceKind::CUDA || params.reduction == Reduction::None) return 0;
#ifdef DETCORE_WITH_CUDA
  return cuda::sigmoid_focal_loss_workspace_bytes(numel);
#else
  return 0;
#endif
}

void sigmoid_focal_loss(const SigmoidFocalLossParams& params, const TensorRef& inputs, const TensorRef& targets,
                        const TensorRef& loss, const TensorRef* grad, const TensorRef* workspace, Stream stream) {
  const double alpha = params.alpha, gamma = params.gamma;
  const Reduction reduction = params.reduction;
  check::floating_half_on_cuda(inputs, "inputs");
  const bool labels = check_targets(inputs, targets);
  if (std::isnan(alpha) || alpha > 1.0) {
    throw_value_error("alpha: expected a number in [0, 1], or negative to disable the weighting, got ", alpha);
  }
  check::non_negative(gamma, "gamma");
  if (reduction != Reduction::None && reduction != Reduction::Sum && reduction != Reduction::Mean) {
    throw_value_error("reduction: expected none, sum or mean");
  }
  check_output(loss, "loss", inputs);
  if (reduction == Reduction::None) {
    check_same_shape(loss, "loss", inputs, "inputs");
  } else if (loss.numel() != 1) {
    throw_value_error("loss: expected one element for a sum or mean reduction, got shape ", loss.shape_string());
  }
  if (grad != nullptr) {
    check_output(*grad, "grad", inputs);
    check_same_shape(*grad, "grad", inputs, "inputs");
  }
  const int64_t needed = sigmoid_focal_loss_workspace_bytes(params, inputs.device, inputs.dtype, inputs.numel());
  if (needed > 0) {
    if (workspace == nullptr) throw_value_error("workspace: expected ", needed, " bytes, got none");
    check::dtype(*workspace, "workspace", DType::UInt8);
    check::same_device(inputs, "inputs", *workspace, "workspace");
    if (workspace->numel() < needed) {
      throw_value_error("workspace: expected at least ", needed, " bytes, got ", workspace->numel());
    }
    check::data(*workspace, "workspace");
    check::aligned(*workspace, "workspace");
  }
  check::data(inputs, "inputs");
  check::data(targets, "targets");
  check::data(loss, "loss");
  if (grad != nullptr) check::data(*grad, "grad");

  FocalLossArgs args;
  args.inputs = inputs;
  args.targets = targets;
  args.labels = labels;
  args.alpha = alpha;
  args.gamma = gamma;
  args.reduction = reduction;
  args.loss = loss;
  args.grad = grad;
  args.workspace = workspace;
  DETCORE_DEVICE_DISPATCH(inputs, kOp, cpu::sigmoid_focal_loss(args), cuda::sigmoid_focal_loss(args, stream));
}

}  // namespace detcore
