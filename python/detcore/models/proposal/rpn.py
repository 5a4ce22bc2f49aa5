"""Region proposal network: a 3x3 conv shared by the levels, objectness and
box deltas per anchor; IoU-matched, balanced-sampled training; top-n, NMS,
top-n proposals."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ... import ops
from ..box_ops import BoxCoder, clip_boxes, nonsmall
from ..layers import smooth_l1_loss
from ..roi_heads.matching import BalancedSampler, Matcher
from .anchors import AnchorGenerator


class RPNHead(nn.Module):
    def __init__(self, in_channels: int, num_anchors: int):
        super().__init__()
        self.conv = nn.Conv2d(in_channels, in_channels, 3, padding=1)
        self.objectness = nn.Conv2d(in_channels, num_anchors, 1)
        self.deltas = nn.Conv2d(in_channels, num_anchors * 4, 1)
        for m in (self.conv, self.objectness, self.deltas):
            nn.init.normal_(m.weight, std=0.01)
            nn.init.constant_(m.bias, 0)

    def forward(self, features):
        logits, deltas = [], []
        for x in features:
            t = F.relu(self.conv(x))
            logits.append(self.objectness(t))
            deltas.append(self.deltas(t))
        return logits, deltas


def flatten_level(x: torch.Tensor, channels: int) -> torch.Tensor:
    """(N, A*C, H, W) -> (N, H*W*A, C), the anchors' order."""
    n, _, h, w = x.shape
    return x.view(n, -1, channels, h, w).permute(0, 3, 4, 1, 2).reshape(n, -1, channels)


class RPN(nn.Module):
    """Args (defaults are the Faster R-CNN paper's / torchvision's):
    pre_nms_top_n, post_nms_top_n: dicts with "training" and "testing"
    (pre is per level, post per image); nms_thresh 0.7; fg/bg IoU 0.7/0.3;
    batch_size_per_image 256; positive_fraction 0.5."""

    def __init__(
        self,
        anchor_generator: AnchorGenerator,
        head: RPNHead,
        pre_nms_top_n=None,
        post_nms_top_n=None,
        nms_thresh: float = 0.7,
        fg_iou_thresh: float = 0.7,
        bg_iou_thresh: float = 0.3,
        batch_size_per_image: int = 256,
        positive_fraction: float = 0.5,
        score_thresh: float = 0.0,
        min_size: float = 1e-3,
    ):
        super().__init__()
        self.anchor_generator = anchor_generator
        self.head = head
        self.pre_nms_top_n = dict(pre_nms_top_n or {"training": 2000, "testing": 1000})
        self.post_nms_top_n = dict(post_nms_top_n or {"training": 2000, "testing": 1000})
        self.nms_thresh = nms_thresh
        self.score_thresh = score_thresh
        self.min_size = min_size
        self.box_coder = BoxCoder((1.0, 1.0, 1.0, 1.0))
        self.matcher = Matcher(fg_iou_thresh, bg_iou_thresh, allow_low_quality=True)
        self.sampler = BalancedSampler(batch_size_per_image, positive_fraction)

    def _mode(self):
        return "training" if self.training else "testing"

    def forward(self, batch_shape, image_sizes, features, targets=None):
        """Returns (proposals: list of (Pi, 4) per image, losses dict)."""
        objectness, deltas, anchors, proposals, num_per_level = self._predict(batch_shape, features)
        boxes, _ = self._filter(proposals, objectness.detach(), image_sizes, num_per_level)
        losses = {}
        if self.training:
            losses = self._loss(objectness, deltas, anchors, targets)
        return boxes, losses

    @torch.no_grad()
    def propose(self, batch_shape, image_sizes, features):
        """The proposals ``forward`` hands to the RoI heads (post-NMS, in the
        batch's coordinates) with their objectness logits: ``(boxes, logits)``,
        lists of (Pi, 4) and (Pi,) per image. For proposal files."""
        objectness, _, _, proposals, num_per_level = self._predict(batch_shape, features)
        return self._filter(proposals, objectness, image_sizes, num_per_level)

    def _predict(self, batch_shape, features):
        feats = list(features.values())
        logits, deltas = self.head(feats)
        anchors = self.anchor_generator(batch_shape, feats)
        num_per_level = [a.shape[0] for a in anchors]
        anchors = torch.cat(anchors, dim=0)
        n = feats[0].shape[0]
        objectness = torch.cat([flatten_level(x, 1) for x in logits], dim=1).reshape(n, -1)
        deltas = torch.cat([flatten_level(x, 4) for x in deltas], dim=1)
        proposals = self.box_coder.decode(deltas.detach().reshape(-1, 4), anchors.repeat(n, 1)).view(n, -1, 4)
        return objectness, deltas, anchors, proposals, num_per_level

    def _filter(self, proposals, objectness, image_sizes, num_per_level):
        """Top-n per level, clip, drop small, NMS, top-n: ``(boxes, logits)`` per image."""
        pre_n = self.pre_nms_top_n[self._mode()]
        idxs, level_ids, start = [], [], 0
        for lvl, count in enumerate(num_per_level):
            k = min(pre_n, count)
            _, top = objectness[:, start : start + count].topk(k, dim=1)
            idxs.append(top + start)
            level_ids.append(torch.full((k,), lvl, dtype=torch.int64, device=objectness.device))
            start += count
        idxs = torch.cat(idxs, dim=1)
        level_ids = torch.cat(level_ids)
        rows = torch.arange(objectness.shape[0], device=objectness.device)[:, None]
        top_logits = objectness[rows, idxs]
        scores = torch.sigmoid(top_logits)
        proposals = proposals[rows, idxs]
        out, out_logits = [], []
        for boxes, s, lg, size in zip(proposals, scores, top_logits, image_sizes):
            boxes = clip_boxes(boxes, size)
            keep = nonsmall(boxes, self.min_size)
            keep = keep[s[keep] >= self.score_thresh]
            boxes, s, lg, lv = boxes[keep], s[keep], lg[keep], level_ids[keep]
            keep = ops.batched_nms(boxes, s, lv, self.nms_thresh)[: self.post_nms_top_n[self._mode()]]
            out.append(boxes[keep])
            out_logits.append(lg[keep])
        return out, out_logits

    def _loss(self, objectness, deltas, anchors, targets):
        labels, reg_targets = [], []
        for t in targets:
            gt = t["boxes"].to(anchors.dtype)
            if gt.shape[0] == 0:
                labels.append(torch.zeros(anchors.shape[0], dtype=anchors.dtype, device=anchors.device))
                reg_targets.append(torch.zeros_like(anchors))
                continue
            matches = self.matcher(ops.box_iou(gt, anchors))
            lab = (matches >= 0).to(anchors.dtype)
            lab[matches == -2] = -1.0
            labels.append(lab)
            reg_targets.append(self.box_coder.encode(gt[matches.clamp(min=0)], anchors))
        pos, neg, offset = [], [], 0
        for lab in labels:
            p, q = self.sampler(lab)
            pos.append(p + offset)
            neg.append(q + offset)
            offset += lab.shape[0]
        pos, neg = torch.cat(pos), torch.cat(neg)
        sampled = torch.cat([pos, neg])
        labels = torch.cat(labels)
        reg_targets = torch.cat(reg_targets)
        deltas = deltas.reshape(-1, 4)
        objectness = objectness.reshape(-1)
        box_loss = smooth_l1_loss(deltas[pos], reg_targets[pos], beta=1 / 9) / max(1, sampled.numel())
        obj_loss = F.binary_cross_entropy_with_logits(objectness[sampled], labels[sampled])
        return {"loss_objectness": obj_loss, "loss_rpn_box_reg": box_loss}
