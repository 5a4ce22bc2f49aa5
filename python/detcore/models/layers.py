"""Small building blocks shared by the backbones and heads."""

from __future__ import annotations

import torch
from torch import nn


class FrozenBatchNorm2d(nn.Module):
    """Batch norm with fixed statistics and affine parameters (buffers, not
    parameters), as detection backbones use it: the batches are too small to
    estimate statistics. ``eps`` is configurable because torchvision's COCO
    checkpoints were trained with eps = 0."""

    def __init__(self, num_features: int, eps: float = 1e-5):
        super().__init__()
        self.eps = eps
        self.register_buffer("weight", torch.ones(num_features))
        self.register_buffer("bias", torch.zeros(num_features))
        self.register_buffer("running_mean", torch.zeros(num_features))
        self.register_buffer("running_var", torch.ones(num_features))

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        state_dict.pop(prefix + "num_batches_tracked", None)
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        scale = self.weight * (self.running_var + self.eps).rsqrt()
        shift = self.bias - self.running_mean * scale
        return x * scale.reshape(1, -1, 1, 1) + shift.reshape(1, -1, 1, 1)

    def extra_repr(self) -> str:
        return f"{self.weight.shape[0]}, eps={self.eps}"


def fold_frozen_bn(conv: nn.Conv2d, bn: FrozenBatchNorm2d) -> nn.Conv2d:
    """A convolution computing ``bn(conv(x))`` in one step (for inference):
    the weights scaled per output channel, the shift as its bias. Folded in
    float64, then cast back, so the fused layer rounds once, not twice."""
    scale = bn.weight.double() * (bn.running_var.double() + bn.eps).rsqrt()
    shift = bn.bias.double() - bn.running_mean.double() * scale
    bias = shift if conv.bias is None else conv.bias.double() * scale + shift
    fused = nn.Conv2d(conv.in_channels, conv.out_channels, conv.kernel_size, conv.stride, conv.padding,
                      conv.dilation, conv.groups, bias=True, padding_mode=conv.padding_mode)
    fused = fused.to(device=conv.weight.device, dtype=conv.weight.dtype)
    with torch.no_grad():
        fused.weight.copy_(conv.weight.double() * scale.reshape(-1, 1, 1, 1))
        fused.bias.copy_(bias)
    fused.weight.requires_grad_(conv.weight.requires_grad)
    fused.bias.requires_grad_(conv.weight.requires_grad)
    return fused


def set_frozen_bn_eps(model: nn.Module, eps: float) -> None:
    """Set the eps of every FrozenBatchNorm2d in `model`."""
    for m in model.modules():
        if isinstance(m, FrozenBatchNorm2d):
            m.eps = eps


def smooth_l1_loss(input: torch.Tensor, target: torch.Tensor, beta: float, reduction: str = "sum") -> torch.Tensor:
    """Smooth L1 (Huber with transition at `beta`), as Fast R-CNN's box loss:
    summed, or per element with ``reduction="none"``."""
    diff = (input - target).abs()
    loss = torch.where(diff < beta, 0.5 * diff * diff / beta, diff - 0.5 * beta) if beta > 0 else diff
    return loss if reduction == "none" else loss.sum()


class ConvStack(nn.Module):
    """`num_convs` 3x3 convolutions with ReLU, He-initialised: the body of
    the mask head (4 x 256) and of the keypoint head (8 x 512)."""

    def __init__(self, in_channels: int, num_convs: int, width: int):
        super().__init__()
        convs, c = [], in_channels
        for _ in range(num_convs):
            convs.append(nn.Conv2d(c, width, 3, padding=1))
            c = width
        self.convs = nn.ModuleList(convs)
        for m in self.convs:
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            nn.init.constant_(m.bias, 0)
        self.out_channels = width

    def forward(self, x):
        for conv in self.convs:
            x = torch.relu(conv(x))
        return x
