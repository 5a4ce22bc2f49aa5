"""Fast R-CNN RoI max pooling, as ``torchvision.ops.roi_pool``."""

from __future__ import annotations

from typing import List, Union

from .. import _C
from ._interop import NUMPY, TORCH, TORCH_KIND, torch
from ._max_pool import check_pool_args, gather_at_argmax
from ._rois import check_pooled_output, pooled_size, prepare_rois, script_rois, spatial_scale_arg
from ._scripting import Array, BroadcastingList2, fx_node, is_scripting


def _roi_pool(xp, input, rois, spatial_scale: float, pooled_height: int, pooled_width: int):
    """(output, argmax): argmax is int32, the index h * W + w of each bin's
    maximum in its input plane, -1 for an empty bin."""
    check_pool_args(input, rois)
    check_pooled_output(input, rois, pooled_height, pooled_width)
    shape = (rois.shape[0], input.shape[1], pooled_height, pooled_width)
    out = xp.empty(shape, input.dtype, like=input)
    argmax = xp.empty(shape, xp.int32, like=input)
    _C.roi_pool_forward(
        pooled_height, pooled_width, spatial_scale, xp.native(input), xp.native(rois), xp.native(out),
        xp.native(argmax), xp.stream(input)
    )
    return out, argmax


def _roi_pool_backward(xp, grad_out, rois, argmax, input_shape, deterministic: bool = False):
    """The gradient with respect to the input, of shape `input_shape`. The
    CPU result is always deterministic; on CUDA `deterministic` trades
    atomicAdd for a fixed summation order."""
    grad_input = xp.empty(tuple(input_shape), grad_out.dtype, like=grad_out)
    _C.roi_pool_backward(
        grad_out.shape[2],
        grad_out.shape[3],
        deterministic,
        xp.native(grad_out),
        xp.native(rois),
        xp.native(argmax),
        xp.native(grad_input),
        xp.stream(grad_out),
    )
    return grad_input


def roi_pool(
    input: Array, boxes: Union[Array, List[Array]], output_size: BroadcastingList2[int], spatial_scale: float = 1.0
) -> Array:
    """Max pooling of each RoI over a grid of bins (Fast R-CNN), as
    ``torchvision.ops.roi_pool``.

    Args:
        input: (N, C, H, W) features, float32, float64, float16 or
            bfloat16 (the half types computed in float).
        boxes: (K, 5) RoIs ``[batch_index, x1, y1, x2, y2]`` in image
            coordinates, of the input's dtype and device, or a list of N
            per-image (Ki, 4) boxes.
        output_size: int or (height, width) of the bin grid, each in
            [1, 4096] (a bound on the work of one call).
        spatial_scale: feature cells per image pixel (e.g. 1/16), finite > 0.

    Returns:
        (K, C, height, width) maxima, in the input's framework (numpy for
        DLPack inputs). Differentiable with respect to `input` for torch.

    Each corner is scaled and rounded half away from zero; the RoI spans
    (x2 - x1 + 1) cells at least 1; bin borders are floored / ceiled and
    clipped to the map, so bins outside the map output 0. On ties the first
    maximum in row-major order wins. NaN features never win a comparison: a
    bin with only NaN (or -inf) values outputs the dtype's lowest finite
    value (float32's for float16/bfloat16 on CUDA) and passes no gradient. An
    RoI with a NaN corner outputs zeros; infinite and huge corners are
    clamped far outside the map. On the CPU a batch index that is not an
    integer in [0, N) raises ValueError; on CUDA that RoI outputs zeros.
    The CPU backward is deterministic; on CUDA it uses atomicAdd unless
    ``torch.use_deterministic_algorithms(True)`` is in effect.
    """
    if is_scripting():
        return torch.ops.detcore.roi_pool(input, script_rois(boxes), spatial_scale, output_size[0], output_size[1])[0]
    node = fx_node(roi_pool, input, boxes, output_size, spatial_scale)
    if node is not None:
        return node
    height, width = pooled_size(output_size)
    scale = spatial_scale_arg(spatial_scale)
    kind, input, rois = prepare_rois(input, boxes)
    if kind == TORCH_KIND:
        out, _ = torch.ops.detcore.roi_pool(input, rois, scale, height, width)
        return out
    out, _ = _roi_pool(NUMPY, input, rois, scale, height, width)
    return out


if torch is not None:

    @torch.library.custom_op("detcore::roi_pool", mutates_args=())
    def _roi_pool_op(
        input: torch.Tensor, rois: torch.Tensor, spatial_scale: float, pooled_height: int, pooled_width: int
    ) -> tuple[torch.Tensor, torch.Tensor]:
        # The scalars are checked here too, for TorchScript callers.
        pooled_size((pooled_height, pooled_width))
        spatial_scale = spatial_scale_arg(spatial_scale)
        return _roi_pool(TORCH, input.contiguous(), rois.contiguous(), spatial_scale, pooled_height, pooled_width)

    @_roi_pool_op.register_fake
    def _(input, rois, spatial_scale, pooled_height, pooled_width):
        check_pool_args(input, rois)
        shape = (rois.shape[0], input.shape[1], pooled_height, pooled_width)
        return input.new_empty(shape), input.new_empty(shape, dtype=torch.int32)

    @torch.library.custom_op("detcore::roi_pool_backward", mutates_args=())
    def _roi_pool_backward_op(
        grad_out: torch.Tensor,
        rois: torch.Tensor,
        argmax: torch.Tensor,
        batch_size: int,
        channels: int,
        height: int,
        width: int,
    ) -> torch.Tensor:
        shape = (batch_size, channels, height, width)
        # torch.use_deterministic_algorithms(True) selects the CUDA kernel
        # without atomics.
        deterministic = torch.are_deterministic_algorithms_enabled()
        return _roi_pool_backward(
            TORCH, grad_out.contiguous(), rois.contiguous(), argmax.contiguous(), shape, deterministic
        )

    @_roi_pool_backward_op.register_fake
    def _(grad_out, rois, argmax, batch_size, channels, height, width):
        return grad_out.new_empty((batch_size, channels, height, width))

    def _setup_context(ctx, inputs, output):
        input, rois, _, _, _ = inputs
        _, argmax = output
        ctx.save_for_backward(rois, argmax)
        ctx.input_shape = tuple(input.shape)

    def _backward(ctx, grad_out, _grad_argmax):
        rois, argmax = ctx.saved_tensors
        grad_input = torch.ops.detcore.roi_pool_backward(grad_out, rois, argmax, *ctx.input_shape)
        return grad_input, None, None, None, None

    _roi_pool_op.register_autograd(_backward, setup_context=_setup_context)

    def _setup_backward_context(ctx, inputs, output):
        _, rois, argmax, _, _, _, _ = inputs
        ctx.save_for_backward(rois, argmax)

    def _backward_backward(ctx, grad_grad_input):
        rois, argmax = ctx.saved_tensors
        channels = grad_grad_input.shape[1]
        bins = argmax.shape[2] * argmax.shape[3]
        column_channel = torch.arange(channels, device=argmax.device).repeat_interleave(bins)
        return gather_at_argmax(grad_grad_input, rois, argmax, column_channel), None, None, None, None, None, None

    _roi_pool_backward_op.register_autograd(_backward_backward, setup_context=_setup_backward_context)

    # Leaf nodes for torch.fx when called through this module's globals.
    torch.fx.wrap("roi_pool")

    class RoIPool(torch.nn.Module):
        """``roi_pool`` as a module, as ``torchvision.ops.RoIPool``; every
        argument of `roi_pool` is an attribute."""

        def __init__(self, output_size: BroadcastingList2[int], spatial_scale: float):
            super().__init__()
            self.output_size = pooled_size(output_size)
            self.spatial_scale = spatial_scale_arg(spatial_scale)

        def forward(self, input: Array, rois: Union[Array, List[Array]]) -> Array:
            return roi_pool(input, rois, self.output_size, self.spatial_scale)

        def extra_repr(self) -> str:
            return f"output_size={self.output_size}, spatial_scale={self.spatial_scale}"

else:

    class RoIPool:
        """See :func:`roi_pool`; needs PyTorch."""

        def __init__(self, *args, **kwargs):
            raise ImportError("detcore.ops.RoIPool needs PyTorch")
