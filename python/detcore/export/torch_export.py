"""`export_program`: a detector as a torch.export ExportedProgram with
dynamic image height and width (through `ExportWrapper`)."""

from __future__ import annotations

import torch
from torch import nn

from .wrapper import ExportWrapper, required_multiple

MAX_SIDE = 4096


def min_image_size(model: nn.Module) -> int:
    """The smallest H (and W) the exported graph takes: the first multiple of
    `required_multiple` above the coarsest feature stride, so that every
    feature map has at least two rows and columns (the exporters specialise
    size-1 maps)."""
    m = required_multiple(model)
    backbone = getattr(model, "backbone", None)
    if backbone is None:  # R-CNN: the image is only sampled by the region warp
        return 2 * m
    coarsest = max(backbone.strides)
    return max(coarsest // m + 1, 2) * m  # two at least: size-1 dims get specialised


def check_image_size(model: nn.Module, image_size) -> tuple[int, int]:
    """(H, W) as ints, or a ValueError saying what the model needs."""
    m, lo = required_multiple(model), min_image_size(model)
    try:
        h, w = (int(s) for s in image_size)
    except (TypeError, ValueError):
        raise ValueError(f"image_size: expected (H, W), got {image_size!r}") from None
    if h % m or w % m or min(h, w) < lo or max(h, w) > MAX_SIDE:
        raise ValueError(
            f"image_size: expected H and W multiples of {m} in [{lo}, {MAX_SIDE}] for this model, got ({h}, {w})"
        )
    return h, w


def example_inputs(wrapper: ExportWrapper, image_size=None, num_proposals: int = 16) -> tuple:
    """Random example inputs of a valid size (the values do not matter)."""
    lo = min_image_size(wrapper.model)
    h, w = check_image_size(wrapper.model, image_size or (lo, lo + required_multiple(wrapper.model)))
    gen = torch.Generator().manual_seed(0)
    images = torch.rand((1, 3, h, w), generator=gen)
    if not wrapper.needs_proposals:
        return (images,)
    xy = torch.rand((num_proposals, 2), generator=gen) * torch.tensor([w / 2, h / 2])
    wh = torch.rand((num_proposals, 2), generator=gen) * torch.tensor([w / 2, h / 2]) + 4
    return images, torch.cat([xy, xy + wh], dim=1)


def dynamic_shapes(wrapper: ExportWrapper) -> dict:
    m, lo = required_multiple(wrapper.model), min_image_size(wrapper.model)
    hd = torch.export.Dim("h", min=lo // m, max=MAX_SIDE // m)
    wd = torch.export.Dim("w", min=lo // m, max=MAX_SIDE // m)
    shapes = {"images": {2: m * hd, 3: m * wd}}
    if wrapper.needs_proposals:
        shapes["proposals"] = {0: torch.export.Dim("num_proposals", min=1, max=100000)}
    return shapes


def export_program(model: nn.Module, image_size=None, num_proposals: int = 16):
    """(torch.export.ExportedProgram, its ExportWrapper) of `model` in eval
    mode; the program takes the wrapper's inputs with any valid H and W."""
    wrapper = ExportWrapper(model).eval()
    args = example_inputs(wrapper, image_size, num_proposals)
    with torch.no_grad():
        program = torch.export.export(wrapper, args, dynamic_shapes=dynamic_shapes(wrapper), strict=False)
    return program, wrapper
