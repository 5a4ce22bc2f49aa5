"""ResNet-50/101 body (torchvision layout, so ImageNet checkpoints load by
name) with frozen batch norm and a configurable number of trainable stages."""

from __future__ import annotations

from collections import OrderedDict

import torch
from torch import nn

from ..layers import FrozenBatchNorm2d, fold_frozen_bn

DEPTHS = {50: (3, 4, 6, 3), 101: (3, 4, 23, 3)}


class Bottleneck(nn.Module):
    expansion = 4

    def __init__(self, in_ch: int, width: int, stride: int, bn_eps: float):
        super().__init__()
        out_ch = width * self.expansion
        self.conv1 = nn.Conv2d(in_ch, width, 1, bias=False)
        self.bn1 = FrozenBatchNorm2d(width, bn_eps)
        # stride on the 3x3 conv (ResNet v1.5), as torchvision's checkpoints
        self.conv2 = nn.Conv2d(width, width, 3, stride=stride, padding=1, bias=False)
        self.bn2 = FrozenBatchNorm2d(width, bn_eps)
        self.conv3 = nn.Conv2d(width, out_ch, 1, bias=False)
        self.bn3 = FrozenBatchNorm2d(out_ch, bn_eps)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = None
        if stride != 1 or in_ch != out_ch:
            self.downsample = nn.Sequential(
                nn.Conv2d(in_ch, out_ch, 1, stride=stride, bias=False), FrozenBatchNorm2d(out_ch, bn_eps)
            )

    def fold_batch_norms(self) -> None:
        """Fold each frozen batch norm into its convolution (inference)."""
        for i in (1, 2, 3):
            conv, bn = getattr(self, f"conv{i}"), getattr(self, f"bn{i}")
            if isinstance(bn, FrozenBatchNorm2d):
                setattr(self, f"conv{i}", fold_frozen_bn(conv, bn))
                setattr(self, f"bn{i}", nn.Identity())
        if self.downsample is not None and isinstance(self.downsample[1], FrozenBatchNorm2d):
            self.downsample = nn.Sequential(fold_frozen_bn(self.downsample[0], self.downsample[1]), nn.Identity())

    def forward(self, x):
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        out += identity  # in place: no new block-sized tensor (the conv's backward does not need its output)
        return self.relu(out)


class ResNet(nn.Module):
    """ResNet body returning the outputs of the stages in `return_stages`
    (2..5 = C2..C5) as an ordered dict keyed "c2".."c5".

    Args:
        depth: 50 or 101 (or pass `blocks` explicitly, e.g. (1, 1, 1, 1) in tests).
        trainable_stages: how many stages, counted from C5 down, get gradients
            (0..5; 5 includes the stem). Frozen stages never update.
        base_width: width of the first stage (64 in the papers; smaller in tests).
        bn_eps: eps of the frozen batch norms.
    """

    def __init__(
        self,
        depth: int = 50,
        trainable_stages: int = 3,
        return_stages=(2, 3, 4, 5),
        base_width: int = 64,
        blocks=None,
        bn_eps: float = 1e-5,
    ):
        super().__init__()
        if blocks is None:
            if depth not in DEPTHS:
                raise ValueError(f"depth: expected one of {sorted(DEPTHS)}, got {depth}")
            blocks = DEPTHS[depth]
        if not 0 <= trainable_stages <= 5:
            raise ValueError(f"trainable_stages: expected 0..5, got {trainable_stages}")
        self.conv1 = nn.Conv2d(3, base_width, 7, stride=2, padding=3, bias=False)
        self.bn1 = FrozenBatchNorm2d(base_width, bn_eps)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, stride=2, padding=1)
        in_ch = base_width
        self.stage_channels = {}
        for i, n in enumerate(blocks):
            width = base_width * 2**i
            layers = []
            for b in range(n):
                layers.append(Bottleneck(in_ch, width, 2 if (b == 0 and i > 0) else 1, bn_eps))
                in_ch = width * Bottleneck.expansion
            setattr(self, f"layer{i + 1}", nn.Sequential(*layers))
            self.stage_channels[f"c{i + 2}"] = in_ch
        self.return_stages = tuple(return_stages)
        self.out_channels = [self.stage_channels[f"c{s}"] for s in self.return_stages]
        self.strides = [2**s for s in self.return_stages]
        self._freeze(trainable_stages)

    def _freeze(self, trainable_stages: int) -> None:
        trainable = ["layer4", "layer3", "layer2", "layer1", "conv1"][:trainable_stages]
        for name, p in self.named_parameters():
            if not any(name.startswith(t) for t in trainable):
                p.requires_grad_(False)

    def fold_batch_norms(self) -> None:
        """Fold every frozen batch norm into its convolution (inference)."""
        if isinstance(self.bn1, FrozenBatchNorm2d):
            self.conv1 = fold_frozen_bn(self.conv1, self.bn1)
            self.bn1 = nn.Identity()
        for module in self.modules():
            if isinstance(module, Bottleneck):
                module.fold_batch_norms()

    def forward(self, x: torch.Tensor):
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        out = OrderedDict()
        last = max(self.return_stages)
        for s in range(2, last + 1):
            x = getattr(self, f"layer{s - 1}")(x)
            if s in self.return_stages:
                out[f"c{s}"] = x
        return out
