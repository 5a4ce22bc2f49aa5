"""SPP-net (He et al., ECCV 2014): the conv layers run once per image;
each proposal's conv5 window is max-pooled into a fixed spatial pyramid
(detcore.ops.spp_pool), then fc6 / fc7, SVMs and box regressors as in R-CNN
(the same RegionDetector and stages).

Fine-tuning updates only the layers above the SPP layer, as in the paper
(whose SPP layer had no backward through the convolutions);
``finetune_conv=True`` lets the gradient flow below it, Fast R-CNN's change."""

from __future__ import annotations

from typing import List, Sequence

import torch

from ... import ops
from ..backbones.vgg import vgg16_body
from ..transform import Transform, _scale_xy
from .base import RegionDetector


class SPPNet(RegionDetector):
    """Args:
        num_classes: including the background.
        levels: pyramid levels (6, 3, 2, 1): 50 bins per channel.
        min_size, max_size: the single test/train scale (shorter side 600, as
            Fast R-CNN compares; SPP-net's single-scale setting was 688).
        finetune_conv: let fine-tuning update the conv layers too.
        base_width, trainable_stages: the VGG16 conv body (see vgg16_body;
            trainable_stages applies with finetune_conv).
        **kw: RegionDetector's arguments.
    """

    def __init__(self, num_classes: int, levels=(6, 3, 2, 1), min_size=600, max_size: int = 1000,
                 finetune_conv: bool = False, base_width: int = 64, trainable_stages: int = 3,
                 **kw):
        levels = tuple(int(v) for v in levels)
        if not levels or min(levels) < 1:
            raise ValueError(f"levels: expected positive pyramid sizes, got {levels}")
        body = vgg16_body(base_width, trainable_stages)
        super().__init__(num_classes, body.out_channels * sum(v * v for v in levels), **kw)
        self.backbone = body
        self.levels = levels
        self.stride = body.strides[0]
        self.finetune_conv = bool(finetune_conv)
        self.transform = Transform(min_size, max_size, image_mean=self.image_mean, image_std=self.image_std)

    def _pool5(self, images: Sequence[torch.Tensor], boxes: Sequence[torch.Tensor]) -> List[torch.Tensor]:
        out = []
        # one image at a time: SPP-net's single-image conv pass, no padding waste
        for image, b in zip(images, boxes):
            batch, _ = self.transform([image])
            grad = self.training and self.finetune_conv
            with torch.set_grad_enabled(grad and torch.is_grad_enabled()):
                conv5 = self.backbone(batch.tensors)["c5"]
            scaled = _scale_xy(b, tuple(image.shape[-2:]), batch.image_sizes[0])
            out.append(ops.spp_pool(conv5, [scaled], levels=self.levels, spatial_scale=1.0 / self.stride))
        return out
