"""Keypoint R-CNN head: 8 3x3 convs (512), a 2x deconv and 2x bilinear
upsampling to 56x56 heatmaps, one per keypoint; softmax over the spatial
positions in training, heatmap maximum -> image coordinates at test time."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..layers import ConvStack


class KeypointHead(ConvStack):
    def __init__(self, in_channels: int, num_convs: int = 8, width: int = 512):
        super().__init__(in_channels, num_convs, width)


class KeypointPredictor(nn.Module):
    def __init__(self, in_channels: int, num_keypoints: int):
        super().__init__()
        self.deconv = nn.ConvTranspose2d(in_channels, num_keypoints, 4, stride=2, padding=1)
        nn.init.kaiming_normal_(self.deconv.weight, mode="fan_out", nonlinearity="relu")
        nn.init.constant_(self.deconv.bias, 0)

    def forward(self, x):
        x = self.deconv(x)
        return F.interpolate(x, scale_factor=2.0, mode="bilinear", align_corners=False, recompute_scale_factor=False)


def keypoint_targets(keypoints: torch.Tensor, boxes: torch.Tensor, size: int):
    """Flat heatmap index (y * size + x) of each keypoint inside its box and
    whether it is a valid target (visible and inside)."""
    x0, y0 = boxes[:, 0:1], boxes[:, 1:2]
    sx = size / (boxes[:, 2:3] - boxes[:, 0:1])
    sy = size / (boxes[:, 3:4] - boxes[:, 1:2])
    x, y = keypoints[..., 0], keypoints[..., 1]
    on_right = x == boxes[:, 2:3]
    on_bottom = y == boxes[:, 3:4]
    xi = ((x - x0) * sx).floor().long()
    yi = ((y - y0) * sy).floor().long()
    xi[on_right] = size - 1  # a keypoint on the far edge belongs to the last cell
    yi[on_bottom] = size - 1
    valid = (xi >= 0) & (yi >= 0) & (xi < size) & (yi < size) & (keypoints[..., 2] > 0)
    return (yi * size + xi) * valid, valid


def keypoint_loss(logits, boxes, gt_keypoints, matched):
    """Cross-entropy over the size*size positions for each valid keypoint."""
    n, k, h, w = logits.shape
    targets, valid = [], []
    for b, kps, idx in zip(boxes, gt_keypoints, matched):
        t, v = keypoint_targets(kps[idx], b, h)
        targets.append(t.reshape(-1))
        valid.append(v.reshape(-1))
    targets, valid = torch.cat(targets), torch.where(torch.cat(valid))[0]
    if valid.numel() == 0:
        return logits.sum() * 0
    return F.cross_entropy(logits.reshape(n * k, h * w)[valid], targets[valid])


def heatmaps_to_keypoints(maps: torch.Tensor, boxes: torch.Tensor):
    """(R, K, S, S) heatmaps of R boxes -> (R, K, 3) keypoints (x, y, 1) in
    image coordinates and (R, K) scores. Each heatmap is resized (bicubic) to
    the box's size in pixels and its maximum taken, at the pixel's centre."""
    r, k = maps.shape[:2]
    kps = maps.new_zeros((r, k, 3))
    scores = maps.new_zeros((r, k))
    widths = (boxes[:, 2] - boxes[:, 0]).clamp(min=1)
    heights = (boxes[:, 3] - boxes[:, 1]).clamp(min=1)
    for i in range(r):
        w_px, h_px = int(widths[i].ceil().item()), int(heights[i].ceil().item())
        roi_map = F.interpolate(maps[i][:, None], size=(h_px, w_px), mode="bicubic", align_corners=False)[:, 0]
        pos = roi_map.reshape(k, -1).argmax(dim=1)
        xi = pos % w_px
        yi = torch.div(pos - xi, w_px, rounding_mode="floor")
        kps[i, :, 0] = (xi.to(maps.dtype) + 0.5) * (widths[i] / w_px) + boxes[i, 0]
        kps[i, :, 1] = (yi.to(maps.dtype) + 0.5) * (heights[i] / h_px) + boxes[i, 1]
        kps[i, :, 2] = 1
        scores[i] = roi_map[torch.arange(k, device=maps.device), yi, xi]
    return kps, scores
