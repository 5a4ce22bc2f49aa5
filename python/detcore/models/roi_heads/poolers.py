"""RoI feature extraction: RoIAlign or RoIPool (a switch, for the Mask R-CNN
ablation), on one map or on FPN levels chosen by the FPN paper's rule."""

from __future__ import annotations

import math

import torch
from torch import nn

from ... import ops
from ..box_ops import box_area


class RoIPooler(nn.Module):
    """Pools (K, C, S, S) features for per-image boxes in image coordinates.

    Args:
        level_names: names of the feature maps to pool from (finest first).
        strides: their strides.
        output_size: S.
        kind: "align" (RoIAlign) or "pool" (Fast R-CNN RoIPool); "roi_align"
            and "roi_pool" are the same.
        sampling_ratio, aligned: RoIAlign's settings (torchvision's R-CNNs: 2, False).
        canonical_scale, canonical_level: the FPN rule: a box of sqrt(area)
            = 224 goes to level 4, k = floor(4 + log2(sqrt(area) / 224)).
    """

    def __init__(
        self,
        level_names,
        strides,
        output_size: int,
        kind: str = "align",
        sampling_ratio: int = 2,
        aligned: bool = False,
        canonical_scale: int = 224,
        canonical_level: int = 4,
    ):
        super().__init__()
        kind = {"roi_align": "align", "roi_pool": "pool"}.get(kind, kind) if isinstance(kind, str) else kind
        if kind not in ("align", "pool"):
            raise ValueError(f"pooler: expected 'align' (RoIAlign) or 'pool' (RoIPool), got {kind!r}")
        self.level_names = list(level_names)
        self.scales = [1.0 / s for s in strides]
        self.levels = [int(round(math.log2(s))) for s in strides]
        self.output_size = (output_size, output_size)
        self.kind = kind
        self.sampling_ratio = sampling_ratio
        self.aligned = aligned
        self.canonical_scale = canonical_scale
        self.canonical_level = canonical_level

    def _pool(self, x, rois, scale):
        # Under AMP the features are half precision while the RoIs stay float32:
        # pool in the wider type (torchvision's autocast rule for roi_align), so
        # coordinates above 2048 keep their sub-pixel part.
        dtype = torch.promote_types(x.dtype, rois.dtype)
        x, rois = x.to(dtype), rois.to(dtype)
        if self.kind == "pool":
            pooled = ops.roi_pool(x, rois, self.output_size, scale)
        else:
            pooled = ops.roi_align(x, rois, self.output_size, scale, self.sampling_ratio, self.aligned)
        return pooled

    def level_of(self, boxes: torch.Tensor) -> torch.Tensor:
        """Index (into level_names) of the level each box is pooled from."""
        s = torch.sqrt(box_area(boxes))
        k = torch.floor(self.canonical_level + torch.log2(s / self.canonical_scale) + 1e-6)
        k = k.clamp(min=self.levels[0], max=self.levels[-1])
        return k.to(torch.int64) - self.levels[0]

    def forward(self, features, boxes):
        feats = [features[n] for n in self.level_names]
        # The RoIs keep the boxes' dtype: in half precision box areas overflow
        # and would send large boxes to the wrong level.
        rois = torch.cat([torch.cat([torch.full_like(b[:, :1], i), b], dim=1) for i, b in enumerate(boxes)], dim=0)
        if len(feats) == 1:
            return self._pool(feats[0], rois, self.scales[0])
        levels = self.level_of(rois[:, 1:])
        out_dtype = torch.promote_types(feats[0].dtype, rois.dtype)
        # Each RoI's row is written once, in place, by its level (no zero fill, no copy of the whole
        # output per level); a RoI with no level (NaN box) gets zeros.
        out = feats[0].new_empty((rois.shape[0], feats[0].shape[1]) + self.output_size, dtype=out_dtype)
        for lvl, (x, scale) in enumerate(zip(feats, self.scales)):
            idx = torch.where(levels == lvl)[0]
            if idx.numel():
                out.index_put_((idx,), self._pool(x, rois[idx], scale))
        unassigned = torch.where((levels < 0) | (levels >= len(feats)))[0]
        if unassigned.numel():
            out.index_fill_(0, unassigned, 0)
        return out
