"""Non-maximum suppression: nms and batched_nms."""

from __future__ import annotations

import numpy as np

from .. import _C
from ._interop import NUMPY, TORCH, TORCH_KIND, check_boxes, check_float, check_ndim, dtype_name, prepare, torch
from ._scripting import Array, fx_node, is_scripting


def _check_threshold(iou_threshold) -> float:
    value = check_float(iou_threshold, "iou_threshold", minimum=0.0)
    if value == float("inf"):
        raise ValueError(f"iou_threshold: expected a finite number >= 0, got {value}")
    return value


def _check_nms_args(boxes, scores, idxs, iou_threshold) -> float:
    check_boxes(boxes, "boxes")
    check_ndim(scores, "scores", 1, "(N,)")
    if scores.shape[0] != boxes.shape[0]:
        raise ValueError(f"scores: expected shape ({boxes.shape[0]},) to match boxes, got {tuple(scores.shape)}")
    if idxs is not None:
        check_ndim(idxs, "idxs", 1, "(N,)")
        if idxs.shape[0] != boxes.shape[0]:
            raise ValueError(f"idxs: expected shape ({boxes.shape[0]},) to match boxes, got {tuple(idxs.shape)}")
    return _check_threshold(iou_threshold)


def _as_int64_class_ids(idxs):
    """Class ids of any integer dtype as int64 (torchvision takes any)."""
    if idxs.dtype in (np.int8, np.int16, np.int32, np.uint8, np.uint16, np.uint32):
        return idxs.astype(np.int64)
    if torch is not None and idxs.dtype in (torch.int8, torch.int16, torch.int32, torch.uint8):
        return idxs.to(torch.int64)
    return idxs


def _nms(xp, boxes, scores, idxs, iou_threshold):
    """Kept indices (int64) in decreasing score order; idxs None for plain nms."""
    iou_threshold = _check_nms_args(boxes, scores, idxs, iou_threshold)
    n = boxes.shape[0]
    keep = xp.empty((n,), xp.int64, like=boxes)
    device = xp.device(boxes)
    workspace = xp.workspace(_C.nms_workspace_bytes(device, dtype_name(boxes.dtype), iou_threshold, n), like=boxes)
    stream = xp.stream(boxes)
    if idxs is None:
        count = _C.nms(
            iou_threshold, xp.native(boxes), xp.native(scores), xp.native(keep), xp.native(workspace), stream
        )
    else:
        count = _C.batched_nms(
            iou_threshold, xp.native(boxes), xp.native(scores), xp.native(idxs), xp.native(keep),
            xp.native(workspace), stream,
        )
    if count == n:
        return keep
    # An exact-size result, so a few kept boxes don't hold an N-long buffer.
    kept = xp.empty((count,), xp.int64, like=boxes)
    kept[:] = keep[:count]
    return kept


def nms(boxes: Array, scores: Array, iou_threshold: float) -> Array:
    """Greedy non-maximum suppression, as ``torchvision.ops.nms``.

    Boxes are visited in decreasing score order (equal scores: lower index
    first); a box is dropped when its IoU with an already kept box is
    strictly greater than ``iou_threshold``. A NaN IoU (e.g. two empty boxes)
    never suppresses. NaN scores rank below every number, -inf included (so
    such boxes come last and suppress nothing ranked above them); torchvision
    instead ranks NaN first. The IoU, computed in the boxes' dtype (float for
    float16/bfloat16), is compared with the threshold as a double, as
    torchvision's CPU kernel does: a float32 IoU of exactly 0.3 suppresses at
    ``iou_threshold=0.3`` (float32(0.3) > 0.3).

    Args:
        boxes: (N, 4) boxes ``x1, y1, x2, y2``; float32, float64, float16
            or bfloat16 (the half types with a float IoU).
        scores: (N,) scores of the same dtype and device.
        iou_threshold: finite number >= 0.

    Returns:
        int64 (K,) indices of the kept boxes in decreasing score order.
    """
    if is_scripting():
        return torch.ops.detcore.nms(boxes, scores, iou_threshold)
    node = fx_node(nms, boxes, scores, iou_threshold)
    if node is not None:
        return node
    kind, (boxes, scores) = prepare(boxes=boxes, scores=scores)
    if kind == TORCH_KIND:
        return torch.ops.detcore.nms(boxes, scores, _check_threshold(iou_threshold))
    return _nms(NUMPY, boxes, scores, None, iou_threshold)


def batched_nms(boxes: Array, scores: Array, idxs: Array, iou_threshold: float) -> Array:
    """Non-maximum suppression per class, as ``torchvision.ops.batched_nms``.

    Boxes with different ``idxs`` never suppress each other (compared as
    class ids, not by offsetting coordinates, so huge coordinates are safe).
    The kept indices of all classes come in one decreasing score order,
    ties by lower index, NaN scores last, as for `nms`.

    Args:
        boxes: (N, 4) boxes, scores: (N,) as for `nms`.
        idxs: (N,) integer class ids (any values; converted to int64).
        iou_threshold: finite number >= 0.

    Returns:
        int64 (K,) indices of the kept boxes in decreasing score order.
        Empty 1-D boxes (shape (0,)) give an empty result without further
        checks, as in torchvision.
    """
    if is_scripting():
        if boxes.dim() == 1 and boxes.size(0) == 0:
            return torch.empty((0,), dtype=torch.int64, device=boxes.device)
        if idxs.dtype in [torch.int8, torch.int16, torch.int32, torch.uint8]:  # as _as_int64_class_ids
            idxs = idxs.to(torch.int64)
        return torch.ops.detcore.batched_nms(boxes, scores, idxs, iou_threshold)
    node = fx_node(batched_nms, boxes, scores, idxs, iou_threshold)
    if node is not None:
        return node
    kind, (boxes, scores, idxs) = prepare(boxes=boxes, scores=scores, idxs=idxs)
    if boxes.ndim == 1 and boxes.shape[0] == 0:  # torchvision's empty input
        xp = TORCH if kind == TORCH_KIND else NUMPY
        return xp.empty((0,), xp.int64, like=boxes)
    idxs = _as_int64_class_ids(idxs)
    if kind == TORCH_KIND:
        return torch.ops.detcore.batched_nms(boxes, scores, idxs, _check_threshold(iou_threshold))
    return _nms(NUMPY, boxes, scores, idxs, iou_threshold)


if torch is not None:

    def _fake_keep(boxes, scores, idxs, iou_threshold):
        _check_nms_args(boxes, scores, idxs, iou_threshold)
        count = torch.library.get_ctx().new_dynamic_size()
        return boxes.new_empty((count,), dtype=torch.int64)

    @torch.library.custom_op("detcore::nms", mutates_args=())
    def _nms_op(boxes: torch.Tensor, scores: torch.Tensor, iou_threshold: float) -> torch.Tensor:
        return _nms(TORCH, boxes.contiguous(), scores.contiguous(), None, iou_threshold)

    @_nms_op.register_fake
    def _(boxes, scores, iou_threshold):
        return _fake_keep(boxes, scores, None, iou_threshold)

    @torch.library.custom_op("detcore::batched_nms", mutates_args=())
    def _batched_nms_op(
        boxes: torch.Tensor, scores: torch.Tensor, idxs: torch.Tensor, iou_threshold: float
    ) -> torch.Tensor:
        return _nms(TORCH, boxes.contiguous(), scores.contiguous(), idxs.contiguous(), iou_threshold)

    @_batched_nms_op.register_fake
    def _(boxes, scores, idxs, iou_threshold):
        return _fake_keep(boxes, scores, idxs, iou_threshold)

    # Leaf nodes for torch.fx when called through this module's globals.
    torch.fx.wrap("nms")
    torch.fx.wrap("batched_nms")
