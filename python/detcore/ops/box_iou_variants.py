"""Generalized, distance and complete IoU of every pair of boxes."""

from __future__ import annotations

import numpy as np

from .. import _C
from ._interop import NUMPY, TORCH, TORCH_KIND, check_boxes, check_float, dtype_name, prepare, torch
from ._scripting import Array, fx_node, is_scripting


def _check_eps(eps) -> float:
    eps = check_float(eps, "eps", minimum=0.0)
    if eps == float("inf"):
        raise ValueError(f"eps: expected a finite number >= 0, got {eps}")
    return eps


def _as_float_boxes(boxes):
    """Integer boxes as float32 (torchvision takes integer boxes too)."""
    dtype = str(boxes.dtype)
    if "int" in dtype or "bool" in dtype:
        return boxes.astype(np.float32) if isinstance(boxes, np.ndarray) else boxes.to(torch.float32)
    return boxes


def cpu_half(xp, a) -> bool:
    """float16 / bfloat16 on the CPU, where the kernels compute in float32."""
    return str(xp.device(a)) == "cpu" and dtype_name(a.dtype) in ("float16", "bfloat16")


def widen(a):
    return a.astype(np.float32) if isinstance(a, np.ndarray) else a.float()


def narrow(a, dtype):
    return a.astype(dtype) if isinstance(a, np.ndarray) else a.to(dtype)


def _pairwise(xp, variant: str, boxes1, boxes2, eps: float):
    check_boxes(boxes1, "boxes1")
    check_boxes(boxes2, "boxes2", "(M, 4)")
    if cpu_half(xp, boxes1) and boxes2.dtype == boxes1.dtype:
        return narrow(_pairwise(xp, variant, widen(boxes1), widen(boxes2), eps), boxes1.dtype)
    out = xp.empty((boxes1.shape[0], boxes2.shape[0]), boxes1.dtype, like=boxes1)
    _C.pairwise_box_iou(variant, eps, xp.native(boxes1), xp.native(boxes2), xp.native(out), xp.stream(boxes1))
    return out


def _run(variant: str, boxes1, boxes2, eps: float):
    kind, (boxes1, boxes2) = prepare(boxes1=boxes1, boxes2=boxes2)
    boxes1, boxes2 = _as_float_boxes(boxes1), _as_float_boxes(boxes2)
    if kind == TORCH_KIND:
        return getattr(torch.ops.detcore, f"{variant}_box_iou")(boxes1, boxes2, eps)
    return _pairwise(NUMPY, variant, boxes1, boxes2, eps)


def generalized_box_iou(boxes1: Array, boxes2: Array) -> Array:
    """Generalized IoU of every pair of boxes, as
    ``torchvision.ops.generalized_box_iou``:
    ``iou - (C - union) / C`` with ``C`` the area of the smallest box
    enclosing both.

    Args:
        boxes1: (N, 4) boxes ``x1, y1, x2, y2``; float32 or float64
            (float16 / bfloat16 on CUDA, computed in float; integer boxes
            are taken as float32).
        boxes2: (M, 4) boxes of the same dtype and device.

    Returns:
        (N, M) in the boxes' dtype. Computed natively (CPU threads, CUDA)
        with no gradient; use the ``*_box_iou_loss`` functions to train.
    """
    if is_scripting():
        return torch.ops.detcore.generalized_box_iou(boxes1, boxes2, 0.0)
    node = fx_node(generalized_box_iou, boxes1, boxes2)
    if node is not None:
        return node
    return _run("generalized", boxes1, boxes2, 0.0)


def distance_box_iou(boxes1: Array, boxes2: Array, eps: float = 1e-7) -> Array:
    """Distance IoU of every pair of boxes, as
    ``torchvision.ops.distance_box_iou``:
    ``iou - d^2 / (c^2 + eps)`` with ``d`` the distance of the centres and
    ``c`` the diagonal of the smallest enclosing box.

    Args:
        boxes1: (N, 4), boxes2: (M, 4) as for `generalized_box_iou`.
        eps: finite number >= 0 added to ``c^2``.

    Returns:
        (N, M) in the boxes' dtype, without gradient.
    """
    if is_scripting():
        return torch.ops.detcore.distance_box_iou(boxes1, boxes2, eps)
    node = fx_node(distance_box_iou, boxes1, boxes2, eps)
    if node is not None:
        return node
    return _run("distance", boxes1, boxes2, _check_eps(eps))


def complete_box_iou(boxes1: Array, boxes2: Array, eps: float = 1e-7) -> Array:
    """Complete IoU of every pair of boxes, as
    ``torchvision.ops.complete_box_iou``: the distance IoU minus
    ``alpha * v``, ``v = 4 / pi^2 (atan(w1 / h1) - atan(w2 / h2))^2``,
    ``alpha = v / (1 - iou + v + eps)``.

    Args:
        boxes1: (N, 4), boxes2: (M, 4) as for `generalized_box_iou`.
        eps: finite number >= 0.

    Returns:
        (N, M) in the boxes' dtype, without gradient.
    """
    if is_scripting():
        return torch.ops.detcore.complete_box_iou(boxes1, boxes2, eps)
    node = fx_node(complete_box_iou, boxes1, boxes2, eps)
    if node is not None:
        return node
    return _run("complete", boxes1, boxes2, _check_eps(eps))


if torch is not None:

    def _register(variant: str):
        name = f"detcore::{variant}_box_iou"

        def impl(boxes1: torch.Tensor, boxes2: torch.Tensor, eps: float) -> torch.Tensor:
            return _pairwise(TORCH, variant, boxes1.contiguous(), boxes2.contiguous(), _check_eps(eps))

        op = torch.library.custom_op(name, impl, mutates_args=())

        @op.register_fake
        def _(boxes1, boxes2, eps):
            check_boxes(boxes1, "boxes1")
            check_boxes(boxes2, "boxes2", "(M, 4)")
            return boxes1.new_empty((boxes1.shape[0], boxes2.shape[0]))

        return op

    for _variant in ("generalized", "distance", "complete"):
        _register(_variant)

    torch.fx.wrap("generalized_box_iou")
    torch.fx.wrap("distance_box_iou")
    torch.fx.wrap("complete_box_iou")
