"""The cheap box utilities of torchvision.ops: box_area, box_convert,
clip_boxes_to_image, remove_small_boxes, masks_to_boxes.

They are a few vectorized array operations each, so they stay in Python
(torch ops for tensors, with autograd where torchvision has it; numpy for
numpy and CPU DLPack arrays), with torchvision's names, signatures, dtype
rules and results. Only the axis-aligned formats ("xyxy", "xywh", "cxcywh")
are supported; torchvision's rotated formats raise ValueError here.
"""

from __future__ import annotations

from typing import List, Tuple

import numpy as np

from ._interop import TORCH_KIND, check_boxes, check_float, check_int, prepare, torch
from ._scripting import Array, fx_node, is_scripting

_FORMATS = ("xyxy", "xywh", "cxcywh")


def _check_format(fmt, name: str) -> None:
    if not isinstance(fmt, str) or fmt not in _FORMATS:
        raise ValueError(f"{name}: expected one of 'xyxy', 'xywh', 'cxcywh', got {fmt!r}")


def _check_last(boxes, name: str) -> None:
    if boxes.ndim < 1 or boxes.shape[-1] != 4:
        raise ValueError(f"{name}: expected an array of shape (..., 4), got shape {tuple(boxes.shape)}")
    dtype = str(boxes.dtype).removeprefix("torch.")
    if "complex" in dtype or dtype == "bool":  # numpy and torch fail differently on them: refused alike
        raise TypeError(f"{name}: expected a float or integer dtype, got {dtype}")


def _upcast_numpy(a: np.ndarray) -> np.ndarray:
    """torchvision's _upcast: float16 -> float32, small integers -> int32."""
    if a.dtype.kind == "f":
        return a if a.dtype in (np.float32, np.float64) else a.astype(np.float32)
    return a if a.dtype in (np.int32, np.int64) else a.astype(np.int32)


def _upcast_torch(t: torch.Tensor) -> torch.Tensor:
    if t.is_floating_point():
        return t if t.dtype in (torch.float32, torch.float64) else t.float()
    return t if t.dtype in (torch.int32, torch.int64) else t.int()


# --- box_area ---------------------------------------------------------------


def _box_area_torch(boxes: torch.Tensor, fmt: str) -> torch.Tensor:
    boxes = _upcast_torch(boxes)
    if fmt == "xyxy":
        return (boxes[..., 2] - boxes[..., 0]) * (boxes[..., 3] - boxes[..., 1])
    return boxes[..., 2] * boxes[..., 3]


def box_area(boxes: Array, fmt: str = "xyxy") -> Array:
    """Areas of boxes (..., 4), as ``torchvision.ops.box_area``.

    ``fmt`` is "xyxy" (``(x2 - x1) * (y2 - y1)``, negative for an inverted
    box), "xywh" or "cxcywh" (``w * h``). float16 is computed in float32 and
    small integer types in int32, as torchvision does.
    """
    if is_scripting():
        return _box_area_torch(boxes, fmt)
    node = fx_node(box_area, boxes, fmt)
    if node is not None:
        return node
    _check_format(fmt, "fmt")
    kind, (boxes,) = prepare(boxes=boxes)
    _check_last(boxes, "boxes")
    if kind == TORCH_KIND:
        return _box_area_torch(boxes, fmt)
    b = _upcast_numpy(boxes)
    if fmt == "xyxy":
        return (b[..., 2] - b[..., 0]) * (b[..., 3] - b[..., 1])
    return b[..., 2] * b[..., 3]


# --- box_convert -------------------------------------------------------------


def _convert_columns(c: List[torch.Tensor], in_fmt: str, out_fmt: str) -> List[torch.Tensor]:
    """The four coordinate columns converted (any array type with + - * /)."""
    if in_fmt == "xywh":  # to xyxy
        c = [c[0], c[1], c[0] + c[2], c[1] + c[3]]
    elif in_fmt == "cxcywh":
        c = [c[0] - 0.5 * c[2], c[1] - 0.5 * c[3], c[0] + 0.5 * c[2], c[1] + 0.5 * c[3]]
    if out_fmt == "xywh":
        c = [c[0], c[1], c[2] - c[0], c[3] - c[1]]
    elif out_fmt == "cxcywh":
        c = [(c[0] + c[2]) / 2, (c[1] + c[3]) / 2, c[2] - c[0], c[3] - c[1]]
    return c


def _box_convert_torch(boxes: torch.Tensor, in_fmt: str, out_fmt: str) -> torch.Tensor:
    if in_fmt == out_fmt:
        return boxes.clone()
    c = boxes.unbind(-1)
    return torch.stack(_convert_columns([c[0], c[1], c[2], c[3]], in_fmt, out_fmt), dim=-1)


def box_convert(boxes: Array, in_fmt: str, out_fmt: str) -> Array:
    """Boxes (..., 4) from ``in_fmt`` to ``out_fmt``, as
    ``torchvision.ops.box_convert``: "xyxy" (corners), "xywh" (top-left
    corner, width, height) or "cxcywh" (centre, width, height). The same
    format returns a copy; integer boxes stay integer unless a centre format
    halves them (float32, as torch's default dtype). Bool and complex boxes
    are refused. (torchvision's rotated formats are not supported.)
    """
    if is_scripting():
        return _box_convert_torch(boxes, in_fmt, out_fmt)
    node = fx_node(box_convert, boxes, in_fmt, out_fmt)
    if node is not None:
        return node
    _check_format(in_fmt, "in_fmt")
    _check_format(out_fmt, "out_fmt")
    kind, (boxes,) = prepare(boxes=boxes)
    _check_last(boxes, "boxes")
    if kind == TORCH_KIND:
        return _box_convert_torch(boxes, in_fmt, out_fmt)
    if in_fmt == out_fmt:
        return boxes.copy()
    out = np.stack(_convert_columns([boxes[..., k] for k in range(4)], in_fmt, out_fmt), axis=-1)
    if boxes.dtype.kind in "iu" and out.dtype.kind == "f":  # halves of integers: float32, as torch's default dtype
        out = out.astype(np.float32)
    return out


# --- clip_boxes_to_image -----------------------------------------------------


def _check_size(size) -> Tuple[int, int]:
    if not isinstance(size, (tuple, list)) or len(size) != 2:
        raise TypeError(f"size: expected a (height, width) pair, got {size!r}")
    return check_int(size[0], "size", 0), check_int(size[1], "size", 0)


def _clip_torch(boxes: torch.Tensor, size: List[int]) -> torch.Tensor:
    height, width = size[0], size[1]
    x = boxes[..., 0::2].clamp(min=0, max=width)
    y = boxes[..., 1::2].clamp(min=0, max=height)
    return torch.stack((x, y), dim=boxes.dim()).reshape(boxes.shape)


def clip_boxes_to_image(boxes: Array, size: List[int]) -> Array:
    """Boxes (..., 4) ``x1, y1, x2, y2`` clipped to an image of
    ``size = (height, width)``: x into ``[0, width]``, y into
    ``[0, height]``, as ``torchvision.ops.clip_boxes_to_image`` (NaN stays NaN).
    """
    if is_scripting():
        return _clip_torch(boxes, size)
    node = fx_node(clip_boxes_to_image, boxes, size)
    if node is not None:
        return node
    height, width = _check_size(size)
    kind, (boxes,) = prepare(boxes=boxes)
    _check_last(boxes, "boxes")
    if kind == TORCH_KIND:
        return _clip_torch(boxes, [height, width])
    out = boxes.copy()
    out[..., 0::2] = np.clip(boxes[..., 0::2], 0, width)
    out[..., 1::2] = np.clip(boxes[..., 1::2], 0, height)
    return out


# --- remove_small_boxes ------------------------------------------------------


def _remove_small_torch(boxes: torch.Tensor, min_size: float) -> torch.Tensor:
    ws, hs = boxes[..., 2] - boxes[..., 0], boxes[..., 3] - boxes[..., 1]
    return torch.where((ws >= min_size) & (hs >= min_size))[0]


def remove_small_boxes(boxes: Array, min_size: float) -> Array:
    """int64 indices of the boxes (N, 4) whose width and height are both
    ``>= min_size``, as ``torchvision.ops.remove_small_boxes`` (boxes with a
    NaN side are removed)."""
    if is_scripting():
        return _remove_small_torch(boxes, min_size)
    node = fx_node(remove_small_boxes, boxes, min_size)
    if node is not None:
        return node
    min_size = check_float(min_size, "min_size")
    kind, (boxes,) = prepare(boxes=boxes)
    _check_last(boxes, "boxes")
    check_boxes(boxes, "boxes")  # (N, 4): indices of a 0-d condition mean nothing
    if kind == TORCH_KIND:
        return _remove_small_torch(boxes, min_size)
    ws, hs = boxes[..., 2] - boxes[..., 0], boxes[..., 3] - boxes[..., 1]
    return np.nonzero((ws >= min_size) & (hs >= min_size))[0].astype(np.int64)


# --- masks_to_boxes ----------------------------------------------------------


def _masks_to_boxes_torch(masks: torch.Tensor) -> torch.Tensor:
    if masks.numel() == 0:
        return torch.zeros((0, 4), device=masks.device, dtype=torch.float)
    h, w = masks.shape[-2], masks.shape[-1]
    masks_bool = masks != 0
    rows = torch.any(masks_bool, dim=2).float()
    cols = torch.any(masks_bool, dim=1).float()
    empty = rows.sum(dim=1) == 0
    y1 = rows.argmax(dim=1)
    x1 = cols.argmax(dim=1)
    y2 = (h - 1) - rows.flip(dims=[1]).argmax(dim=1)
    x2 = (w - 1) - cols.flip(dims=[1]).argmax(dim=1)
    boxes = torch.stack([x1, y1, x2, y2], dim=1).float()
    boxes[empty] = 0
    return boxes


def masks_to_boxes(masks: Array) -> Array:
    """float32 boxes (N, 4) ``x1, y1, x2, y2`` around the nonzero pixels of
    masks (N, H, W), as ``torchvision.ops.masks_to_boxes``: inclusive pixel
    indices (a single pixel gives x1 == x2), ``[0, 0, 0, 0]`` for an empty
    mask."""
    if is_scripting():
        return _masks_to_boxes_torch(masks)
    node = fx_node(masks_to_boxes, masks)
    if node is not None:
        return node
    kind, (masks,) = prepare(masks=masks)
    if masks.ndim != 3:
        raise ValueError(f"masks: expected a 3-D array of shape (N, H, W), got shape {tuple(masks.shape)}")
    if kind == TORCH_KIND:
        return _masks_to_boxes_torch(masks)
    if masks.size == 0:
        return np.zeros((0, 4), np.float32)
    h, w = masks.shape[1:]
    m = masks.astype(bool)
    rows, cols = m.any(axis=2), m.any(axis=1)
    boxes = np.stack(
        [
            cols.argmax(axis=1),
            rows.argmax(axis=1),
            (w - 1) - cols[:, ::-1].argmax(axis=1),
            (h - 1) - rows[:, ::-1].argmax(axis=1),
        ],
        axis=1,
    ).astype(np.float32)
    boxes[~rows.any(axis=1)] = 0
    return boxes


if torch is not None:
    for _name in ("box_area", "box_convert", "clip_boxes_to_image", "remove_small_boxes", "masks_to_boxes"):
        torch.fx.wrap(_name)
