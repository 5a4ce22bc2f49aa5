"""VGG16 conv body (conv1_1 .. conv5_3, stride 16), the backbone of the Fast
and Faster R-CNN papers, and its fc6/fc7 RoI head. Layer indices follow
torchvision's `vgg16().features` so ImageNet checkpoints load by name."""

from __future__ import annotations

from collections import OrderedDict

import torch
from torch import nn

# channels per conv layer; "M" = 2x2 max pool. The last pool is dropped: RoI
# pooling works on conv5_3 (stride 16).
CFG16 = [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512]


class VGG16(nn.Module):
    """Returns {"c5": conv5_3 features}. `frozen_convs` first conv layers
    (4 = conv1_x and conv2_x, as the papers) get no gradient; `width_div`
    divides every width (tests use small widths)."""

    def __init__(self, frozen_convs: int = 4, width_div: int = 1):
        super().__init__()
        layers, in_ch, n_conv = [], 3, 0
        for v in CFG16:
            if v == "M":
                layers.append(nn.MaxPool2d(2, 2))
                continue
            conv = nn.Conv2d(in_ch, v // width_div, 3, padding=1)
            # He et al.'s initialisation (torchvision's for VGG): PyTorch's default
            # shrinks the signal about 0.8x per layer, and through 13 plain ReLU
            # convs a VGG16 trained from scratch then barely starts learning
            nn.init.kaiming_normal_(conv.weight, mode="fan_out", nonlinearity="relu")
            nn.init.zeros_(conv.bias)
            if n_conv < frozen_convs:
                conv.requires_grad_(False)
            layers += [conv, nn.ReLU(inplace=True)]
            in_ch, n_conv = v // width_div, n_conv + 1
        self.features = nn.Sequential(*layers)
        self.out_channels = in_ch
        self.strides = [16]

    def forward(self, x: torch.Tensor):
        return OrderedDict(c5=self.features(x))


# VGG16's conv blocks hold 2, 2, 3, 3, 3 convs; trainable_stages=k trains the
# last k blocks (3, the papers' choice, freezes conv1_x and conv2_x).
_BLOCK_CONVS = (2, 2, 3, 3, 3)


def vgg16_body(base_width: int = 64, trainable_stages: int = 3) -> VGG16:
    """The VGG16 body from the settings every detector shares: `base_width`
    (conv1's width, 64 in the paper; a divisor of 64) and `trainable_stages`
    (conv blocks trained, counted from conv5 down, 0..5)."""
    if isinstance(base_width, bool) or not isinstance(base_width, int) or not 1 <= base_width <= 64 or 64 % base_width:
        raise ValueError(f"base_width: expected a divisor of 64 for VGG16, got {base_width!r}")
    if isinstance(trainable_stages, bool) or not isinstance(trainable_stages, int) or not 0 <= trainable_stages <= 5:
        raise ValueError(f"trainable_stages: expected 0..5 for VGG16, got {trainable_stages!r}")
    return VGG16(sum(_BLOCK_CONVS[: 5 - trainable_stages]), 64 // base_width)
