"""Anchor generation glue: per-level sizes and aspect ratios, strides taken
from the padded batch the way torchvision's AnchorGenerator does (so its
checkpoints match), the boxes themselves from `detcore.ops.make_anchors`."""

from __future__ import annotations

from torch import nn

from ... import ops


class AnchorGenerator(nn.Module):
    """`sizes[l]` x `aspect_ratios[l]` anchors per position of level l,
    in torchvision's order (position-major, then ratio, then size)."""

    def __init__(self, sizes, aspect_ratios):
        super().__init__()
        if len(aspect_ratios) == 1 and len(sizes) > 1:
            aspect_ratios = tuple(aspect_ratios) * len(sizes)
        if len(sizes) != len(aspect_ratios):
            raise ValueError("sizes and aspect_ratios: expected one entry per feature level")
        self.sizes = tuple(tuple(float(s) for s in lvl) for lvl in sizes)
        self.aspect_ratios = tuple(tuple(float(r) for r in lvl) for lvl in aspect_ratios)
        self._cache = {}

    def num_anchors_per_location(self):
        return [len(s) * len(r) for s, r in zip(self.sizes, self.aspect_ratios)]

    def forward(self, image_shape, features):
        """Anchors per level, shared by every image of the batch.

        Args:
            image_shape: (H, W) of the padded batch.
            features: the feature maps, one per level.
        Returns:
            list of (H_l * W_l * A_l, 4) tensors.
        """
        like = features[0]
        grids = [tuple(int(s) for s in f.shape[-2:]) for f in features]
        # integer strides per axis, as torchvision computes them
        strides = [(image_shape[0] // g[0], image_shape[1] // g[1]) for g in grids]
        key = (tuple(grids), tuple(strides), like.device, like.dtype)
        if key not in self._cache:
            anchors = ops.make_anchors(grids, strides, self.sizes, self.aspect_ratios, like.dtype, like.device)
            self._cache.clear()
            self._cache[key] = anchors
        return self._cache[key]
