"""Helpers shared by the RoI max-pooling ops (roi_pool, spp_pool)."""

from __future__ import annotations

from ._interop import check_boxes, check_ndim, dtype_name, torch

ROIS_LAYOUT = "(K, 5) [batch_index, x1, y1, x2, y2]"


def check_pool_args(input, rois) -> None:
    """The checks needed to size the outputs (also run by the fake
    implementation under torch.compile); the core checks everything again."""
    check_ndim(input, "input", 4, "(N, C, H, W)")
    check_boxes(rois, "boxes", ROIS_LAYOUT, width=5)
    if rois.dtype != input.dtype:
        raise TypeError(
            f"boxes: expected the dtype of input ({dtype_name(input.dtype)}), got {dtype_name(rois.dtype)}"
        )


def gather_at_argmax(grad_grad_input, rois, argmax, column_channel):
    """The gradient of a max-pool backward with respect to grad_out (the
    backward is linear in grad_out): grad_grad_input gathered at each bin's
    argmax, 0 for empty bins. argmax is (K, ...) with the same number of
    values per RoI as `column_channel` (int64), the input channel of each."""
    batch_size, channels, height, width = grad_grad_input.shape
    if argmax.numel() == 0 or height * width == 0:
        return grad_grad_input.new_zeros(argmax.shape)
    # Invalid batch indices (CUDA) only come with argmax -1: any row will do.
    image = torch.nan_to_num(rois[:, 0]).clamp(0, batch_size - 1).long()
    planes = grad_grad_input.reshape(batch_size, channels * height * width)[image]
    cells = argmax.reshape(argmax.shape[0], -1).long().clamp(min=0)
    gathered = planes.gather(1, column_channel * (height * width) + cells).reshape(argmax.shape)
    return torch.where(argmax >= 0, gathered, 0)
