"""Inference-time fusion of a detector: every frozen batch norm folded into
the convolution before it; on the CPU the weights in channels_last and the
3x3 convolutions with many channels through NNPACK's Winograd algorithm
(``fast_conv``). The detections stay the same to rounding (about 1e-5
relative on the features); the backbone runs fewer passes over memory and the
heads about half the arithmetic. Training a fused model is not meant: the
folded layers lose the frozen statistics that a checkpoint of the unfused
model keeps.

The README's whole-detector table gives the speed of each step on a 2-core
AVX2 CPU (``benchmarks/bench_models.py``). On a GPU neither channels_last
nor the Winograd path is switched on: float32 convolutions there run
through cuDNN, and that was not measured here."""

from __future__ import annotations

from typing import Optional

import torch
from torch import nn

from .fast_conv import MIN_CHANNELS, use_winograd


def fuse(model: nn.Module, channels_last: Optional[bool] = None, winograd: bool = True,
         winograd_min_channels: int = MIN_CHANNELS) -> nn.Module:
    """Fold the frozen batch norms of `model` into its convolutions, in place;
    returns `model` (in eval mode). Modules say how they fold themselves
    through a ``fold_batch_norms()`` method (the ResNet body does).

    Args:
        channels_last: store the conv weights in channels_last (None: where
            the model's parameters are on the CPU).
        winograd: run the 3x3, stride-1 convolutions with at least
            ``winograd_min_channels`` channels through NNPACK on the CPU
            (``detcore.models.fast_conv``; ignored where PyTorch lacks it).
    """
    model.eval()
    for module in list(model.modules()):
        fold = getattr(module, "fold_batch_norms", None)
        if module is not model and callable(fold):
            fold()
    if channels_last is None:
        channels_last = all(p.device.type == "cpu" for p in model.parameters())
    if channels_last:
        model.to(memory_format=torch.channels_last)
    if winograd:
        use_winograd(model, winograd_min_channels)
    return model
