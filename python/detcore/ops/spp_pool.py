"""Spatial pyramid max pooling of RoIs (SPP-net, He et al., ECCV 2014)."""

from __future__ import annotations

import numbers
from typing import List, Union

import numpy as np

from .. import _C
from ._interop import (
    MAX_SPP_LEVEL_SIZE,
    MAX_SPP_LEVELS,
    NUMPY,
    TORCH,
    TORCH_KIND,
    check_int,
    check_output_bytes,
    torch,
)
from ._max_pool import check_pool_args, gather_at_argmax
from ._rois import prepare_rois, script_rois, spatial_scale_arg
from ._scripting import Array, Levels, fx_node, is_scripting


def spp_levels(levels) -> tuple[int, ...]:
    """The pyramid as a tuple of bins per side: 1 to MAX_SPP_LEVELS levels,
    each an int in [1, MAX_SPP_LEVEL_SIZE] (an int alone is one level; a
    tuple, list or 1-D numpy array of ints, numpy integers included)."""
    if isinstance(levels, numbers.Integral) and not isinstance(levels, bool):
        levels = (levels,)
    if isinstance(levels, np.ndarray) and levels.ndim != 1:
        raise ValueError(f"levels: expected a 1-D sequence of ints (bins per side), got shape {levels.shape}")
    if not isinstance(levels, (tuple, list, np.ndarray)):
        raise TypeError(f"levels: expected an int or a sequence of ints (bins per side), got {type(levels).__name__}")
    # The core's limits (detcore/math/spp_pool.h), checked here too so that
    # torch.compile traces the check.
    if not 1 <= len(levels) <= MAX_SPP_LEVELS:
        raise ValueError(f"levels: expected 1 to {MAX_SPP_LEVELS} pyramid levels, got {len(levels)}")
    return tuple(check_int(n, "levels", 1, MAX_SPP_LEVEL_SIZE) for n in levels)


def spp_pool_bins(levels) -> int:
    """Pooled values per channel: the sum of n * n over the levels."""
    return sum(n * n for n in spp_levels(levels))


def _spp_pool(xp, input, rois, levels: tuple[int, ...], spatial_scale: float):
    """(output, argmax), both (K, C * bins): argmax is int32, the index
    h * W + w of each bin's maximum in its input plane, -1 for an empty bin."""
    check_pool_args(input, rois)
    shape = (rois.shape[0], input.shape[1] * spp_pool_bins(levels))
    # Checked before the allocation is tried; levels is what sized it.
    check_output_bytes(shape, input.dtype.itemsize, "levels")
    out = xp.empty(shape, input.dtype, like=input)
    argmax = xp.empty(shape, xp.int32, like=input)
    _C.spp_pool_forward(
        list(levels), spatial_scale, xp.native(input), xp.native(rois), xp.native(out), xp.native(argmax),
        xp.stream(input)
    )
    return out, argmax


def _spp_pool_backward(xp, grad_out, rois, argmax, levels: tuple[int, ...], input_shape, deterministic: bool = False):
    """The gradient with respect to the input, of shape `input_shape`. The
    CPU result is always deterministic; on CUDA `deterministic` trades
    atomicAdd for a fixed summation order."""
    grad_input = xp.empty(tuple(input_shape), grad_out.dtype, like=grad_out)
    _C.spp_pool_backward(
        list(levels),
        deterministic,
        xp.native(grad_out),
        xp.native(rois),
        xp.native(argmax),
        xp.native(grad_input),
        xp.stream(grad_out),
    )
    return grad_input


def spp_pool(
    input: Array, boxes: Union[Array, List[Array]], levels: Levels = (6, 3, 2, 1), spatial_scale: float = 1.0
) -> Array:
    """Spatial pyramid max pooling of each RoI (SPP-net), every level in one
    pass.

    Args:
        input: (N, C, H, W) features, float32, float64, float16 or
            bfloat16 (the half types computed in float).
        boxes: (K, 5) RoIs ``[batch_index, x1, y1, x2, y2]`` in image
            coordinates, of the input's dtype and device, or a list of N
            per-image (Ki, 4) boxes.
        levels: bins per side of each pyramid level (SPP-net's detector:
            6, 3, 2, 1, i.e. 50 bins per channel); an int is one level.
            1 to 16 levels of 1 to 1024 bins per side (a bound on the work
            of one call).
        spatial_scale: feature cells per image pixel (1/16 for VGG16 conv5),
            finite > 0.

    Returns:
        (K, C * sum(n * n)) maxima, in the input's framework (numpy for
        DLPack inputs). A row holds the levels in the order given, each
        level's (C, n, n) grid flattened channel-major (channel, bin row,
        bin column): SPP-net's concatenation of the flattened level outputs,
        ``torch.cat([level.flatten(1) for level in per_level], 1)``.
        Differentiable with respect to `input` for torch.

    The RoI is projected onto the map as in the paper's appendix: cell j is
    centred at image coordinate j / spatial_scale, and the window holds the
    cells from floor(x1 * spatial_scale) + 1 to ceil(x2 * spatial_scale) - 1
    (the cells whose centres lie strictly inside the box; the same for y).
    A box holding no cell centre gets the single cell nearest its centre.
    A level of n bins splits a window of a cells with window ceil(a / n) and
    stride floor(a / n); when a < n, bin i is the cell floor(i * a / n).
    Bins are clipped to the map; a bin outside it outputs 0. On ties the
    first maximum in row-major order wins; NaN features never win (a bin of
    only NaN or -inf outputs the dtype's lowest finite value, float32's
    rounded for float16/bfloat16, and passes no gradient). An RoI with a NaN
    corner outputs zeros; infinite and huge corners are clamped far outside
    the map. On the CPU a batch index that is not an integer in [0, N)
    raises ValueError; on CUDA that RoI outputs zeros. The CPU backward is deterministic; on CUDA it uses atomicAdd
    unless ``torch.use_deterministic_algorithms(True)`` is in effect.
    """
    if is_scripting():
        return torch.ops.detcore.spp_pool(input, script_rois(boxes), levels, spatial_scale)[0]
    node = fx_node(spp_pool, input, boxes, levels, spatial_scale)
    if node is not None:
        return node
    levels = spp_levels(levels)
    scale = spatial_scale_arg(spatial_scale)
    kind, input, rois = prepare_rois(input, boxes)
    if kind == TORCH_KIND:
        out, _ = torch.ops.detcore.spp_pool(input, rois, list(levels), scale)
        return out
    out, _ = _spp_pool(NUMPY, input, rois, levels, scale)
    return out


if torch is not None:

    @torch.library.custom_op("detcore::spp_pool", mutates_args=())
    def _spp_pool_op(
        input: torch.Tensor, rois: torch.Tensor, levels: list[int], spatial_scale: float
    ) -> tuple[torch.Tensor, torch.Tensor]:
        # The scalars are checked here too, for TorchScript callers.
        levels = spp_levels(levels)
        spatial_scale = spatial_scale_arg(spatial_scale)
        return _spp_pool(TORCH, input.contiguous(), rois.contiguous(), levels, spatial_scale)

    @_spp_pool_op.register_fake
    def _(input, rois, levels, spatial_scale):
        check_pool_args(input, rois)
        shape = (rois.shape[0], input.shape[1] * spp_pool_bins(tuple(levels)))
        return input.new_empty(shape), input.new_empty(shape, dtype=torch.int32)

    @torch.library.custom_op("detcore::spp_pool_backward", mutates_args=())
    def _spp_pool_backward_op(
        grad_out: torch.Tensor,
        rois: torch.Tensor,
        argmax: torch.Tensor,
        levels: list[int],
        batch_size: int,
        channels: int,
        height: int,
        width: int,
    ) -> torch.Tensor:
        shape = (batch_size, channels, height, width)
        # torch.use_deterministic_algorithms(True) selects the CUDA kernel
        # without atomics.
        deterministic = torch.are_deterministic_algorithms_enabled()
        return _spp_pool_backward(
            TORCH, grad_out.contiguous(), rois.contiguous(), argmax.contiguous(), tuple(levels), shape, deterministic
        )

    @_spp_pool_backward_op.register_fake
    def _(grad_out, rois, argmax, levels, batch_size, channels, height, width):
        return grad_out.new_empty((batch_size, channels, height, width))

    def _setup_context(ctx, inputs, output):
        input, rois, levels, _ = inputs
        _, argmax = output
        ctx.save_for_backward(rois, argmax)
        ctx.levels = list(levels)
        ctx.input_shape = tuple(input.shape)

    def _backward(ctx, grad_out, _grad_argmax):
        rois, argmax = ctx.saved_tensors
        grad_input = torch.ops.detcore.spp_pool_backward(grad_out, rois, argmax, ctx.levels, *ctx.input_shape)
        return grad_input, None, None, None

    _spp_pool_op.register_autograd(_backward, setup_context=_setup_context)

    def _column_channels(levels, channels: int, device) -> torch.Tensor:
        """The input channel of each output column (levels, then channels, then bins)."""
        per_level = [torch.arange(channels, device=device).repeat_interleave(n * n) for n in levels]
        return torch.cat(per_level)

    def _setup_backward_context(ctx, inputs, output):
        _, rois, argmax, levels, _, _, _, _ = inputs
        ctx.save_for_backward(rois, argmax)
        ctx.levels = list(levels)

    def _backward_backward(ctx, grad_grad_input):
        rois, argmax = ctx.saved_tensors
        column_channel = _column_channels(ctx.levels, grad_grad_input.shape[1], argmax.device)
        return (gather_at_argmax(grad_grad_input, rois, argmax, column_channel), *(None,) * 7)

    _spp_pool_backward_op.register_autograd(_backward_backward, setup_context=_setup_backward_context)

    # Leaf nodes for torch.fx when called through this module's globals.
    torch.fx.wrap("spp_pool")

    class SPPPool(torch.nn.Module):
        """``spp_pool`` as a module (SPP-net's pooling layer); every argument
        of `spp_pool` is an attribute."""

        def __init__(self, levels: Levels = (6, 3, 2, 1), spatial_scale: float = 1.0):
            super().__init__()
            # A list, so that TorchScript infers List[int] for any depth.
            self.levels = list(spp_levels(levels))
            self.spatial_scale = spatial_scale_arg(spatial_scale)

        @torch.jit.unused
        def output_channels(self, channels: int) -> int:
            """Width of a pooled row for `channels` input channels."""
            return channels * spp_pool_bins(self.levels)

        def forward(self, input: Array, rois: Union[Array, List[Array]]) -> Array:
            return spp_pool(input, rois, self.levels, self.spatial_scale)

        def extra_repr(self) -> str:
            return f"levels={tuple(self.levels)}, spatial_scale={self.spatial_scale}"

else:

    class SPPPool:
        """See :func:`spp_pool`; needs PyTorch."""

        def __init__(self, *args, **kwargs):
            raise ImportError("detcore.ops.SPPPool needs PyTorch")
