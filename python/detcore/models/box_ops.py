"""Pure-tensor box helpers used by the heads (the hot box ops are in detcore.ops)."""

from __future__ import annotations

import torch

from .. import ops
from ..ops.box_coding import DEFAULT_CLAMP


def clip_boxes(boxes: torch.Tensor, image_size) -> torch.Tensor:
    """Clamp (..., 4) boxes to [0, W] x [0, H]."""
    h, w = image_size
    x = boxes[..., 0::2].clamp(min=0, max=w)
    y = boxes[..., 1::2].clamp(min=0, max=h)
    return torch.stack((x, y), dim=-1).reshape(boxes.shape)


def nonsmall(boxes: torch.Tensor, min_size: float) -> torch.Tensor:
    """Indices of boxes whose width and height are both >= min_size."""
    ws, hs = boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]
    return torch.where((ws >= min_size) & (hs >= min_size))[0]


def box_area(boxes: torch.Tensor) -> torch.Tensor:
    return (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])


class BoxCoder:
    """(dx, dy, dw, dh) box coding with per-coordinate weights, through
    detcore.ops.encode_boxes / decode_boxes."""

    def __init__(self, weights, clamp: float = DEFAULT_CLAMP):
        self.weights = tuple(float(w) for w in weights)
        self.clamp = clamp

    def encode(self, gt_boxes: torch.Tensor, proposals: torch.Tensor) -> torch.Tensor:
        """Regression targets (N, 4) taking `proposals` onto `gt_boxes`."""
        return ops.encode_boxes(gt_boxes, proposals, self.weights)

    def decode(self, deltas: torch.Tensor, boxes: torch.Tensor) -> torch.Tensor:
        """Decode (N, 4k) deltas against (N, 4) boxes into (N, k, 4) boxes."""
        n = boxes.shape[0]
        k = deltas.shape[-1] // 4 if deltas.dim() > 1 else 1
        deltas = deltas.reshape(n, 4 * k)
        return ops.decode_boxes(deltas, boxes, self.weights, self.clamp).reshape(n, k, 4)
