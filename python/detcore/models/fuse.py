"""Inference-time fusion of a detector: every frozen batch norm folded into
the convolution before it. The detections stay the same to rounding (about
1e-6 relative on the features); the backbone runs fewer passes over memory.
Training a fused model is not meant: the folded layers lose the frozen
statistics that a checkpoint of the unfused model keeps."""

from __future__ import annotations

from torch import nn


def fuse(model: nn.Module) -> nn.Module:
    """Fold the frozen batch norms of `model` into its convolutions, in place;
    returns `model` (in eval mode). Modules say how they fold themselves
    through a ``fold_batch_norms()`` method (the ResNet body does)."""
    model.eval()
    for module in list(model.modules()):
        fold = getattr(module, "fold_batch_norms", None)
        if module is not model and callable(fold):
            fold()
    return model
