"""Fast R-CNN box head: two fc layers, softmax classifier and class-specific
box regression; multi-task loss and per-class NMS post-processing."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ... import ops
from ..box_ops import clip_boxes, nonsmall
from ..layers import smooth_l1_loss


class TwoFCHead(nn.Module):
    """flatten -> fc6 -> relu -> fc7 -> relu (optional dropout, as VGG16's).

    ``svd_ranks=(k6, k7)``: at test time (eval mode) fc6 and fc7 run as their
    rank-k truncated SVD (Fast R-CNN, section 3.1; 0 leaves a layer whole).
    Training and the state dict keep the full layers, so a checkpoint trained
    without it evaluates with it; the factors are computed when the head is
    switched to eval mode (outside any timed inference) and again whenever the
    weights change."""

    def __init__(self, in_features: int, hidden: int = 1024, dropout: float = 0.0, svd_ranks=()):
        super().__init__()
        self.fc6 = nn.Linear(in_features, hidden)
        self.fc7 = nn.Linear(hidden, hidden)
        self.dropout = nn.Dropout(dropout) if dropout > 0 else nn.Identity()
        self.out_features = hidden
        self.svd_ranks = check_svd_ranks(svd_ranks, in_features, hidden)
        self._low_rank = {}  # layer name -> (key of the weights it came from, factorised layer)

    def train(self, mode: bool = True):
        super().train(mode)
        if not mode:
            for name in self._svd_layers():
                self._factorised(name)
        return self

    def _svd_layers(self):
        return [name for name, rank in zip(("fc6", "fc7"), self.svd_ranks) if rank]

    def _factorised(self, name: str) -> nn.Module:
        from ..svd import low_rank_linear

        layer = getattr(self, name)
        rank = self.svd_ranks[0 if name == "fc6" else 1]
        key = (layer.weight.data_ptr(), layer.weight._version, layer.weight.dtype, rank)
        cached = self._low_rank.get(name)
        if cached is None or cached[0] != key:
            cached = (key, low_rank_linear(layer, rank))
            self._low_rank[name] = cached
        return cached[1]

    def _layer(self, name: str) -> nn.Module:
        if self.training or not self.svd_ranks or name not in self._svd_layers():
            return getattr(self, name)
        return self._factorised(name)

    def forward(self, x):
        x = self.dropout(F.relu(self._layer("fc6")(x.flatten(1))))
        return self.dropout(F.relu(self._layer("fc7")(x)))


def check_svd_ranks(svd_ranks, in_features: int, hidden: int) -> tuple:
    """``()`` (no compression) or ``(k6, k7)`` ranks within each layer's size (0: that layer whole)."""
    if svd_ranks is None or (isinstance(svd_ranks, (tuple, list)) and len(svd_ranks) == 0):
        return ()
    limits = (min(in_features, hidden), hidden)
    ok = (isinstance(svd_ranks, (tuple, list)) and len(svd_ranks) == 2
          and all(isinstance(k, int) and not isinstance(k, bool) and 0 <= k <= m for k, m in zip(svd_ranks, limits)))
    if not ok:
        raise ValueError(f"svd_ranks: expected () or (fc6 rank, fc7 rank) with 0 <= fc6 rank <= {limits[0]} and "
                         f"0 <= fc7 rank <= {limits[1]} (0 = not compressed), got {svd_ranks!r}")
    return tuple(int(k) for k in svd_ranks)


class BoxPredictor(nn.Module):
    """Class scores (num_classes, background = 0) and per-class deltas."""

    def __init__(self, in_features: int, num_classes: int):
        super().__init__()
        self.cls_score = nn.Linear(in_features, num_classes)
        self.bbox_pred = nn.Linear(in_features, num_classes * 4)
        nn.init.normal_(self.cls_score.weight, std=0.01)
        nn.init.normal_(self.bbox_pred.weight, std=0.001)
        nn.init.constant_(self.cls_score.bias, 0)
        nn.init.constant_(self.bbox_pred.bias, 0)

    def forward(self, x):
        x = x.flatten(1)
        return self.cls_score(x), self.bbox_pred(x)


def box_loss(class_logits, box_deltas, labels, reg_targets, cls_weight: float = 1.0, reg_weight: float = 1.0):
    """``{"loss_classifier", "loss_box_reg"}``: log loss over the sampled RoIs +
    smooth L1 (beta 1/9) on the foreground RoIs' deltas of their class,
    normalised by the RoI count, each times its weight. A loss of weight 0 is
    left out (not computed), so its layer gets no gradient at all."""
    losses = {}
    if cls_weight:
        losses["loss_classifier"] = cls_weight * F.cross_entropy(class_logits, labels)
    if reg_weight:
        fg = torch.where(labels > 0)[0]
        deltas = box_deltas.reshape(box_deltas.shape[0], -1, 4)[fg, labels[fg]]
        reg_loss = smooth_l1_loss(deltas, reg_targets[fg], beta=1 / 9) / max(1, labels.numel())
        losses["loss_box_reg"] = reg_weight * reg_loss
    return losses


def box_loss_per_roi(class_logits, box_deltas, labels, reg_targets, cls_weight: float = 1.0,
                     reg_weight: float = 1.0):
    """Each RoI's share of :func:`box_loss` with the same weights: its log loss
    plus, for a foreground RoI, the smooth L1 of its class's deltas (their
    mean over the RoIs is box_loss's sum). What online hard example mining
    ranks RoIs by."""
    loss = cls_weight * F.cross_entropy(class_logits, labels, reduction="none")
    fg = torch.where(labels > 0)[0]
    deltas = box_deltas.reshape(box_deltas.shape[0], -1, 4)[fg, labels[fg]]
    reg = smooth_l1_loss(deltas, reg_targets[fg], beta=1 / 9, reduction="none").sum(1)
    return loss.index_add(0, fg, (reg_weight * reg).to(loss.dtype))


def postprocess_boxes(
    class_logits, box_deltas, proposals, image_sizes, box_coder, score_thresh, nms_thresh, detections_per_img
):
    """Per image: decode every class's box, clip, drop background and scores
    <= score_thresh and tiny boxes, per-class NMS, keep the best.
    ``box_deltas`` None: no regression, every class's box is the proposal."""
    num_classes = class_logits.shape[-1]
    counts = [p.shape[0] for p in proposals]
    if box_deltas is None:
        boxes_all = torch.cat(proposals).to(class_logits.dtype)[:, None, :].expand(-1, num_classes, 4)
    elif sum(counts):
        boxes_all = box_coder.decode(box_deltas, torch.cat(proposals))
    else:
        boxes_all = box_deltas.new_zeros((0, num_classes, 4))
    scores_all = F.softmax(class_logits, -1)
    results = []
    for boxes, scores, size in zip(boxes_all.split(counts), scores_all.split(counts), image_sizes):
        boxes = clip_boxes(boxes, size)[:, 1:].reshape(-1, 4)
        labels = torch.arange(1, num_classes, device=scores.device).expand(scores.shape[0], -1).reshape(-1)
        scores = scores[:, 1:].reshape(-1)
        keep = torch.where(scores > score_thresh)[0]
        boxes, scores, labels = boxes[keep], scores[keep], labels[keep]
        keep = nonsmall(boxes, 1e-2)
        boxes, scores, labels = boxes[keep], scores[keep], labels[keep]
        keep = ops.batched_nms(boxes, scores, labels, nms_thresh)[:detections_per_img]
        results.append({"boxes": boxes[keep], "labels": labels[keep], "scores": scores[keep]})
    return results
