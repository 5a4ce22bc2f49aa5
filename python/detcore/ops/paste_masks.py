"""Pasting Mask R-CNN's per-box soft masks back into the image."""

from __future__ import annotations

import math
from typing import Optional, Sequence, Tuple

import numpy as np

from .. import _C
from ._interop import MAX_IMAGE_SIDE, NUMPY, TORCH, TORCH_KIND, check_boxes, check_float, check_int, prepare, torch
from ._scripting import Array, fx_node, is_scripting

_NUMPY_DTYPE_OF_TORCH = {torch.float32: np.float32, torch.float64: np.float64, torch.bool: np.bool_} if torch else {}
PASTE_MODES = ("bilinear", "bicubic")


def _mask_planes(masks):
    """masks as (N, Mh, Mw): (N, 1, Mh, Mw) from a mask head loses its
    channel axis (a view)."""
    if masks.ndim == 4 and masks.shape[1] == 1:
        return masks.reshape(masks.shape[0], masks.shape[2], masks.shape[3])
    if masks.ndim != 3:
        raise ValueError(f"masks: expected an array of shape (N, M, M) or (N, 1, M, M), got shape {tuple(masks.shape)}")
    return masks


def _image_size(image_size) -> tuple[int, int]:
    try:
        size = tuple(image_size)
    except TypeError:
        raise TypeError(f"image_size: expected a pair of ints (H, W), got {type(image_size).__name__}") from None
    if len(size) != 2:
        raise ValueError(f"image_size: expected a pair of ints (H, W), got {len(size)} values")
    return check_int(size[0], "image_size[0]", 0, MAX_IMAGE_SIDE), check_int(size[1], "image_size[1]", 0, MAX_IMAGE_SIDE)


def _threshold(threshold) -> Optional[float]:
    if threshold is None:
        return None
    value = check_float(threshold, "threshold")
    if not -math.inf < value < math.inf:  # not math.isfinite: symbolic under torch.compile
        raise ValueError(f"threshold: expected a finite number, got {value}")
    return value


def _mode(mode) -> str:
    if not isinstance(mode, str) or mode not in PASTE_MODES:
        raise ValueError(f"mode: expected 'bilinear' or 'bicubic', got {mode!r}")
    return mode


def _output(xp, shape, dtype, like):
    """The output and whether it holds zeros already. On the CPU it is zeros
    from calloc, whose pages the OS maps on first write: the kernel then writes
    only the pixels inside the boxes, and the rest of a large output (most of
    it) is never touched, where allocating and filling it would cost more
    than the paste itself."""
    if xp is NUMPY:
        return np.zeros(shape, dtype), True
    if like.device.type == "cpu" and dtype in _NUMPY_DTYPE_OF_TORCH:
        return torch.from_numpy(np.zeros(shape, _NUMPY_DTYPE_OF_TORCH[dtype])), True
    return xp.empty(shape, dtype, like=like), False


def _paste_masks(xp, masks, boxes, image_size, threshold, mode):
    masks = _mask_planes(masks)
    check_boxes(boxes, "boxes")
    height, width = _image_size(image_size)
    threshold = _threshold(threshold)
    mode = _mode(mode)
    dtype = masks.dtype if threshold is None else xp.bool_
    out, holds_zeros = _output(xp, (masks.shape[0], height, width), dtype, like=masks)
    _C.paste_masks(threshold, holds_zeros, mode, xp.native(masks), xp.native(boxes), xp.native(out),
                   xp.stream(masks))
    return out


def paste_masks(
    masks: Array, boxes: Array, image_size: Tuple[int, int], threshold: Optional[float] = None, mode: str = "bilinear"
) -> Array:
    """Pastes each mask into an image-sized plane, as torchvision's
    ``paste_masks_in_image(masks, boxes, image_size, padding=1)`` (the
    default ``mode="bilinear"``), or with a bicubic resize.

    Each mask is padded by one zero pixel per side, its box is enlarged by
    (M + 2) / M about its centre and truncated to integer pixels
    ``x0, y0, x1, y1``; the padded mask is resized bilinearly
    (``align_corners=False``) to ``(y1 - y0 + 1, x1 - x0 + 1)`` and placed
    with its corner on pixel ``(y0, x0)``, clipped to the image. Pixels
    outside the box are 0. The bilinear arithmetic is ATen's CPU resize as
    built with FMA, so float32 and float64 results equal torchvision's bit for bit on
    x86-64 CPUs with FMA (and agree to a rounding elsewhere); CUDA gives the
    CPU's result, rounded to float16 / bfloat16 for those dtypes.

    ``mode="bicubic"`` resizes the padded mask with Keys' cubic convolution
    kernel (a = -0.75, as ``F.interpolate(mode="bicubic",
    align_corners=False)`` and OpenCV) instead, everything else unchanged:
    the same pixel centres (output index d samples the source coordinate
    ``(d + 0.5) * in / out - 0.5``) and the four taps per axis clamped to the
    padded mask, whose zero border is repeated beyond it (torch's rule). It
    agrees with that F.interpolate of the padded mask to a rounding; values may
    overshoot [0, 1] near sharp edges, as there. CUDA gives the CPU's bits.

    Inference only: there is no autograd formula.

    Args:
        masks: (N, Mh, Mw) or (N, 1, Mh, Mw) soft masks (mask-head
            probabilities), float32, float64, float16 or bfloat16 (the half
            types computed in float). Non-square masks are scaled by
            (Mh + 2) / Mh vertically and (Mw + 2) / Mw horizontally
            (torchvision uses the width's factor for both; square masks are
            identical).
        boxes: (N, 4) boxes ``x1, y1, x2, y2`` in image pixels, same dtype
            and device as the masks. A box with a NaN or infinite coordinate
            pastes nothing; coordinates beyond +-2^40 after the enlargement
            are clamped there.
        image_size: ``(H, W)`` of the image, ints in [0, 65536] (the bound
            on one call's memory; the output has N * H * W elements).
        threshold: if given (a finite number), return the boolean masks
            ``pasted > threshold`` instead, computed in the same pass without
            the float planes; the comparison is made in the masks' dtype, like
            ``paste_masks(masks, boxes, size) > threshold``.
        mode: ``"bilinear"`` (the default, torchvision's) or ``"bicubic"``.

    Returns:
        (N, H, W) pasted masks in the masks' dtype, or bool with a threshold;
        the framework and device of the inputs (numpy for CPU DLPack inputs,
        a torch tensor for GPU ones).
    """
    if is_scripting():
        return torch.ops.detcore.paste_masks(masks, boxes, [image_size[0], image_size[1]], threshold, mode)
    node = fx_node(paste_masks, masks, boxes, image_size, threshold, mode)
    if node is not None:
        return node
    kind, (masks, boxes) = prepare(masks=masks, boxes=boxes)
    if kind == TORCH_KIND:
        height, width = _image_size(image_size)
        return torch.ops.detcore.paste_masks(masks, boxes, [height, width], _threshold(threshold), _mode(mode))
    return _paste_masks(NUMPY, masks, boxes, image_size, threshold, mode)


if torch is not None:

    @torch.library.custom_op("detcore::paste_masks", mutates_args=())
    def _paste_masks_op(
        masks: torch.Tensor, boxes: torch.Tensor, image_size: Sequence[int], threshold: Optional[float],
        mode: str = "bilinear",
    ) -> torch.Tensor:
        return _paste_masks(TORCH, masks.contiguous(), boxes.contiguous(), image_size, threshold, mode)

    @_paste_masks_op.register_fake
    def _(masks, boxes, image_size, threshold, mode="bilinear"):
        masks = _mask_planes(masks)
        check_boxes(boxes, "boxes")
        _mode(mode)
        height, width = image_size
        dtype = masks.dtype if threshold is None else torch.bool
        return masks.new_empty((masks.shape[0], height, width), dtype=dtype)

    # A leaf node for torch.fx when called through this module's globals.
    torch.fx.wrap("paste_masks")
