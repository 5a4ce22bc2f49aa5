"""Generalized, distance and complete IoU losses of paired boxes, forward
and backward native."""

from __future__ import annotations

from .. import _C
from ._interop import NUMPY, TORCH, TORCH_KIND, prepare, query_dtype_name, torch
from ._scripting import Array, fx_node, is_scripting
from .box_iou_variants import _as_float_boxes, _check_eps, cpu_half, narrow, widen

_REDUCTIONS = ("none", "sum", "mean")


def _check_reduction(reduction) -> str:
    if not isinstance(reduction, str) or reduction not in _REDUCTIONS:
        raise ValueError(f"reduction: expected 'none', 'sum' or 'mean', got {reduction!r}")
    return reduction


def _check_pairs(boxes1, boxes2) -> None:
    if boxes1.ndim < 1 or boxes1.shape[-1] != 4:
        raise ValueError(f"boxes1: expected an array of shape (..., 4), got shape {tuple(boxes1.shape)}")
    if tuple(boxes2.shape) != tuple(boxes1.shape):
        raise ValueError(f"boxes2: expected the shape of boxes1 {tuple(boxes1.shape)}, got shape {tuple(boxes2.shape)}")


def _loss_shape(boxes1, reduction: str):
    return tuple(boxes1.shape[:-1]) if reduction == "none" else ()


def _forward(xp, variant: str, boxes1, boxes2, reduction: str, eps: float):
    """The loss, (...) for 'none' else 0-d; boxes (..., 4) contiguous."""
    _check_pairs(boxes1, boxes2)
    if cpu_half(xp, boxes1) and boxes2.dtype == boxes1.dtype:
        return narrow(_forward(xp, variant, widen(boxes1), widen(boxes2), reduction, eps), boxes1.dtype)
    shape = _loss_shape(boxes1, reduction)
    b1, b2 = boxes1.reshape(-1, 4), boxes2.reshape(-1, 4)
    n = b1.shape[0]
    loss = xp.empty((n,) if reduction == "none" else (1,), boxes1.dtype, like=boxes1)
    nbytes = _C.box_iou_loss_workspace_bytes(
        str(xp.device(boxes1)), query_dtype_name(boxes1, "boxes1"), variant, reduction, eps, n
    )
    workspace = xp.workspace(nbytes, like=boxes1) if nbytes else None
    _C.box_iou_loss_forward(
        variant,
        reduction,
        eps,
        xp.native(b1),
        xp.native(b2),
        xp.native(loss),
        None if workspace is None else xp.native(workspace),
        xp.stream(boxes1),
    )
    return loss.reshape(shape)


def _backward(xp, variant: str, boxes1, boxes2, grad_loss, reduction: str, eps: float):
    """(grad1, grad2) of the boxes' shape; grad_loss of the loss' shape."""
    if cpu_half(xp, boxes1):
        grads = _backward(xp, variant, widen(boxes1), widen(boxes2), widen(grad_loss), reduction, eps)
        return narrow(grads[0], boxes1.dtype), narrow(grads[1], boxes1.dtype)
    b1, b2 = boxes1.reshape(-1, 4), boxes2.reshape(-1, 4)
    grad1 = xp.empty(tuple(b1.shape), boxes1.dtype, like=boxes1)
    grad2 = xp.empty(tuple(b1.shape), boxes1.dtype, like=boxes1)
    _C.box_iou_loss_backward(
        variant,
        reduction,
        eps,
        xp.native(b1),
        xp.native(b2),
        xp.native(grad_loss.reshape(-1)),
        xp.native(grad1),
        xp.native(grad2),
        xp.stream(boxes1),
    )
    return grad1.reshape(boxes1.shape), grad2.reshape(boxes1.shape)


def _run(variant: str, boxes1, boxes2, reduction, eps):
    reduction = _check_reduction(reduction)
    eps = _check_eps(eps)
    kind, (boxes1, boxes2) = prepare(boxes1=boxes1, boxes2=boxes2)
    boxes1, boxes2 = _as_float_boxes(boxes1), _as_float_boxes(boxes2)
    if kind == TORCH_KIND:
        return getattr(torch.ops.detcore, f"{variant}_box_iou_loss")(boxes1, boxes2, reduction, eps)
    return _forward(NUMPY, variant, boxes1, boxes2, reduction, eps)


_ARGS_DOC = """
    Args:
        boxes1: (..., 4) boxes ``x1, y1, x2, y2`` (e.g. (N, 4) or (4,));
            float32 or float64 (float16 / bfloat16 on CUDA, computed in
            float; integer boxes are taken as float32).
        boxes2: boxes of the same shape, dtype and device, paired with
            boxes1 element by element.
        reduction: 'none' (the loss per pair, shape (...)), 'sum' or
            'mean' (0-d; the mean of no pairs is 0, as torchvision's).
            Sum and mean are deterministic.
        eps: finite number >= 0 against division by zero.

    Returns:
        The loss in the boxes' framework and dtype. For torch tensors,
        gradients flow to both boxes (computed natively in the backward).
"""


def generalized_box_iou_loss(boxes1: Array, boxes2: Array, reduction: str = "none", eps: float = 1e-7) -> Array:
    """``1 - GIoU`` of paired boxes, as ``torchvision.ops.generalized_box_iou_loss``
    (``iou = inter / (union + eps)``, penalty ``(C - union) / (C + eps)``).
    """
    if is_scripting():
        return torch.ops.detcore.generalized_box_iou_loss(boxes1, boxes2, reduction, eps)
    node = fx_node(generalized_box_iou_loss, boxes1, boxes2, reduction, eps)
    if node is not None:
        return node
    return _run("generalized", boxes1, boxes2, reduction, eps)


def distance_box_iou_loss(boxes1: Array, boxes2: Array, reduction: str = "none", eps: float = 1e-7) -> Array:
    """``1 - DIoU`` of paired boxes, as ``torchvision.ops.distance_box_iou_loss``:
    ``1 - iou + d^2 / (c^2 + eps)``.
    """
    if is_scripting():
        return torch.ops.detcore.distance_box_iou_loss(boxes1, boxes2, reduction, eps)
    node = fx_node(distance_box_iou_loss, boxes1, boxes2, reduction, eps)
    if node is not None:
        return node
    return _run("distance", boxes1, boxes2, reduction, eps)


def complete_box_iou_loss(boxes1: Array, boxes2: Array, reduction: str = "none", eps: float = 1e-7) -> Array:
    """``1 - CIoU`` of paired boxes, as ``torchvision.ops.complete_box_iou_loss``:
    the distance loss plus ``alpha * v``, ``alpha`` a constant for the
    gradient. As torchvision, ``eps`` enters only ``alpha``; the distance
    part always uses 1e-7.
    """
    if is_scripting():
        return torch.ops.detcore.complete_box_iou_loss(boxes1, boxes2, reduction, eps)
    node = fx_node(complete_box_iou_loss, boxes1, boxes2, reduction, eps)
    if node is not None:
        return node
    return _run("complete", boxes1, boxes2, reduction, eps)


for _fn in (generalized_box_iou_loss, distance_box_iou_loss, complete_box_iou_loss):
    _fn.__doc__ += _ARGS_DOC


if torch is not None:

    def _register(variant: str):
        def impl(boxes1: torch.Tensor, boxes2: torch.Tensor, reduction: str, eps: float) -> torch.Tensor:
            return _forward(
                TORCH, variant, boxes1.contiguous(), boxes2.contiguous(), _check_reduction(reduction), _check_eps(eps)
            )

        op = torch.library.custom_op(f"detcore::{variant}_box_iou_loss", impl, mutates_args=())

        @op.register_fake
        def _(boxes1, boxes2, reduction, eps):
            _check_pairs(boxes1, boxes2)
            return boxes1.new_empty(_loss_shape(boxes1, _check_reduction(reduction)))

        def backward_impl(
            boxes1: torch.Tensor, boxes2: torch.Tensor, grad_loss: torch.Tensor, reduction: str, eps: float
        ) -> tuple[torch.Tensor, torch.Tensor]:
            return _backward(
                TORCH, variant, boxes1.contiguous(), boxes2.contiguous(), grad_loss.contiguous(), reduction, eps
            )

        backward_op = torch.library.custom_op(
            f"detcore::{variant}_box_iou_loss_backward", backward_impl, mutates_args=()
        )

        @backward_op.register_fake
        def _(boxes1, boxes2, grad_loss, reduction, eps):
            return boxes1.new_empty(boxes1.shape), boxes1.new_empty(boxes1.shape)

        def setup_context(ctx, inputs, output):
            boxes1, boxes2, reduction, eps = inputs
            ctx.save_for_backward(boxes1, boxes2)
            ctx.reduction, ctx.eps = reduction, eps

        def backward(ctx, grad_loss):
            boxes1, boxes2 = ctx.saved_tensors
            if torch.is_grad_enabled() and grad_loss.requires_grad:
                raise RuntimeError(f"{variant}_box_iou_loss: second derivatives are not supported")
            grad1, grad2 = backward_op(boxes1, boxes2, grad_loss, ctx.reduction, ctx.eps)
            return (
                grad1 if ctx.needs_input_grad[0] else None,
                grad2 if ctx.needs_input_grad[1] else None,
                None,
                None,
            )

        op.register_autograd(backward, setup_context=setup_context)

    for _variant in ("generalized", "distance", "complete"):
        _register(_variant)

    torch.fx.wrap("generalized_box_iou_loss")
    torch.fx.wrap("distance_box_iou_loss")
    torch.fx.wrap("complete_box_iou_loss")
