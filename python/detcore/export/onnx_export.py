"""`to_onnx`: a detector into an ONNX file of standard operators, through
torch.onnx's dynamo exporter and detcore's op translations."""

from __future__ import annotations

import os

import torch
from torch import nn

from .onnx_ops import translation_table
from .torch_export import example_inputs, export_program

OPSET = 18

# SPP-net exports to torch.export, not to ONNX (see docs/deployment.md).
SPP_NOT_ONNX = (
    "sppnet_vgg16: no ONNX export: spp_pool's bins (integer stride floor(a / n), width ceil(a / n), one cell each "
    "when the window is narrower than the level) have no standard ONNX operator (MaxRoiPool spaces its bins by "
    "the fractional a / n), and a decomposition into standard operators costs memory in proposals x channels x "
    "feature-map size; use detcore.export.export_program (torch.export) instead"
)


def to_onnx(model: nn.Module, path: str | os.PathLike, image_size: tuple[int, int] | None = None,
            fuse: bool = False, num_proposals: int = 16) -> str:
    """Export `model` (a detcore detector) to ONNX at `path`; returns the path.

    The graph takes ``images`` (1, 3, H, W) float32 in [0, 1], resized by
    the caller (see `detcore.export.prepare_image`), H and W dynamic
    multiples of `required_multiple(model)` and at least `min_image_size`;
    ``proposals`` (P, 4) too for a Fast R-CNN. Outputs ``boxes``, ``labels``,
    ``scores`` (and ``masks``, (D, 1, M, M) probabilities in each box: paste
    them with `detcore.export.paste_masks`).

    Args:
        image_size: (H, W) of the example traced; any valid size gives the
            same graph (default: the smallest valid size).
        fuse: fold the frozen batch norms first (`model.fuse()`, in place;
            the CPU layout and Winograd switches are left off: the ONNX
            runtime picks its own).
        num_proposals: P of the example proposals for a Fast R-CNN.
    """
    from ..models.classic.sppnet import SPPNet

    if isinstance(model, SPPNet):
        raise ValueError(SPP_NOT_ONNX)
    if fuse and hasattr(model, "fuse"):
        model.fuse(channels_last=False, winograd=False)
    program, wrapper = export_program(model, image_size, num_proposals)
    args = example_inputs(wrapper, image_size, num_proposals)
    return program_to_onnx(program, args, wrapper.output_names, path, ["images", "proposals"][: len(args)])


def program_to_onnx(program, args: tuple, output_names: list[str], path: str | os.PathLike,
                    input_names: list[str] | None = None) -> str:
    """An ExportedProgram (of `export_program`, or of anything calling
    detcore's ops) into an ONNX file at `path`; returns the path. Inputs are
    named `input_names` (default: the program's argument names)."""
    onnx_program = torch.onnx.export(
        program,
        args,
        dynamo=True,
        opset_version=OPSET,
        input_names=input_names,
        output_names=output_names,
        custom_translation_table=translation_table(),
        optimize=True,
        verify=False,
        report=False,
    )
    path = os.fspath(path)
    onnx_program.save(path)
    return path
