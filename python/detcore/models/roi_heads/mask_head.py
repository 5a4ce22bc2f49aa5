"""Mask R-CNN mask head: 4 3x3 convs, a 2x deconv and per-class 1x1 logits
(28x28 from 14x14 RoI features); per-pixel sigmoid loss."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ... import ops
from ..layers import ConvStack


class MaskHead(ConvStack):
    def __init__(self, in_channels: int, num_convs: int = 4, width: int = 256):
        super().__init__(in_channels, num_convs, width)


class MaskPredictor(nn.Module):
    def __init__(self, in_channels: int, num_classes: int, width: int = 256):
        super().__init__()
        self.deconv = nn.ConvTranspose2d(in_channels, width, 2, 2, 0)
        self.logits = nn.Conv2d(width, num_classes, 1)
        for m in (self.deconv, self.logits):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            nn.init.constant_(m.bias, 0)

    def forward(self, x):
        return self.logits(F.relu(self.deconv(x)))


def mask_targets(gt_masks: torch.Tensor, boxes: torch.Tensor, matched: torch.Tensor, size: int) -> torch.Tensor:
    """The matched ground-truth masks cropped and resampled to size x size in
    each box (RoIAlign over the binary mask)."""
    rois = torch.cat([matched.to(boxes)[:, None], boxes], dim=1)
    return ops.roi_align(gt_masks[:, None].to(rois), rois, (size, size), 1.0, -1, False)[:, 0]


def mask_loss(mask_logits, boxes, gt_masks, gt_labels, matched):
    """Mean per-pixel sigmoid cross-entropy of each foreground RoI's own-class mask."""
    size = mask_logits.shape[-1]
    targets = [mask_targets(m, b, i, size) for m, b, i in zip(gt_masks, boxes, matched) if b.shape[0]]
    labels = torch.cat([lab[i] for lab, i in zip(gt_labels, matched)])
    if labels.numel() == 0:
        return mask_logits.sum() * 0
    logits = mask_logits[torch.arange(labels.shape[0], device=labels.device), labels]
    return F.binary_cross_entropy_with_logits(logits, torch.cat(targets))


def mask_probs(mask_logits, labels_per_image):
    """Sigmoid of each detection's own-class mask, (Ni, 1, 28, 28) per image."""
    labels = torch.cat(labels_per_image)
    probs = mask_logits.sigmoid()[torch.arange(labels.shape[0], device=labels.device), labels][:, None]
    return probs.split([lab.shape[0] for lab in labels_per_image])
