"""Proposals of a trained detector's RPN, for proposal files (the Faster R-CNN
paper's alternating training: Fast R-CNN trained on RPN proposals)."""

from __future__ import annotations

from typing import List, Optional, Sequence, Tuple

import torch


def has_rpn(model) -> bool:
    return getattr(model, "rpn", None) is not None and hasattr(model.rpn, "propose")


@torch.no_grad()
def rpn_proposals(model, images: Sequence[torch.Tensor], max_proposals: Optional[int] = None
                  ) -> List[Tuple[torch.Tensor, torch.Tensor]]:
    """``(boxes, objectness logits)`` per image: the RPN's post-NMS proposals
    at test settings, in each input image's pixels. ``max_proposals`` replaces
    the RPN's test-time post-NMS top-n for this call."""
    from ..models.transform import _scale_xy

    if not has_rpn(model):
        raise ValueError(f"model: expected a detector with an RPN (model.rpn), got {type(model).__name__}")
    rpn = model.rpn
    was_training, saved_top_n = model.training, dict(rpn.post_nms_top_n)
    model.eval()
    if max_proposals is not None:
        rpn.post_nms_top_n["testing"] = int(max_proposals)
    try:
        original_sizes = [tuple(int(s) for s in img.shape[-2:]) for img in images]
        batch, _ = model.transform(list(images))
        features = model.backbone(batch.tensors)
        boxes, logits = rpn.propose(batch.shape, batch.image_sizes, features)
    finally:
        rpn.post_nms_top_n = saved_top_n
        model.train(was_training)
    return [(_scale_xy(b.float(), size, orig), lg.float())
            for b, lg, size, orig in zip(boxes, logits, batch.image_sizes, original_sizes)]
