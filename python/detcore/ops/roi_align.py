"""RoIAlign (Mask R-CNN): average pooling of bilinear samples over regions
of interest, as ``torchvision.ops.roi_align``.

Non-finite RoIs never crash nor read out of bounds: a sample whose
coordinate is NaN, infinite or outside [-1, size] contributes 0 (the average
still divides by the full sampling grid), and a NaN or infinite adaptive grid
counts as no samples, so a RoI with a NaN coordinate pools to 0. Adaptive grids
are capped at 2**24 samples per axis. The gradient flows to ``input`` only.
"""

from __future__ import annotations

import math
from typing import List, Optional, Union

import numpy as np

from .. import _C
from ._interop import (
    NUMPY,
    TORCH,
    TORCH_KIND,
    check_boxes,
    check_int,
    check_ndim,
    dtype_name,
    torch,
)
from ._rois import pooled_size, prepare_rois, script_rois, spatial_scale_arg
from ._scripting import Array, BroadcastingList2, fx_node, is_scripting

_ROIS_LAYOUT = "(K, 5) [batch_index, x1, y1, x2, y2] or a list of (Ki, 4)"


def _check_params(spatial_scale, sampling_ratio, aligned) -> tuple[float, int, bool]:
    spatial_scale = spatial_scale_arg(spatial_scale)
    sampling_ratio = check_int(sampling_ratio, "sampling_ratio")
    if not isinstance(aligned, (bool, np.bool_)):
        raise TypeError(f"aligned: expected True or False, got {aligned!r} ({type(aligned).__name__})")
    return spatial_scale, sampling_ratio, bool(aligned)


def _roi_align(xp, input, rois, spatial_scale, pooled_height, pooled_width, sampling_ratio, aligned):
    check_ndim(input, "input", 4, "(N, C, H, W)")
    check_boxes(rois, "boxes", _ROIS_LAYOUT, width=5)
    out = xp.empty((rois.shape[0], input.shape[1], pooled_height, pooled_width), input.dtype, like=input)
    _C.roi_align_forward(pooled_height, pooled_width, spatial_scale, sampling_ratio, aligned, xp.native(input),
                         xp.native(rois), xp.native(out), xp.stream(input))
    return out


def _roi_align_backward(xp, grad, rois, spatial_scale, pooled_height, pooled_width, sampling_ratio, aligned,
                        input_shape, deterministic):
    grad_input = xp.empty(tuple(input_shape), grad.dtype, like=grad)
    numel = math.prod(input_shape)
    device = xp.device(grad)
    workspace = xp.workspace(
        _C.roi_align_backward_workspace_bytes(device, dtype_name(grad.dtype), pooled_height, pooled_width,
                                              spatial_scale, sampling_ratio, aligned, deterministic, numel),
        like=grad,
    )
    _C.roi_align_backward(pooled_height, pooled_width, spatial_scale, sampling_ratio, aligned, deterministic,
                          xp.native(grad), xp.native(rois), xp.native(grad_input), xp.native(workspace),
                          xp.stream(grad))
    return grad_input


def roi_align(
    input: Array,
    boxes: Union[Array, List[Array]],
    output_size: BroadcastingList2[int],
    spatial_scale: float = 1.0,
    sampling_ratio: int = -1,
    aligned: bool = False,
    deterministic: Optional[bool] = None,
) -> Array:
    """Pools each RoI to ``output_size`` bins, as ``torchvision.ops.roi_align``.

    Args:
        input: (N, C, H, W) features, float32, float64, float16 or
            bfloat16 (the half types computed in float).
        boxes: (K, 5) RoIs ``[batch_index, x1, y1, x2, y2]`` of the input's
            dtype and device, or a list of N per-image (Ki, 4) boxes.
            Batch indices must be integers in [0, N) (ValueError on the CPU;
            on CUDA such an RoI pools to zeros, as checking needs a sync).
        output_size: int or (height, width), positive.
        spatial_scale: maps box coordinates to input coordinates (> 0).
        sampling_ratio: samples per bin along each axis; <= 0 means
            ceil(roi_size / output_size), adaptive per RoI.
        aligned: shift the boxes by -0.5 pixel (detectron2's RoIAlignV2);
            False keeps the legacy rule that clamps RoI sizes to >= 1.
        deterministic: for torch tensors on CUDA, compute the backward with
            a gather kernel that is bitwise reproducible instead of atomics.
            None follows ``torch.are_deterministic_algorithms_enabled()``.
            The CPU backward is always deterministic.

    Returns:
        (K, C, output_height, output_width) in the input's dtype and
        framework (numpy for CPU DLPack inputs, a torch tensor for GPU ones).
    """
    if is_scripting():
        return torch.ops.detcore.roi_align(input, script_rois(boxes), spatial_scale, output_size[0], output_size[1],
                                           sampling_ratio, aligned, deterministic is not None and deterministic)
    node = fx_node(roi_align, input, boxes, output_size, spatial_scale, sampling_ratio, aligned, deterministic)
    if node is not None:
        return node
    pooled_height, pooled_width = pooled_size(output_size)
    spatial_scale, sampling_ratio, aligned = _check_params(spatial_scale, sampling_ratio, aligned)
    kind, input, rois = prepare_rois(input, boxes)
    if kind == TORCH_KIND:
        return torch.ops.detcore.roi_align(input, rois, spatial_scale, pooled_height, pooled_width,
                                           sampling_ratio, aligned, bool(deterministic))
    return _roi_align(NUMPY, input, rois, spatial_scale, pooled_height, pooled_width, sampling_ratio, aligned)


if torch is not None:

    @torch.library.custom_op("detcore::roi_align", mutates_args=())
    def _roi_align_op(input: torch.Tensor, rois: torch.Tensor, spatial_scale: float, pooled_height: int,
                      pooled_width: int, sampling_ratio: int, aligned: bool, deterministic: bool) -> torch.Tensor:
        # The scalars are checked here too, for TorchScript callers.
        pooled_size((pooled_height, pooled_width))
        spatial_scale, sampling_ratio, aligned = _check_params(spatial_scale, sampling_ratio, aligned)
        return _roi_align(TORCH, input.contiguous(), rois.contiguous(), spatial_scale, pooled_height, pooled_width,
                          sampling_ratio, aligned)

    @_roi_align_op.register_fake
    def _(input, rois, spatial_scale, pooled_height, pooled_width, sampling_ratio, aligned, deterministic):
        check_ndim(input, "input", 4, "(N, C, H, W)")
        check_boxes(rois, "boxes", _ROIS_LAYOUT, width=5)
        return input.new_empty((rois.shape[0], input.shape[1], pooled_height, pooled_width))

    @torch.library.custom_op("detcore::roi_align_backward", mutates_args=())
    def _roi_align_backward_op(grad: torch.Tensor, rois: torch.Tensor, spatial_scale: float, pooled_height: int,
                               pooled_width: int, sampling_ratio: int, aligned: bool, batch_size: int,
                               channels: int, height: int, width: int, deterministic: bool) -> torch.Tensor:
        return _roi_align_backward(TORCH, grad.contiguous(), rois.contiguous(), spatial_scale, pooled_height,
                                   pooled_width, sampling_ratio, aligned, (batch_size, channels, height, width),
                                   deterministic)

    @_roi_align_backward_op.register_fake
    def _(grad, rois, spatial_scale, pooled_height, pooled_width, sampling_ratio, aligned, batch_size, channels,
          height, width, deterministic):
        return grad.new_empty((batch_size, channels, height, width))

    def _setup_context(ctx, inputs, output):
        input, rois, spatial_scale, pooled_height, pooled_width, sampling_ratio, aligned, deterministic = inputs
        ctx.save_for_backward(rois)
        ctx.input_shape = tuple(input.shape)
        ctx.params = (spatial_scale, pooled_height, pooled_width, sampling_ratio, aligned)
        ctx.deterministic = deterministic

    def _backward(ctx, grad):
        (rois,) = ctx.saved_tensors
        deterministic = ctx.deterministic or torch.are_deterministic_algorithms_enabled()
        grad_input = torch.ops.detcore.roi_align_backward(grad, rois, *ctx.params, *ctx.input_shape, deterministic)
        return grad_input, None, None, None, None, None, None, None

    _roi_align_op.register_autograd(_backward, setup_context=_setup_context)

    # Leaf nodes for torch.fx when called through this module's globals.
    torch.fx.wrap("roi_align")

    class RoIAlign(torch.nn.Module):
        """``roi_align`` as a module, as ``torchvision.ops.RoIAlign``; every
        argument of `roi_align` is an attribute."""

        def __init__(self, output_size: BroadcastingList2[int], spatial_scale: float, sampling_ratio: int, aligned: bool = False,
                     deterministic: Optional[bool] = None):
            super().__init__()
            self.output_size = pooled_size(output_size)
            self.spatial_scale, self.sampling_ratio, self.aligned = _check_params(
                spatial_scale, sampling_ratio, aligned
            )
            if deterministic is not None and not isinstance(deterministic, bool):
                raise TypeError(f"deterministic: expected None, True or False, got {deterministic!r}")
            self.deterministic = deterministic

        def forward(self, input: Array, rois: Union[Array, List[Array]]) -> Array:
            return roi_align(input, rois, self.output_size, self.spatial_scale, self.sampling_ratio, self.aligned,
                             self.deterministic)

        def extra_repr(self) -> str:
            return (f"output_size={self.output_size}, spatial_scale={self.spatial_scale}, "
                    f"sampling_ratio={self.sampling_ratio}, aligned={self.aligned}, "
                    f"deterministic={self.deterministic}")

else:

    class RoIAlign:
        """``roi_align`` as a torch.nn.Module; needs PyTorch."""

        def __init__(self, *args, **kwargs):
            raise ImportError("detcore.ops.RoIAlign needs PyTorch; call detcore.ops.roi_align instead")
