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
    """flatten -> fc6 -> relu -> fc7 -> relu (optional dropout, as VGG16's)."""

    def __init__(self, in_features: int, hidden: int = 1024, dropout: float = 0.0):
        super().__init__()
        self.fc6 = nn.Linear(in_features, hidden)
        self.fc7 = nn.Linear(hidden, hidden)
        self.dropout = nn.Dropout(dropout) if dropout > 0 else nn.Identity()
        self.out_features = hidden

    def forward(self, x):
        x = self.dropout(F.relu(self.fc6(x.flatten(1))))
        return self.dropout(F.relu(self.fc7(x)))


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
