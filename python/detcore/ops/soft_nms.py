"""Soft-NMS (Bodla et al. 2017): soft_nms and batched_soft_nms."""

from __future__ import annotations

import math
from typing import Tuple

from .. import _C
from ._interop import (
    NUMPY,
    TORCH,
    TORCH_KIND,
    check_boxes,
    check_float,
    check_ndim,
    prepare,
    query_dtype_name,
    torch,
)
from ._scripting import Array, fx_node, is_scripting
from .box_iou_variants import cpu_half, narrow, widen
from .nms import _as_int64_class_ids, _check_threshold

_METHODS = ("gaussian", "linear")


def _check_params(iou_threshold, sigma, score_threshold, method) -> Tuple[float, float, float, str]:
    if not isinstance(method, str) or method not in _METHODS:
        raise ValueError(f"method: expected 'gaussian' or 'linear', got {method!r}")
    iou_threshold = _check_threshold(iou_threshold)
    sigma = check_float(sigma, "sigma")
    if not 0 < sigma < math.inf:
        raise ValueError(f"sigma: expected a finite number > 0, got {sigma}")
    score_threshold = check_float(score_threshold, "score_threshold")
    if math.isnan(score_threshold):
        raise ValueError("score_threshold: expected a number, got nan")
    return iou_threshold, sigma, score_threshold, method


def _check_arrays(boxes, scores, idxs) -> None:
    check_boxes(boxes, "boxes")
    check_ndim(scores, "scores", 1, "(N,)")
    if scores.shape[0] != boxes.shape[0]:
        raise ValueError(f"scores: expected shape ({boxes.shape[0]},) to match boxes, got {tuple(scores.shape)}")
    if idxs is not None:
        check_ndim(idxs, "idxs", 1, "(N,)")
        if idxs.shape[0] != boxes.shape[0]:
            raise ValueError(f"idxs: expected shape ({boxes.shape[0]},) to match boxes, got {tuple(idxs.shape)}")


def _soft_nms(xp, boxes, scores, idxs, iou_threshold, sigma, score_threshold, method):
    """(kept indices int64 (K,), their decayed scores (K,))."""
    _check_arrays(boxes, scores, idxs)
    iou_threshold, sigma, score_threshold, method = _check_params(iou_threshold, sigma, score_threshold, method)
    if cpu_half(xp, boxes) and scores.dtype == boxes.dtype:
        keep, kept_scores = _soft_nms(
            xp, widen(boxes), widen(scores), idxs, iou_threshold, sigma, score_threshold, method
        )
        return keep, narrow(kept_scores, scores.dtype)
    n = boxes.shape[0]
    keep = xp.empty((n,), xp.int64, like=boxes)
    out_scores = xp.empty((n,), scores.dtype, like=boxes)
    nbytes = _C.soft_nms_workspace_bytes(
        str(xp.device(boxes)), query_dtype_name(boxes, "boxes"), method, iou_threshold, sigma, score_threshold, n
    )
    workspace = xp.workspace(nbytes, like=boxes)
    count = _C.soft_nms(
        method,
        iou_threshold,
        sigma,
        score_threshold,
        xp.native(boxes),
        xp.native(scores),
        None if idxs is None else xp.native(idxs),
        xp.native(keep),
        xp.native(out_scores),
        xp.native(workspace),
        xp.stream(boxes),
    )
    if count == n:
        return keep, out_scores
    kept, kept_scores = xp.empty((count,), xp.int64, like=boxes), xp.empty((count,), scores.dtype, like=boxes)
    kept[:] = keep[:count]
    kept_scores[:] = out_scores[:count]
    return kept, kept_scores


_RULE_DOC = """
    The rule (Bodla et al. 2017, "Soft-NMS -- Improving Object Detection With
    One Line of Code"): repeatedly output the remaining box M with the
    highest current score, with that score, and multiply the score of every
    other remaining box b by

    * ``method="linear"``: ``1 - iou(M, b)`` when ``iou(M, b) > iou_threshold``
      (strictly, as `nms`), else 1;
    * ``method="gaussian"``: ``exp(-iou(M, b)**2 / sigma)`` for every box;
      ``iou_threshold`` is not used (the paper's and mmcv's convention).

    A box whose score is below ``score_threshold`` (initially or after a
    decay) is discarded. The order is `nms`'s: equal scores take the lower
    index first, NaN scores rank last (they are never discarded and come out
    last, in index order); a NaN IoU leaves the score unchanged. Computed in
    the boxes' dtype (float for float16 / bfloat16 on CUDA).

    Args:
        boxes: (N, 4) boxes ``x1, y1, x2, y2``; float32 or float64 (float16
            and bfloat16 too on CUDA).
        scores: (N,) scores of the same dtype and device."""

_RETURNS_DOC = """
        iou_threshold: finite number >= 0 (linear only).
        sigma: finite number > 0 (gaussian only).
        score_threshold: boxes scoring below it are discarded; -inf keeps all.
        method: "gaussian" or "linear".

    Returns:
        (keep, scores): the kept boxes' int64 indices (K,) and their decayed
        scores (K,), in decreasing score order.
"""


def soft_nms(
    boxes: Array,
    scores: Array,
    iou_threshold: float = 0.3,
    sigma: float = 0.5,
    score_threshold: float = 0.001,
    method: str = "gaussian",
) -> Tuple[Array, Array]:
    if is_scripting():
        return torch.ops.detcore.soft_nms(boxes, scores, iou_threshold, sigma, score_threshold, method)
    node = fx_node(soft_nms, boxes, scores, iou_threshold, sigma, score_threshold, method)
    if node is not None:
        return node
    params = _check_params(iou_threshold, sigma, score_threshold, method)
    kind, (boxes, scores) = prepare(boxes=boxes, scores=scores)
    if kind == TORCH_KIND:
        return torch.ops.detcore.soft_nms(boxes, scores, *params)
    return _soft_nms(NUMPY, boxes, scores, None, *params)


def batched_soft_nms(
    boxes: Array,
    scores: Array,
    idxs: Array,
    iou_threshold: float = 0.3,
    sigma: float = 0.5,
    score_threshold: float = 0.001,
    method: str = "gaussian",
) -> Tuple[Array, Array]:
    if is_scripting():
        return torch.ops.detcore.batched_soft_nms(
            boxes, scores, idxs.to(torch.int64), iou_threshold, sigma, score_threshold, method
        )
    node = fx_node(batched_soft_nms, boxes, scores, idxs, iou_threshold, sigma, score_threshold, method)
    if node is not None:
        return node
    params = _check_params(iou_threshold, sigma, score_threshold, method)
    kind, (boxes, scores, idxs) = prepare(boxes=boxes, scores=scores, idxs=idxs)
    idxs = _as_int64_class_ids(idxs)
    if kind == TORCH_KIND:
        return torch.ops.detcore.batched_soft_nms(boxes, scores, idxs, *params)
    return _soft_nms(NUMPY, boxes, scores, idxs, *params)


soft_nms.__doc__ = (
    "Soft-NMS, decaying the scores of overlapping boxes instead of dropping them.\n" + _RULE_DOC + _RETURNS_DOC
)
batched_soft_nms.__doc__ = (
    "Soft-NMS per class: boxes with different ``idxs`` never decay each other; all classes come out in one\n"
    "    decreasing score order (ties by lower index).\n"
    + _RULE_DOC
    + "\n        idxs: (N,) integer class ids (converted to int64)."
    + _RETURNS_DOC
)


if torch is not None:

    def _fake(boxes, scores, idxs):
        _check_arrays(boxes, scores, idxs)
        count = torch.library.get_ctx().new_dynamic_size()
        return boxes.new_empty((count,), dtype=torch.int64), scores.new_empty((count,))

    @torch.library.custom_op("detcore::soft_nms", mutates_args=())
    def _soft_nms_op(
        boxes: torch.Tensor,
        scores: torch.Tensor,
        iou_threshold: float,
        sigma: float,
        score_threshold: float,
        method: str,
    ) -> Tuple[torch.Tensor, torch.Tensor]:
        return _soft_nms(
            TORCH, boxes.contiguous(), scores.contiguous(), None, iou_threshold, sigma, score_threshold, method
        )

    @_soft_nms_op.register_fake
    def _(boxes, scores, iou_threshold, sigma, score_threshold, method):
        return _fake(boxes, scores, None)

    @torch.library.custom_op("detcore::batched_soft_nms", mutates_args=())
    def _batched_soft_nms_op(
        boxes: torch.Tensor,
        scores: torch.Tensor,
        idxs: torch.Tensor,
        iou_threshold: float,
        sigma: float,
        score_threshold: float,
        method: str,
    ) -> Tuple[torch.Tensor, torch.Tensor]:
        return _soft_nms(
            TORCH,
            boxes.contiguous(),
            scores.contiguous(),
            idxs.contiguous(),
            iou_threshold,
            sigma,
            score_threshold,
            method,
        )

    @_batched_soft_nms_op.register_fake
    def _(boxes, scores, idxs, iou_threshold, sigma, score_threshold, method):
        return _fake(boxes, scores, idxs)

    torch.fx.wrap("soft_nms")
    torch.fx.wrap("batched_soft_nms")
