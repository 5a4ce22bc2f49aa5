"""Pairwise intersection over union of two sets of boxes."""

from __future__ import annotations

import numpy as np

from .. import _C
from ._interop import NUMPY, TORCH, TORCH_KIND, check_boxes, dtype_name, prepare, torch
from ._scripting import Array, fx_node, is_scripting


def _iou_dtype(xp, boxes_dtype):
    """The boxes' dtype, or float32 for integer boxes (as torchvision)."""
    if dtype_name(boxes_dtype) in ("int32", "int64"):
        return np.float32 if xp is NUMPY else torch.float32
    return boxes_dtype


def _box_iou(xp, boxes1, boxes2):
    check_boxes(boxes1, "boxes1")
    check_boxes(boxes2, "boxes2", "(M, 4)")
    out = xp.empty((boxes1.shape[0], boxes2.shape[0]), _iou_dtype(xp, boxes1.dtype), like=boxes1)
    _C.box_iou(xp.native(boxes1), xp.native(boxes2), xp.native(out), xp.stream(boxes1))
    return out


def box_iou(boxes1: Array, boxes2: Array) -> Array:
    """IoU of every pair of boxes, as ``torchvision.ops.box_iou``.

    Args:
        boxes1: (N, 4) boxes ``x1, y1, x2, y2``: float32, float64, float16
            or bfloat16 (the half types computed in float), or int32 / int64
            (areas exact in int64, their ratio in float32).
        boxes2: (M, 4) boxes of the same dtype and device.

    Returns:
        (N, M) IoU in the dtype of the boxes (float32 for integer boxes). Boxes with x2 < x1 have a
        negative area, as in torchvision; two empty boxes give NaN (0 / 0).
        Unlike torchvision's composed version it has no gradient (it serves
        matching and NMS); a backward through it raises.
    """
    if is_scripting():
        return torch.ops.detcore.box_iou(boxes1, boxes2)
    node = fx_node(box_iou, boxes1, boxes2)
    if node is not None:
        return node
    kind, (boxes1, boxes2) = prepare(boxes1=boxes1, boxes2=boxes2)
    if kind == TORCH_KIND:
        return torch.ops.detcore.box_iou(boxes1, boxes2)
    return _box_iou(NUMPY, boxes1, boxes2)


if torch is not None:

    @torch.library.custom_op("detcore::box_iou", mutates_args=())
    def _box_iou_op(boxes1: torch.Tensor, boxes2: torch.Tensor) -> torch.Tensor:
        return _box_iou(TORCH, boxes1.contiguous(), boxes2.contiguous())

    @_box_iou_op.register_fake
    def _(boxes1, boxes2):
        check_boxes(boxes1, "boxes1")
        check_boxes(boxes2, "boxes2", "(M, 4)")
        return boxes1.new_empty((boxes1.shape[0], boxes2.shape[0]), dtype=_iou_dtype(TORCH, boxes1.dtype))

    # A leaf node for torch.fx when called through this module's globals.
    torch.fx.wrap("box_iou")
