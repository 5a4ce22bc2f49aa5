"""R-CNN's region warp: each proposal, enlarged by context padding, is
resampled to a fixed square input with detcore.ops.roi_align."""

from __future__ import annotations

import torch

from ... import ops


def context_boxes(boxes: torch.Tensor, size: int, context_pad: int) -> torch.Tensor:
    """Enlarges each box about its centre so that, once warped to
    ``size`` x ``size``, the original box fills the inner
    ``size - 2 * context_pad`` pixels and ``context_pad`` pixels of image
    context surround it (R-CNN, appendix A: padding in the warped frame)."""
    if context_pad <= 0:
        return boxes
    scale = size / (size - 2.0 * context_pad)
    centre = (boxes[:, :2] + boxes[:, 2:]) / 2
    half = (boxes[:, 2:] - boxes[:, :2]) / 2 * scale
    return torch.cat([centre - half, centre + half], 1)


def warp_regions(image: torch.Tensor, boxes: torch.Tensor, size: int, context_pad: int = 16) -> torch.Tensor:
    """(3, H, W) normalised image and (P, 4) boxes -> (P, 3, size, size) crops.

    The warp is anisotropic (R-CNN's "warp" mode). Context that falls outside
    the image reads as 0, i.e. the mean of the normalised image, as R-CNN
    pads with the mean pixel. Bins average an adaptive sampling grid, so a
    large box is shrunk without aliasing."""
    boxes = context_boxes(boxes.to(image.dtype), size, context_pad)
    return ops.roi_align(image[None], [boxes], size, spatial_scale=1.0, sampling_ratio=-1, aligned=True)
