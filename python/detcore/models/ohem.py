"""Online hard example mining (Shrivastava et al., "Training Region-based
Object Detectors with Online Hard Example Mining", CVPR 2016): score every
candidate example of an image by its loss, suppress the boxes that overlap a
higher-loss one (non-maximum suppression by loss, so one hard region does not
fill the batch with near copies of itself), and train on the highest-loss
survivors only.

Used by the RoI heads (``roi_sampler="ohem"``) and by RetinaNet's dense head
(``dense_loss="ohem"``, the comparison of the RetinaNet paper's Table 1d)."""

from __future__ import annotations

import math
from typing import Optional

import torch

from .. import ops


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def check_ohem_settings(batch_size: int, nms_thresh: float, positive_fraction: Optional[float] = None,
                        batch_name: str = "ohem_batch_size_per_image") -> None:
    """ValueError naming the OHEM setting that is out of range."""
    if not _is_number(batch_size) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"{batch_name}: expected an int >= 1, got {batch_size!r}")
    if not _is_number(nms_thresh) or not 0 <= nms_thresh < math.inf:
        raise ValueError(f"ohem_nms_thresh: expected a number >= 0 (>= 1: no suppression), got {nms_thresh!r}")
    if positive_fraction is not None and (not _is_number(positive_fraction) or not 0 < positive_fraction <= 1):
        raise ValueError(f"ohem_positive_fraction: expected None (no ratio) or a number in (0, 1], "
                         f"got {positive_fraction!r}")


def _quota(kept: torch.Tensor, positive: Optional[torch.Tensor], batch_size: int,
           positive_fraction: Optional[float], positives_left: bool):
    """(the chosen examples among ``kept``, whether examples further down the
    loss order could still change the choice)."""
    if positive_fraction is None:
        return kept[:batch_size], kept.numel() < batch_size
    is_pos = positive[kept]
    pos_quota = int(batch_size * positive_fraction)
    pos, neg = kept[is_pos], kept[~is_pos]
    num_pos = min(pos_quota, pos.numel())
    # negatives per positive: 3 for the 1:3 of SSD and of the RetinaNet paper's "OHEM 1:3"
    neg_quota = min(batch_size - num_pos, int(round(num_pos * (1 - positive_fraction) / positive_fraction)))
    chosen = torch.cat([pos[:num_pos], neg[:neg_quota]])
    return chosen, (positives_left and pos.numel() < pos_quota) or neg.numel() < neg_quota


def hardest_examples(boxes: torch.Tensor, losses: torch.Tensor, batch_size: int, nms_thresh: float,
                     positive: Optional[torch.Tensor] = None,
                     positive_fraction: Optional[float] = None) -> torch.Tensor:
    """The examples OHEM trains on, as int64 indices into ``boxes``/``losses``.

    Greedy NMS visits the examples by decreasing loss (equal losses: lower
    index first) and drops every box whose IoU with a kept box is above
    ``nms_thresh`` (>= 1: nothing is dropped); of the survivors the
    ``batch_size`` with the highest loss are kept.

    With ``positive_fraction`` f (and ``positive``, a bool mask of the
    foreground examples) the batch keeps the foreground:background ratio
    f : 1 - f of SSD's hard negative mining (0.25: the "OHEM 1:3" of the
    RetinaNet paper): at most ``int(batch_size * f)`` surviving positives, the
    highest-loss ones, then ``(1 - f) / f`` negatives per positive taken, also
    the highest-loss ones. An image without positives then gives no examples.

    Returns positives first, then negatives, each by decreasing loss (without
    ``positive_fraction``: all by decreasing loss). Fewer candidates than
    ``batch_size`` give them all (after NMS). Losses are only compared, never
    differentiated; a NaN loss ranks below every number."""
    check_ohem_settings(batch_size, nms_thresh, positive_fraction, batch_name="batch_size")
    if boxes.ndim != 2 or boxes.shape[-1] != 4 or losses.shape != boxes.shape[:1]:
        raise ValueError(f"boxes, losses: expected shapes (N, 4) and (N,), got {tuple(boxes.shape)} and "
                         f"{tuple(losses.shape)}")
    if positive_fraction is not None and (positive is None or positive.shape != losses.shape):
        raise ValueError("positive: expected a bool mask of shape (N,) with positive_fraction")
    # a NaN loss ranks last, as ops.nms ranks a NaN score, so both orders agree
    losses = torch.nan_to_num(losses.detach(), nan=-math.inf)
    boxes = boxes.detach().to(losses.dtype)
    n = losses.shape[0]
    # Greedy NMS over the k highest-loss examples keeps exactly the examples a
    # full NMS keeps among them, so a prefix that already yields the batch is
    # enough: anchors number ~10^5 per image and their NMS is quadratic.
    order = torch.sort(losses, descending=True, stable=True).indices
    k = min(n, 4 * batch_size)
    while True:
        prefix = order[:k]
        kept = prefix[ops.nms(boxes[prefix], losses[prefix], float(nms_thresh))]
        positives_left = positive_fraction is not None and bool(positive[order[k:]].any())
        chosen, short = _quota(kept, positive, batch_size, positive_fraction, positives_left)
        if not short or k == n:
            return chosen
        k = min(n, 2 * k)
