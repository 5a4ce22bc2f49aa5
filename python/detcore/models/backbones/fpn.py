"""Feature pyramid network on top of a multi-stage body."""

from __future__ import annotations

from collections import OrderedDict

import torch
import torch.nn.functional as F
from torch import nn


class FPN(nn.Module):
    """Top-down pyramid with lateral 1x1 and output 3x3 convs.

    Args:
        in_channels: channels of the body outputs, finest first.
        out_channels: pyramid width (256).
        extra: None, "maxpool" (P6 = stride-2 subsampling of P5, the R-CNNs'
            extra level) or "p6p7" (RetinaNet: P6 = 3x3/2 conv on P5, P7 =
            3x3/2 conv on relu(P6)).
        in_strides: strides of the body outputs; the pyramid levels are
            named "p{log2(stride)}".
    """

    def __init__(self, in_channels, out_channels: int, in_strides, extra=None):
        super().__init__()
        self.lateral = nn.ModuleList(nn.Conv2d(c, out_channels, 1) for c in in_channels)
        self.output = nn.ModuleList(nn.Conv2d(out_channels, out_channels, 3, padding=1) for _ in in_channels)
        for m in [*self.lateral, *self.output]:
            nn.init.kaiming_uniform_(m.weight, a=1)
            nn.init.constant_(m.bias, 0)
        if extra not in (None, "maxpool", "p6p7"):
            raise ValueError(f"extra: expected None, 'maxpool' or 'p6p7', got {extra!r}")
        self.extra = extra
        self.extra_convs = None
        if extra == "p6p7":
            self.extra_convs = nn.ModuleDict(
                {"p6": nn.Conv2d(out_channels, out_channels, 3, 2, 1), "p7": nn.Conv2d(out_channels, out_channels, 3, 2, 1)}
            )
            for m in self.extra_convs.values():
                nn.init.kaiming_uniform_(m.weight, a=1)
                nn.init.constant_(m.bias, 0)
        levels = [int(s).bit_length() - 1 for s in in_strides]
        if extra is not None:
            levels += [levels[-1] + 1] if extra == "maxpool" else [levels[-1] + 1, levels[-1] + 2]
        self.level_names = [f"p{k}" for k in levels]
        self.strides = [2**k for k in levels]
        self.out_channels = out_channels

    def forward(self, feats: "OrderedDict[str, torch.Tensor]"):
        xs = list(feats.values())
        last = self.lateral[-1](xs[-1])
        results = [self.output[-1](last)]
        for i in range(len(xs) - 2, -1, -1):
            lateral = self.lateral[i](xs[i])
            top_down = F.interpolate(last, size=lateral.shape[-2:], mode="nearest")
            last = lateral.add_(top_down)  # in place: the lateral conv's output is not kept for backward
            results.insert(0, self.output[i](last))
        if self.extra == "maxpool":
            results.append(F.max_pool2d(results[-1], 1, 2, 0))
        elif self.extra == "p6p7":
            p6 = self.extra_convs["p6"](results[-1])
            results += [p6, self.extra_convs["p7"](F.relu(p6))]
        return OrderedDict(zip(self.level_names, results))


class BackboneWithFPN(nn.Module):
    """A body followed by an FPN; `out_channels` and `strides` describe the output maps."""

    def __init__(self, body: nn.Module, fpn: FPN):
        super().__init__()
        self.body = body
        self.fpn = fpn
        self.out_channels = fpn.out_channels
        self.strides = fpn.strides

    def forward(self, x):
        return self.fpn(self.body(x))
