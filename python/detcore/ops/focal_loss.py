"""Sigmoid focal loss (RetinaNet), forward and backward fused."""

from __future__ import annotations

import math

from .. import _C
from ._interop import NUMPY, TORCH, TORCH_KIND, check_float, dtype_name, prepare, torch
from ._scripting import Array, fx_node, is_scripting

_REDUCTIONS = ("none", "sum", "mean")


def _check_reduction(reduction) -> str:
    if reduction not in _REDUCTIONS:
        raise ValueError(f"reduction: expected 'none', 'sum' or 'mean', got {reduction!r}")
    return reduction


def _check_alpha(alpha) -> float:
    alpha = check_float(alpha, "alpha")
    if not alpha <= 1:  # comparisons, not math.isnan: alpha may be symbolic under torch.compile
        raise ValueError(f"alpha: expected a number in [0, 1], or negative to disable the weighting, got {alpha}")
    return alpha


def _check_gamma(gamma) -> float:
    gamma = check_float(gamma, "gamma", minimum=0.0)
    if not gamma < math.inf:
        raise ValueError(f"gamma: expected a finite number >= 0, got {gamma}")
    return gamma


def _check_targets(inputs, targets) -> bool:
    """Whether targets are int64 labels (N,) for (N, C) inputs; the shape
    checks the outputs' sizes depend on (the core checks everything again)."""
    if "float" not in str(inputs.dtype):
        raise TypeError(f"inputs: expected floating logits, got {inputs.dtype}")
    dtype = str(targets.dtype)
    if ("int" in dtype or "bool" in dtype) and not dtype.endswith("int64"):
        raise TypeError(f"targets: expected int64 labels or floats of the inputs' dtype, got {dtype}")
    if dtype.endswith("int64"):
        if inputs.ndim != 2:
            raise ValueError(
                "inputs: expected a 2-D array of shape (N, C) with int64 labels as targets, "
                f"got shape {tuple(inputs.shape)}"
            )
        if tuple(targets.shape) != (inputs.shape[0],):
            raise ValueError(
                f"targets: expected int64 labels of shape ({inputs.shape[0]},) for inputs of shape "
                f"{tuple(inputs.shape)}, got shape {tuple(targets.shape)}"
            )
        return True
    if tuple(targets.shape) != tuple(inputs.shape):
        raise ValueError(
            f"targets: expected the shape of inputs {tuple(inputs.shape)} (or int64 labels of shape (N,)), "
            f"got shape {tuple(targets.shape)}"
        )
    return False


def _sigmoid_focal_loss(xp, inputs, targets, alpha, gamma, reduction, with_grad):
    """(loss, grad): grad is d loss / d inputs (already divided by the count
    for 'mean'), or None unless with_grad."""
    _check_targets(inputs, targets)
    loss = xp.empty(tuple(inputs.shape) if reduction == "none" else (), inputs.dtype, like=inputs)
    grad = xp.empty(tuple(inputs.shape), inputs.dtype, like=inputs) if with_grad else None
    device = xp.device(inputs)
    nbytes = _C.sigmoid_focal_loss_workspace_bytes(
        device, dtype_name(inputs.dtype), alpha, gamma, reduction, math.prod(inputs.shape)
    )
    workspace = xp.workspace(nbytes, like=inputs) if nbytes else None
    _C.sigmoid_focal_loss(
        alpha,
        gamma,
        reduction,
        xp.native(inputs),
        xp.native(targets),
        xp.native(loss),
        None if grad is None else xp.native(grad),
        None if workspace is None else xp.native(workspace),
        xp.stream(inputs),
    )
    return loss, grad


def sigmoid_focal_loss(
    inputs: Array, targets: Array, alpha: float = 0.25, gamma: float = 2.0, reduction: str = "none"
) -> Array:
    """The focal loss of RetinaNet (https://arxiv.org/abs/1708.02002), as
    ``torchvision.ops.sigmoid_focal_loss``, with the forward and backward
    computed in one fused pass.

    ``FL = alpha_t * (1 - p_t)**gamma * BCE_with_logits(inputs, targets)``
    with ``p = sigmoid(inputs)``, ``p_t = p t + (1 - p)(1 - t)`` and
    ``alpha_t = alpha t + (1 - alpha)(1 - t)``.

    Args:
        inputs: logits of any shape; float32 or float64 (float16 and
            bfloat16 on CUDA, computed in float32).
        targets: either floats of the inputs' shape and dtype (one-hot or
            soft targets in [0, 1]), or int64 labels of shape (N,) for
            inputs (N, C): label ``c`` in ``[0, C)`` marks class ``c``
            positive, label ``C`` is background (every class negative), a
            negative label ignores the row (0 loss, 0 gradient). Labels
            above ``C`` raise ValueError on the CPU; on CUDA they are not
            checked (that would need a device sync) and make that row's loss
            and gradient NaN.
        alpha: weight of positives in [0, 1]; a negative value disables the
            weighting (torchvision uses -1).
        gamma: focusing exponent, finite and >= 0.
        reduction: 'none' (per element, the inputs' shape), 'sum' or 'mean'
            (0-d). 'mean' divides by the number of elements, as torchvision;
            with labels by C times the number of non-ignored rows, i.e. it
            equals torchvision's mean over the non-ignored rows' one-hot
            targets. A mean over no elements is NaN, like torchvision's.

    Returns:
        The loss in the inputs' framework and dtype. For torch tensors the
        gradient with respect to ``inputs`` is computed in the forward pass
        whenever autograd will need it and scaled by the upstream gradient
        in the backward; ``targets`` are constants (labels always; float
        targets with ``requires_grad`` are refused rather than silently
        given no gradient). Not twice differentiable.

    Sum and mean are deterministic (the same bits for any thread count on
    the CPU, and on every run on CUDA).
    """
    if is_scripting():
        if targets.requires_grad and torch.is_grad_enabled():
            raise ValueError("targets: gradients with respect to targets are not supported; pass targets.detach()")
        with_grad = inputs.requires_grad and torch.is_grad_enabled()
        return torch.ops.detcore.sigmoid_focal_loss(inputs, targets, alpha, gamma, reduction, with_grad)[0]
    node = fx_node(sigmoid_focal_loss, inputs, targets, alpha, gamma, reduction)
    if node is not None:
        return node
    reduction = _check_reduction(reduction)
    alpha = _check_alpha(alpha)
    gamma = _check_gamma(gamma)
    kind, (inputs, targets) = prepare(inputs=inputs, targets=targets)
    if kind == TORCH_KIND:
        if targets.requires_grad and torch.is_grad_enabled():
            raise ValueError(
                "targets: gradients with respect to targets are not supported; pass targets.detach()"
            )
        with_grad = inputs.requires_grad and torch.is_grad_enabled()
        loss, _ = torch.ops.detcore.sigmoid_focal_loss(inputs, targets, alpha, gamma, reduction, with_grad)
        return loss
    loss, _ = _sigmoid_focal_loss(NUMPY, inputs, targets, alpha, gamma, reduction, False)
    return loss


if torch is not None:

    @torch.library.custom_op("detcore::sigmoid_focal_loss", mutates_args=())
    def _sigmoid_focal_loss_op(
        inputs: torch.Tensor, targets: torch.Tensor, alpha: float, gamma: float, reduction: str, with_grad: bool
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """(loss, grad); grad is d loss / d inputs when with_grad, else an
        empty (0,) tensor. The scalars are checked here too, for TorchScript
        callers."""
        loss, grad = _sigmoid_focal_loss(
            TORCH, inputs.contiguous(), targets.contiguous(), _check_alpha(alpha), _check_gamma(gamma),
            _check_reduction(reduction), with_grad,
        )
        return loss, grad if grad is not None else inputs.new_empty((0,))

    @_sigmoid_focal_loss_op.register_fake
    def _(inputs, targets, alpha, gamma, reduction, with_grad):
        _check_targets(inputs, targets)
        loss = inputs.new_empty(tuple(inputs.shape) if _check_reduction(reduction) == "none" else ())
        grad = inputs.new_empty(tuple(inputs.shape) if with_grad else (0,))
        return loss, grad

    def _setup_context(ctx, inputs, output):
        ctx.with_grad = inputs[5]
        ctx.save_for_backward(output[1])

    def _backward(ctx, grad_loss, _grad_of_grad):
        if not ctx.with_grad:
            raise RuntimeError(
                "sigmoid_focal_loss: the gradient was not computed in the forward pass (inputs did not "
                "require grad when it ran)"
            )
        (grad,) = ctx.saved_tensors
        if torch.is_grad_enabled() and (grad_loss.requires_grad or grad.requires_grad):
            # create_graph=True: the saved gradient is a constant of the forward
            # pass, so a second derivative through it would be silently 0.
            raise RuntimeError("sigmoid_focal_loss: second derivatives are not supported")
        # grad_loss is 0-d for sum / mean and broadcasts.
        return grad * grad_loss, None, None, None, None, None

    _sigmoid_focal_loss_op.register_autograd(_backward, setup_context=_setup_context)

    # A leaf node for torch.fx when called through this module's globals.
    torch.fx.wrap("sigmoid_focal_loss")
