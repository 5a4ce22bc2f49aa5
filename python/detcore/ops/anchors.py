"""Anchors of a feature pyramid, with the values and order of torchvision's
``AnchorGenerator``, so torchvision checkpoints load and match.

The result is numpy by default. A torch user gets torch tensors by naming a
torch dtype or a device, as with torch's factory functions::

    make_anchors(sizes_hw, strides, sizes, ratios)                      # numpy, float32
    make_anchors(sizes_hw, strides, sizes, ratios, device=x.device)     # torch, float32
    make_anchors(sizes_hw, strides, sizes, ratios, dtype=x.dtype, device=x.device)

The torch path is a ``torch.library`` custom op, so it works under
``torch.compile(fullgraph=True)``.
"""

from __future__ import annotations

import math
import numbers
from typing import List

import numpy as np

from .. import _C
from ._interop import TORCH, check_int, torch
from ._scripting import Array, Device, DType, GridSizes, PerLevel, Strides, fx_node, is_scripting

_NUMPY_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))


def _is_sequence(value) -> bool:
    return isinstance(value, (list, tuple, np.ndarray)) or (torch is not None and isinstance(value, torch.Size))


def _positive_numbers(values, name: str) -> list[float]:
    if not _is_sequence(values):
        raise TypeError(f"{name}: expected a tuple of numbers, got {type(values).__name__}")
    out = []
    for i, v in enumerate(values):
        if isinstance(v, (bool, np.bool_)) or not isinstance(v, numbers.Real):
            raise TypeError(f"{name}[{i}]: expected a number, got {type(v).__name__}")
        if not 0 < v < math.inf:  # comparisons only (also refuse NaN): traceable by torch.compile
            raise ValueError(f"{name}[{i}]: expected a positive finite number, got {v}")
        out.append(float(v))
    if not out:
        raise ValueError(f"{name}: expected at least one number, got an empty sequence")
    return out


def _per_level(values, name: str, num_levels: int) -> list[list[float]]:
    """One tuple per level, or a single flat tuple used for every level."""
    if _is_sequence(values) and len(values) > 0 and all(_is_sequence(v) for v in values):
        if len(values) != num_levels:
            raise ValueError(f"{name}: expected one tuple per feature level ({num_levels}), got {len(values)}")
        return [_positive_numbers(v, f"{name}[{i}]") for i, v in enumerate(values)]
    return [_positive_numbers(values, name)] * num_levels


def _grid_size(value, name: str) -> int:
    if torch is not None and isinstance(value, torch.SymInt):  # traced feature-map sizes
        return value
    return check_int(value, name, minimum=0)


def _feature_sizes(feature_sizes) -> list[tuple[int, int]]:
    if not _is_sequence(feature_sizes):
        raise TypeError(f"feature_sizes: expected a list of (H, W) pairs, got {type(feature_sizes).__name__}")
    out = []
    for i, hw in enumerate(feature_sizes):
        if not _is_sequence(hw) or len(hw) != 2:
            raise ValueError(f"feature_sizes[{i}]: expected an (H, W) pair, got {hw!r}")
        out.append((_grid_size(hw[0], f"feature_sizes[{i}][0]"), _grid_size(hw[1], f"feature_sizes[{i}][1]")))
    return out


def _strides(strides, num_levels: int) -> list[tuple[int, int]]:
    if not _is_sequence(strides):
        raise TypeError(f"strides: expected a list of ints or (stride_h, stride_w) pairs, got {type(strides).__name__}")
    if len(strides) != num_levels:
        raise ValueError(f"strides: expected one stride per feature level ({num_levels}), got {len(strides)}")
    out = []
    for i, s in enumerate(strides):
        if _is_sequence(s):
            if len(s) != 2:
                raise ValueError(f"strides[{i}]: expected an int or a (stride_h, stride_w) pair, got {s!r}")
            out.append((check_int(s[0], f"strides[{i}][0]", 1), check_int(s[1], f"strides[{i}][1]", 1)))
        else:
            stride = check_int(s, f"strides[{i}]", 1)
            out.append((stride, stride))
    return out


def _output_format(dtype, device):
    """(use_torch, dtype, device): torch when `dtype` is a torch dtype or a
    device is named; float32/float64 on the CPU, also float16/bfloat16 on CUDA."""
    if dtype is None:  # np.dtype(None) would be float64
        dtype = np.float32
    use_torch = device is not None or (torch is not None and isinstance(dtype, torch.dtype))
    if not use_torch:
        try:
            dt = np.dtype(dtype)
        except TypeError:
            raise TypeError(f"dtype: expected a floating dtype, got {dtype!r}") from None
        if dt not in _NUMPY_DTYPES:
            raise TypeError(f"dtype: expected float32 or float64 for numpy anchors, got {dt}")
        return False, dt, None
    if torch is None:
        raise TypeError("device: torch tensors were asked for, but PyTorch is not installed")
    if not isinstance(dtype, torch.dtype):
        try:
            dt = np.dtype(dtype)
        except TypeError:
            raise TypeError(f"dtype: expected a floating dtype, got {dtype!r}") from None
        if dt not in _NUMPY_DTYPES:
            raise TypeError(f"dtype: expected a floating dtype, got {dt}")
        dtype = torch.float32 if dt == np.float32 else torch.float64
    device = torch.device("cpu") if device is None else torch.device(device)
    allowed = (torch.float32, torch.float64)
    if device.type == "cuda":
        allowed += (torch.float16, torch.bfloat16)
    if dtype not in allowed:
        raise TypeError(f"dtype: expected one of {', '.join(map(str, allowed))} on {device.type}, got {dtype}")
    return True, dtype, device


def _level_anchors(use_torch, sizes, ratios, height, width, stride_h, stride_w, dtype, device):
    if use_torch:
        return torch.ops.detcore.make_anchors(sizes, ratios, height, width, stride_h, stride_w, dtype, device)
    out = np.empty((height, width, len(sizes) * len(ratios), 4), dtype=dtype)
    _C.make_anchors(sizes, ratios, stride_h, stride_w, out, 0)
    return out.reshape(-1, 4)


def cell_anchors(sizes: List[float], aspect_ratios: List[float], dtype: DType = None, device: Device = None) -> Array:
    """The (A, 4) anchors of one grid cell, centred on (0, 0), as
    ``AnchorGenerator.generate_anchors``.

    Anchor ``r * len(sizes) + s`` (ratio-major) has size ``sizes[s]`` and
    aspect ratio (height / width) ``aspect_ratios[r]``: half-width
    ``size / sqrt(ratio) / 2`` and half-height ``size * sqrt(ratio) / 2``,
    computed in float32 and rounded half to even, whatever the output dtype.

    Args:
        sizes: positive numbers (the square root of each anchor's area).
        aspect_ratios: positive numbers, height / width.
        dtype, device: as for :func:`make_anchors`.
    """
    if is_scripting():
        return torch.ops.detcore.make_anchors(sizes, aspect_ratios, 1, 1, 1, 1,
                                              torch.float32 if dtype is None else dtype,
                                              torch.device("cpu") if device is None else device)
    use_torch, dtype, device = _output_format(dtype, device)
    sizes = _positive_numbers(sizes, "sizes")
    ratios = _positive_numbers(aspect_ratios, "aspect_ratios")
    return _level_anchors(use_torch, sizes, ratios, 1, 1, 1, 1, dtype, device)


def make_anchors(
    feature_sizes: GridSizes, strides: Strides, sizes: PerLevel, aspect_ratios: PerLevel, dtype: DType = None,
    device: Device = None,
) -> List[Array]:
    """The anchors of every feature level, as ``torchvision``'s
    ``AnchorGenerator`` gives them (values and order).

    Level l has ``H * W * A`` anchors, ``A = len(sizes[l]) * len(aspect_ratios[l])``:
    grid locations row-major (y, then x), the A cell anchors of
    :func:`cell_anchors` minor, each shifted by ``(x * stride_w, y * stride_h)``.

    Args:
        feature_sizes: one ``(H, W)`` per level (non-negative ints; 0 gives no
            anchors).
        strides: one positive int or ``(stride_h, stride_w)`` per level. The
            caller passes them: torchvision derives them from the padded image
            size as ``image_size // feature_size`` per dimension.
        sizes: one tuple of positive sizes per level, e.g.
            ``((32,), (64,), (128,), (256,), (512,))`` for an FPN, or a single
            flat tuple used for every level, e.g. ``(128, 256, 512)``. (Unlike
            torchvision, a flat tuple is not split into one size per level.)
        aspect_ratios: one tuple of positive ratios (height / width) per
            level, or a single tuple used for every level, e.g. ``(0.5, 1, 2)``.
        dtype: numpy or torch floating dtype of the result (float32 by
            default or for None; float16 and bfloat16 for CUDA tensors only).
        device: ``None`` for numpy arrays (unless `dtype` is a torch dtype);
            a torch device (or its name) for torch tensors on that device.

    Returns:
        A list with one ``(H * W * A, 4)`` array per level, ``x1, y1, x2, y2``.

    Under TorchScript the result is torch tensors (float32 on the CPU unless
    `dtype` / `device` say otherwise), and the arguments are lists: of
    (H, W) tuples, of ints or of (stride_h, stride_w) tuples, of floats or
    of one list of floats per level.
    """
    if is_scripting():
        return _script_make_anchors(feature_sizes, strides, sizes, aspect_ratios, dtype, device)
    node = fx_node(make_anchors, feature_sizes, strides, sizes, aspect_ratios, dtype, device)
    if node is not None:
        return node
    use_torch, dtype, device = _output_format(dtype, device)
    levels = _feature_sizes(feature_sizes)
    stride_list = _strides(strides, len(levels))
    size_list = _per_level(sizes, "sizes", len(levels))
    ratio_list = _per_level(aspect_ratios, "aspect_ratios", len(levels))
    return [
        _level_anchors(use_torch, s, r, h, w, sh, sw, dtype, device)
        for (h, w), (sh, sw), s, r in zip(levels, stride_list, size_list, ratio_list)
    ]


def _script_make_anchors(feature_sizes: GridSizes, strides: Strides, sizes: PerLevel, aspect_ratios: PerLevel,
                         dtype: DType, device: Device) -> List[Array]:
    """`make_anchors` for TorchScript; the custom op checks the values."""
    levels = len(feature_sizes)
    if isinstance(sizes, List[float]):
        size_list = [sizes for _ in range(levels)]
    else:
        size_list = sizes
    if isinstance(aspect_ratios, List[float]):
        ratio_list = [aspect_ratios for _ in range(levels)]
    else:
        ratio_list = aspect_ratios
    if isinstance(strides, List[int]):
        stride_list = [(s, s) for s in strides]
    else:
        stride_list = strides
    if len(stride_list) != levels or len(size_list) != levels or len(ratio_list) != levels:
        raise ValueError("strides, sizes and aspect_ratios: expected one entry per feature level")
    out_dtype = torch.float32 if dtype is None else dtype
    out_device = torch.device("cpu") if device is None else device
    anchors: List[torch.Tensor] = []
    for i in range(levels):
        anchors.append(torch.ops.detcore.make_anchors(size_list[i], ratio_list[i], feature_sizes[i][0],
                                                      feature_sizes[i][1], stride_list[i][0], stride_list[i][1],
                                                      out_dtype, out_device))
    return anchors


if torch is not None:

    # One level's anchors, as `_C.make_anchors`; the public make_anchors calls it per level.
    @torch.library.custom_op("detcore::make_anchors", mutates_args=())
    def _make_anchors_op(
        sizes: list[float],
        aspect_ratios: list[float],
        height: int,
        width: int,
        stride_h: int,
        stride_w: int,
        dtype: torch.dtype,
        device: torch.device,
    ) -> torch.Tensor:
        # The arguments are checked here too, for TorchScript callers.
        _positive_numbers(sizes, "sizes")
        _positive_numbers(aspect_ratios, "aspect_ratios")
        _output_format(dtype, device)
        height, width = check_int(height, "height", 0), check_int(width, "width", 0)
        stride_h, stride_w = check_int(stride_h, "stride_h", 1), check_int(stride_w, "stride_w", 1)
        out = torch.empty((height, width, len(sizes) * len(aspect_ratios), 4), dtype=dtype, device=device)
        _C.make_anchors(sizes, aspect_ratios, stride_h, stride_w, TORCH.native(out), TORCH.stream(out))
        return out.view(-1, 4)

    @_make_anchors_op.register_fake
    def _(sizes, aspect_ratios, height, width, stride_h, stride_w, dtype, device):
        return torch.empty((height * width * len(sizes) * len(aspect_ratios), 4), dtype=dtype, device=device)

    # A leaf node for torch.fx when called through this module's globals.
    torch.fx.wrap("make_anchors")
