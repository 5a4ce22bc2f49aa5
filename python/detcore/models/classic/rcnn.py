"""R-CNN (Girshick et al., CVPR 2014): every proposal is warped to a fixed
input with context padding and sent through the whole CNN."""

from __future__ import annotations

from typing import List, Sequence

import torch
from torch import nn

from ..backbones.vgg import vgg16_body
from .base import RegionDetector
from .warp import warp_regions


def pool5_side(input_size: int, num_pools: int = 5) -> int:
    """VGG's 3x3 convolutions keep the size; each 2x2 pool floors it in half."""
    side = input_size
    for _ in range(num_pools):
        side //= 2
    return side


class RCNN(RegionDetector):
    """Args:
        num_classes: including the background.
        input_size: the warped region's side (227, the paper; VGG16 gives a
            7x7 pool5 from it).
        context_pad: pixels of context around the box in the warped frame (16).
        base_width, trainable_stages: the VGG16 conv body (see vgg16_body;
            R-CNN fine-tunes every layer by default).
        **kw: RegionDetector's arguments.
    """

    def __init__(self, num_classes: int, input_size: int = 227, context_pad: int = 16, base_width: int = 64,
                 trainable_stages: int = 5, **kw):
        if input_size < 32:
            raise ValueError(f"input_size: expected >= 32 (five 2x2 pools), got {input_size}")
        if not 0 <= 2 * context_pad < input_size:
            raise ValueError(f"context_pad: expected 0 <= 2 * context_pad < input_size ({input_size}), got {context_pad}")
        body = vgg16_body(base_width, trainable_stages)
        side = pool5_side(input_size)
        super().__init__(num_classes, body.out_channels * side * side, **kw)
        # conv5_3 + the last 2x2 max pool = pool5, as in the classification network
        self.features = nn.Sequential(*body.features, nn.MaxPool2d(2, 2))
        self.input_size, self.context_pad = input_size, context_pad

    def _pool5(self, images: Sequence[torch.Tensor], boxes: Sequence[torch.Tensor]) -> List[torch.Tensor]:
        out = []
        # training batches are small (the sampled regions); at test time regions go in chunks
        step = self.region_batch if not self.training else max(1, max(b.shape[0] for b in boxes))
        for image, b in zip(images, boxes):
            if b.shape[0] == 0:
                out.append(image.new_zeros((0, self.feature_dims["pool5"])))
                continue
            norm = self.normalize(image)
            feats = []
            for start in range(0, b.shape[0], step):
                crops = warp_regions(norm, b[start:start + step], self.input_size, self.context_pad)
                feats.append(self.features(crops).flatten(1))
            out.append(torch.cat(feats))
        return out
