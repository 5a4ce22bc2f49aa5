"""RetinaNet: FPN P3-P7, 4-conv class and box towers shared by the levels,
A = 9 anchors per position, sigmoid focal loss normalised by the number of
positive anchors (or, for the paper's Table 1d comparison, cross entropy on
the anchors online hard example mining picks), per-level top-k before a
class-aware NMS."""

from __future__ import annotations

import math
from typing import Optional

import torch
import torch.nn.functional as F
from torch import nn

from ... import ops
from ..box_ops import BoxCoder, clip_boxes
from ..fuse import fuse
from ..ohem import check_ohem_settings, hardest_examples
from ..proposal.rpn import flatten_level
from ..roi_heads.matching import BETWEEN, Matcher
from ..transform import Transform
from ..validation import check_images, check_targets


def _tower(channels: int, num_convs: int = 4) -> nn.ModuleList:
    convs = nn.ModuleList(nn.Conv2d(channels, channels, 3, padding=1) for _ in range(num_convs))
    for m in convs:
        nn.init.normal_(m.weight, std=0.01)
        nn.init.constant_(m.bias, 0)
    return convs


class RetinaNetHead(nn.Module):
    def __init__(self, in_channels: int, num_anchors: int, num_classes: int, prior_probability: float = 0.01):
        super().__init__()
        self.num_classes = num_classes
        self.cls_tower = _tower(in_channels)
        self.box_tower = _tower(in_channels)
        self.cls_logits = nn.Conv2d(in_channels, num_anchors * num_classes, 3, padding=1)
        self.box_deltas = nn.Conv2d(in_channels, num_anchors * 4, 3, padding=1)
        nn.init.normal_(self.cls_logits.weight, std=0.01)
        # every anchor starts as background with probability 1 - prior: keeps
        # the huge number of easy negatives from swamping the first iterations
        nn.init.constant_(self.cls_logits.bias, -math.log((1 - prior_probability) / prior_probability))
        nn.init.normal_(self.box_deltas.weight, std=0.01)
        nn.init.constant_(self.box_deltas.bias, 0)

    def forward(self, features):
        """Per level: (N, H*W*A, num_classes) logits and (N, H*W*A, 4) deltas."""
        logits, deltas = [], []
        for x in features:
            c, b = x, x
            for conv in self.cls_tower:
                c = F.relu(conv(c))
            for conv in self.box_tower:
                b = F.relu(conv(b))
            logits.append(flatten_level(self.cls_logits(c), self.num_classes))
            deltas.append(flatten_level(self.box_deltas(b), 4))
        return logits, deltas


class RetinaNet(nn.Module):
    """num_classes logits per anchor (torchvision's convention: index 0 is
    background and never a target). Defaults: fg IoU 0.5, bg IoU 0.4,
    focal alpha 0.25, gamma 2, score_thresh 0.05, topk_candidates 1000 per
    level, nms 0.5, 300 detections per image.

    ``dense_loss`` is the classification loss: "focal" (the focal loss over
    every anchor, normalised by the number of positive anchors; with
    ``focal_gamma=0`` it is the alpha-balanced cross entropy of the paper's
    Table 1a), or "ohem": plain sigmoid cross entropy (no alpha, no gamma)
    averaged over the ``ohem_batch_size_per_image`` highest-loss anchors of
    each image left after an NMS of the anchor boxes by their loss at IoU
    ``ohem_nms_thresh``, with at most ``ohem_positive_fraction`` of them
    foreground (None: no ratio; 0.25: "OHEM 1:3") -- the paper's Table 1d,
    whose best OHEM (128 anchors, NMS 0.5, no ratio) gives the defaults.
    Ignored anchors (IoU between the thresholds) are never examples. The box
    regression loss is the same in both: every positive anchor."""

    def __init__(
        self,
        transform: Transform,
        backbone,
        anchor_generator,
        head: RetinaNetHead,
        num_classes: int,
        fg_iou_thresh: float = 0.5,
        bg_iou_thresh: float = 0.4,
        focal_alpha: float = 0.25,
        focal_gamma: float = 2.0,
        score_thresh: float = 0.05,
        nms_thresh: float = 0.5,
        detections_per_img: int = 300,
        topk_candidates: int = 1000,
        dense_loss: str = "focal",
        ohem_batch_size_per_image: int = 128,
        ohem_nms_thresh: float = 0.5,
        ohem_positive_fraction: Optional[float] = None,
    ):
        super().__init__()
        self.transform = transform
        self.backbone = backbone
        self.anchor_generator = anchor_generator
        self.head = head
        self.num_classes = num_classes
        self.matcher = Matcher(fg_iou_thresh, bg_iou_thresh, allow_low_quality=True)
        self.box_coder = BoxCoder((1.0, 1.0, 1.0, 1.0))
        self.focal_alpha = focal_alpha
        self.focal_gamma = focal_gamma
        self.score_thresh = score_thresh
        self.nms_thresh = nms_thresh
        self.detections_per_img = detections_per_img
        self.topk_candidates = topk_candidates
        if dense_loss not in ("focal", "ohem"):
            raise ValueError(f"dense_loss: expected 'focal' or 'ohem', got {dense_loss!r}")
        check_ohem_settings(ohem_batch_size_per_image, ohem_nms_thresh, ohem_positive_fraction)
        self.dense_loss = dense_loss
        self.ohem_batch_size_per_image = ohem_batch_size_per_image
        self.ohem_nms_thresh = ohem_nms_thresh
        self.ohem_positive_fraction = ohem_positive_fraction

    def fuse(self, channels_last=None, winograd=True):
        """Fold the frozen batch norms into the convolutions for inference;
        on the CPU also channels_last weights and Winograd 3x3 convolutions
        (see detcore.models.fuse); returns the model, in eval mode."""
        return fuse(self, channels_last=channels_last, winograd=winograd)

    def forward(self, images, targets=None):
        check_images(images)
        if self.training:
            check_targets(targets, len(images), self.num_classes)
        original_sizes = [tuple(int(s) for s in img.shape[-2:]) for img in images]
        batch, targets = self.transform(images, targets)
        feats = list(self.backbone(batch.tensors).values())
        logits, deltas = self.head(feats)
        anchors = self.anchor_generator(batch.shape, feats)
        if self.training:
            return self._loss(torch.cat(logits, 1), torch.cat(deltas, 1), torch.cat(anchors), targets)
        detections = self._postprocess(logits, deltas, anchors, batch.image_sizes)
        return self.transform.postprocess(detections, batch.image_sizes, original_sizes)

    def _loss(self, logits, deltas, anchors, targets):
        cls_losses, box_losses = [], []
        for lg, dl, t in zip(logits, deltas, targets):
            gt = t["boxes"].to(anchors.dtype)
            matches = self.matcher(ops.box_iou(gt, anchors)) if gt.shape[0] else self.matcher(
                anchors.new_zeros((0, anchors.shape[0]))
            )
            fg = torch.where(matches >= 0)[0]
            num_fg = max(1, fg.numel())
            # integer targets: class id for positives, num_classes = background, -1 = ignored
            cls_t = torch.full_like(matches, self.num_classes)
            cls_t[fg] = t["labels"][matches[fg]]
            cls_t[matches == BETWEEN] = -1
            if self.dense_loss == "ohem":
                cls_losses.append(self._ohem_loss(lg, cls_t, anchors)[0])
            else:
                fl = ops.sigmoid_focal_loss(lg, cls_t, self.focal_alpha, self.focal_gamma, "sum")
                cls_losses.append(fl / num_fg)
            reg_t = self.box_coder.encode(gt[matches[fg]], anchors[fg])
            box_losses.append(F.l1_loss(dl[fg], reg_t, reduction="sum") / num_fg)
        n = len(targets)
        return {"classification": sum(cls_losses) / n, "bbox_regression": sum(box_losses) / n}

    def _ohem_loss(self, logits, cls_targets, anchors):
        """One image's OHEM classification loss and the anchors it trains on.
        A read-only pass scores each anchor by its cross entropy summed over
        the classes; the loss is the mean over the picked anchors, so only
        their logits get a gradient."""
        candidates = torch.where(cls_targets >= 0)[0]
        with torch.no_grad():
            per_anchor = ops.sigmoid_focal_loss(logits[candidates].detach(), cls_targets[candidates], -1.0, 0.0,
                                                "none").sum(1)
        picked = candidates[hardest_examples(
            anchors[candidates], per_anchor, self.ohem_batch_size_per_image, self.ohem_nms_thresh,
            cls_targets[candidates] < self.num_classes, self.ohem_positive_fraction)]
        ce = ops.sigmoid_focal_loss(logits[picked], cls_targets[picked], -1.0, 0.0, "sum")
        return ce / max(1, picked.numel()), picked

    def _postprocess(self, logits, deltas, anchors, image_sizes):
        results = []
        for i, size in enumerate(image_sizes):
            boxes_all, scores_all, labels_all = [], [], []
            for lg, dl, an in zip(logits, deltas, anchors):
                scores = torch.sigmoid(lg[i]).flatten()
                idx = torch.where(scores > self.score_thresh)[0]
                scores, top = scores[idx].topk(min(self.topk_candidates, idx.numel()))
                idx = idx[top]
                anchor_idx = torch.div(idx, self.num_classes, rounding_mode="floor")
                boxes = self.box_coder.decode(dl[i][anchor_idx], an[anchor_idx])[:, 0]
                boxes_all.append(clip_boxes(boxes, size))
                scores_all.append(scores)
                labels_all.append(idx % self.num_classes)
            boxes, scores, labels = torch.cat(boxes_all), torch.cat(scores_all), torch.cat(labels_all)
            keep = ops.batched_nms(boxes, scores, labels, self.nms_thresh)[: self.detections_per_img]
            results.append({"boxes": boxes[keep], "scores": scores[keep], "labels": labels[keep]})
        return results
