"""Faster R-CNN box coding, as torchvision's ``BoxCoder.encode_single`` and
``decode_single``: deltas ``(dx, dy, dw, dh)`` of a box relative to a
reference box, scaled by weights ``(wx, wy, ww, wh)``. Widths are ``x2 - x1``
(no +1) and centres ``x1 + 0.5 * w``; the arithmetic follows torchvision's
order, so float32 results agree to about one ulp.
"""

from __future__ import annotations

import math
import numbers

import numpy as np

from .. import _C
from ._interop import NUMPY, TORCH, TORCH_KIND, check_boxes, prepare, torch
from ._scripting import Array, Weights, fx_node, is_scripting

DEFAULT_CLAMP = math.log(1000.0 / 16)  # the largest dw, dh fed to exp, as torchvision


def _check_weights(weights) -> list[float]:
    if not isinstance(weights, (list, tuple, np.ndarray)) or len(weights) != 4:
        raise TypeError(f"weights: expected 4 numbers (wx, wy, ww, wh), got {weights!r}")
    out = []
    for w in weights:
        if isinstance(w, (bool, np.bool_)) or not isinstance(w, numbers.Real):
            raise TypeError(f"weights: expected 4 numbers (wx, wy, ww, wh), got {weights!r}")
        if not 0 < w < math.inf:  # comparisons only (also refuse NaN): traceable by torch.compile
            raise ValueError(f"weights: expected 4 positive finite numbers, got {tuple(weights)!r}")
        out.append(float(w))
    return out


def _check_clamp(clamp) -> float:
    if isinstance(clamp, (bool, np.bool_)) or not isinstance(clamp, numbers.Real):
        raise TypeError(f"clamp: expected a number, got {type(clamp).__name__}")
    if clamp != clamp:  # NaN
        raise ValueError("clamp: expected a number or inf, got nan")
    return float(clamp)


def _check_deltas(deltas, boxes) -> None:
    if deltas.ndim != 2 or deltas.shape[1] % 4 != 0:
        raise ValueError(f"deltas: expected an array of shape (N, 4 * K), got shape {tuple(deltas.shape)}")
    check_boxes(boxes, "boxes")
    if boxes.shape[0] != deltas.shape[0]:
        raise ValueError(f"boxes: expected one box per row of deltas ({deltas.shape[0]}), got {boxes.shape[0]}")


def _check_pairs(reference_boxes, proposals) -> None:
    check_boxes(reference_boxes, "reference_boxes")
    check_boxes(proposals, "proposals")
    if proposals.shape[0] != reference_boxes.shape[0]:
        raise ValueError(
            f"proposals: expected one proposal per reference box ({reference_boxes.shape[0]}), got {proposals.shape[0]}"
        )


def _encode_boxes(xp, reference_boxes, proposals, weights):
    _check_pairs(reference_boxes, proposals)
    out = xp.empty(tuple(reference_boxes.shape), reference_boxes.dtype, like=reference_boxes)
    _C.encode_boxes(weights, xp.native(reference_boxes), xp.native(proposals), xp.native(out),
                    xp.stream(reference_boxes))
    return out


def _decode_boxes(xp, deltas, boxes, weights, clamp):
    _check_deltas(deltas, boxes)
    out = xp.empty(tuple(deltas.shape), deltas.dtype, like=deltas)
    _C.decode_boxes(weights, clamp, xp.native(deltas), xp.native(boxes), xp.native(out), xp.stream(deltas))
    return out


def _is_floating(x) -> bool:
    return x.is_floating_point() if torch is not None and isinstance(x, torch.Tensor) else x.dtype.kind == "f"


def encode_boxes(reference_boxes: Array, proposals: Array, weights: Weights = (1.0, 1.0, 1.0, 1.0)) -> Array:
    """The deltas that take each proposal to its reference box
    (``BoxCoder(weights).encode_single(reference_boxes, proposals)``)::

        dx = wx * (ref_cx - cx) / w      dw = ww * log(ref_w / w)
        dy = wy * (ref_cy - cy) / h      dh = wh * log(ref_h / h)

    Args:
        reference_boxes: (N, 4) boxes ``x1, y1, x2, y2`` (the regression
            targets, e.g. the matched ground truth).
        proposals: (N, 4) boxes of the same dtype and device (anchors or
            proposals).
        weights: 4 positive numbers ``(wx, wy, ww, wh)``, e.g. (10, 10, 5, 5).

    Returns:
        (N, 4) deltas in the dtype of the boxes. Empty proposals give inf/NaN
        deltas, as in torchvision. The result is a regression target: for torch
        tensors it never requires grad (no gradient flows to either input).
    """
    if is_scripting():
        return torch.ops.detcore.encode_boxes(reference_boxes.detach(), proposals.detach(),
                                              [weights[0], weights[1], weights[2], weights[3]])
    node = fx_node(encode_boxes, reference_boxes, proposals, weights)
    if node is not None:
        return node
    weights = _check_weights(weights)
    kind, (reference_boxes, proposals) = prepare(reference_boxes=reference_boxes, proposals=proposals)
    if kind == TORCH_KIND:
        return torch.ops.detcore.encode_boxes(reference_boxes.detach(), proposals.detach(), weights)
    return _encode_boxes(NUMPY, reference_boxes, proposals, weights)


def decode_boxes(
    deltas: Array, boxes: Array, weights: Weights = (1.0, 1.0, 1.0, 1.0), clamp: float = DEFAULT_CLAMP
) -> Array:
    """The boxes that `deltas` take `boxes` to (``BoxCoder(weights,
    clamp).decode_single(deltas, boxes)``)::

        cx' = dx / wx * w + cx           w' = exp(min(dw / ww, clamp)) * w
        x1' = cx' - w' / 2               x2' = cx' + w' / 2     (and y, h)

    Args:
        deltas: (N, 4 * K) deltas ``dx, dy, dw, dh``, K per box (e.g. one per
            class), float32, float64, float16 or bfloat16 (computed in float).
        boxes: (N, 4) reference boxes (anchors or proposals); a floating dtype,
            converted to the dtype of `deltas` as torchvision does.
        weights: 4 positive numbers ``(wx, wy, ww, wh)``.
        clamp: the largest ``dw / ww`` and ``dh / wh`` fed to exp (default
            ``log(1000 / 16)``); ``math.inf`` turns it off. NaN deltas give
            NaN boxes; huge ones never overflow past ``exp(clamp)``.

    Returns:
        (N, 4 * K) boxes ``x1, y1, x2, y2``, in the dtype of `deltas`.
        Differentiable for torch tensors, with respect to `deltas` and `boxes`
        (no gradient to dw, dh where they exceed the clamp, as torch.clamp).
    """
    if is_scripting():
        if deltas.is_floating_point() and boxes.is_floating_point() and boxes.dtype != deltas.dtype:
            boxes = boxes.to(deltas.dtype)
        return torch.ops.detcore.decode_boxes(deltas, boxes, [weights[0], weights[1], weights[2], weights[3]], clamp)
    node = fx_node(decode_boxes, deltas, boxes, weights, clamp)
    if node is not None:
        return node
    weights = _check_weights(weights)
    clamp = _check_clamp(clamp)
    kind, (deltas, boxes) = prepare(deltas=deltas, boxes=boxes)
    if _is_floating(deltas) and _is_floating(boxes) and boxes.dtype != deltas.dtype:
        boxes = boxes.to(deltas.dtype) if kind == TORCH_KIND else boxes.astype(deltas.dtype)
    if kind == TORCH_KIND:
        return torch.ops.detcore.decode_boxes(deltas, boxes, weights, clamp)
    return _decode_boxes(NUMPY, deltas, boxes, weights, clamp)


if torch is not None:

    @torch.library.custom_op("detcore::encode_boxes", mutates_args=())
    def _encode_boxes_op(reference_boxes: torch.Tensor, proposals: torch.Tensor, weights: list[float]) -> torch.Tensor:
        # The weights are checked here too, for TorchScript callers.
        return _encode_boxes(TORCH, reference_boxes.contiguous(), proposals.contiguous(), _check_weights(weights))

    @_encode_boxes_op.register_fake
    def _(reference_boxes, proposals, weights):
        _check_pairs(reference_boxes, proposals)
        return reference_boxes.new_empty(reference_boxes.shape)

    @torch.library.custom_op("detcore::decode_boxes", mutates_args=())
    def _decode_boxes_op(deltas: torch.Tensor, boxes: torch.Tensor, weights: list[float], clamp: float) -> torch.Tensor:
        # The scalars are checked here too, for TorchScript callers.
        return _decode_boxes(TORCH, deltas.contiguous(), boxes.contiguous(), _check_weights(weights),
                             _check_clamp(clamp))

    @_decode_boxes_op.register_fake
    def _(deltas, boxes, weights, clamp):
        _check_deltas(deltas, boxes)
        return deltas.new_empty(deltas.shape)

    @torch.library.custom_op("detcore::decode_boxes_backward", mutates_args=())
    def _decode_boxes_backward_op(
        grad: torch.Tensor, deltas: torch.Tensor, boxes: torch.Tensor, weights: list[float], clamp: float
    ) -> tuple[torch.Tensor, torch.Tensor]:
        grad, deltas, boxes = grad.contiguous(), deltas.contiguous(), boxes.contiguous()
        grad_deltas, grad_boxes = torch.empty_like(deltas), torch.empty_like(boxes)
        _C.decode_boxes_backward(weights, clamp, TORCH.native(grad), TORCH.native(deltas), TORCH.native(boxes),
                                 TORCH.native(grad_deltas), TORCH.native(grad_boxes), TORCH.stream(deltas))
        return grad_deltas, grad_boxes

    @_decode_boxes_backward_op.register_fake
    def _(grad, deltas, boxes, weights, clamp):
        return torch.empty_like(deltas), torch.empty_like(boxes)

    def _decode_setup_context(ctx, inputs, output):
        deltas, boxes, weights, clamp = inputs
        ctx.save_for_backward(deltas, boxes)
        ctx.weights, ctx.clamp = weights, clamp

    def _decode_backward(ctx, grad):
        deltas, boxes = ctx.saved_tensors
        grad_deltas, grad_boxes = torch.ops.detcore.decode_boxes_backward(grad, deltas, boxes, ctx.weights, ctx.clamp)
        return grad_deltas, grad_boxes, None, None

    _decode_boxes_op.register_autograd(_decode_backward, setup_context=_decode_setup_context)

    # Leaf nodes for torch.fx when called through this module's globals.
    torch.fx.wrap("encode_boxes")
    torch.fx.wrap("decode_boxes")
