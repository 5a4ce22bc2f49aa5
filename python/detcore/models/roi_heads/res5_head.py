"""The ResNet-C4 RoI head (Faster R-CNN with ResNets, He et al. 2016; Mask
R-CNN Figure 4 left): the fifth ResNet stage (res5, first block stride 2)
runs on each RoI's 14x14 res4 features, giving a 7x7 map, then average
pooling gives the vector the class and box predictors read. The Mask R-CNN
C4 mask branch reads the 7x7 map itself (see ``RoIHeads.mask_on_box_features``)."""

from __future__ import annotations

import torch
from torch import nn

from ..backbones.resnet import Bottleneck


class Res5Head(nn.Module):
    """res5 on pooled res4 features.

    Args:
        in_channels: channels of res4 (1024 for ResNet-50).
        width: bottleneck width of res5 (512 for ResNet-50; 8x the stem width).
        blocks: bottleneck blocks of res5 (3 for ResNet-50 and -101).
        trainable: whether res5 gets gradients.
        bn_eps: eps of the frozen batch norms.

    ``res5`` holds the blocks in torchvision's ``layer4`` layout, so an
    ImageNet ResNet's ``layer4.*`` tensors load into ``res5.*`` (see
    ``detcore.models.torchvision_weights``).
    """

    torchvision_stages = {"layer4": "res5"}  # ImageNet ResNet stage -> the child that loads it

    def __init__(self, in_channels: int, width: int, blocks: int = 3, trainable: bool = True, bn_eps: float = 1e-5):
        super().__init__()
        layers, c = [], in_channels
        for b in range(blocks):
            layers.append(Bottleneck(c, width, 2 if b == 0 else 1, bn_eps))
            c = width * Bottleneck.expansion
        self.res5 = nn.Sequential(*layers)
        self.out_channels = c
        self.out_features = c
        self.res5.requires_grad_(trainable)

    def trunk(self, x: torch.Tensor) -> torch.Tensor:
        """(K, C4, S, S) pooled features -> (K, C5, S/2, S/2) res5 map."""
        return self.res5(x)

    @staticmethod
    def pool(x: torch.Tensor) -> torch.Tensor:
        """Average pooling of the res5 map to one vector per RoI."""
        return x.mean(dim=(2, 3))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.pool(self.trunk(x))
