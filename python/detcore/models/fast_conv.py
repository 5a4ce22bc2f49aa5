"""Winograd convolutions for the 3x3 layers of a fused detector on the CPU.

PyTorch runs a float32 convolution on the CPU through oneDNN's direct
algorithm. For 3x3, stride-1 convolutions with many channels (the FPN
outputs, the RPN and RetinaNet heads, the mask and keypoint heads) NNPACK's
Winograd and FFT algorithms, which PyTorch ships and reaches through
``torch._nnpack_spatial_convolution``, do the same work in about half the
time on an AVX2 machine (``benchmarks/bench_models.py``). The results differ
from oneDNN's by rounding only (about 1e-5 of the largest output).

``use_winograd(model)`` switches the eligible convolutions of an inference
model to NNPACK. The switched layers stay ``nn.Conv2d`` (same parameters,
same state dict) and fall back to the ordinary convolution wherever NNPACK
cannot run: on another device or dtype, with autograd recording, under
TorchScript, ``torch.compile``, ``torch.export`` or ONNX export (whose graphs
keep the standard operator), and when PyTorch was built without NNPACK.
"""

from __future__ import annotations

from typing import Optional

import torch
from torch import nn

# Smallest channel count switched: below it the transforms cost about what
# they save (a 64-channel layer gains 1.3x, a 256-channel one 2-2.6x).
MIN_CHANNELS = 128


def winograd_available() -> bool:
    """Whether this PyTorch can run NNPACK (the call also initialises it)."""
    try:
        return bool(torch._nnpack_available())
    except (AttributeError, RuntimeError):
        return False


def _eligible(conv: nn.Module, min_channels: int) -> bool:
    return (type(conv) is nn.Conv2d and conv.kernel_size == (3, 3) and conv.stride == (1, 1)
            and conv.dilation == (1, 1) and conv.groups == 1 and conv.padding_mode == "zeros"
            and isinstance(conv.padding, tuple) and min(conv.in_channels, conv.out_channels) >= min_channels)


class WinogradConv2d(nn.Conv2d):
    """An ``nn.Conv2d`` (3x3, stride 1) that runs through NNPACK where it can."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not torch.jit.is_scripting():
            out = self._winograd(x)
            if out is not None:
                return out
        return self._conv_forward(x, self.weight, self.bias)

    @torch.jit.unused
    def _winograd(self, x: torch.Tensor) -> Optional[torch.Tensor]:
        """NNPACK's result, or None where the ordinary convolution must run."""
        if (torch.compiler.is_compiling() or torch.onnx.is_in_onnx_export() or x.device.type != "cpu"
                or x.dtype != torch.float32 or self.weight.dtype != torch.float32 or x.dim() != 4
                or x.numel() == 0  # NNPACK refuses an empty batch
                or (torch.is_grad_enabled() and (self.weight.requires_grad or x.requires_grad))):
            return None
        try:
            return torch._nnpack_spatial_convolution(x.contiguous(), self.weight.contiguous(), self.bias,
                                                     list(self.padding), [1, 1])
        except RuntimeError:  # NNPACK's own failure (its workspace, an unsupported size): oneDNN runs instead
            return None


def use_winograd(model: nn.Module, min_channels: int = MIN_CHANNELS) -> int:
    """Switch every 3x3, stride-1, ungrouped convolution of ``model`` with at
    least ``min_channels`` input and output channels to ``WinogradConv2d``,
    in place. Returns how many were switched (0 where NNPACK is missing)."""
    if not winograd_available():
        return 0
    switched = 0
    for module in model.modules():
        if _eligible(module, min_channels):
            module.__class__ = WinogradConv2d
            switched += 1
    return switched
