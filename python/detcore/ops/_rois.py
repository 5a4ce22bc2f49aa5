"""RoIs in the two layouts torchvision accepts: a (K, 5) array of
``[batch_index, x1, y1, x2, y2]``, or a list with one (Ki, 4) box array per
image (image i's boxes get batch index i)."""

from __future__ import annotations

import math
import numbers
from typing import List, Union

import numpy as np

from ._interop import (
    DLPACK_KIND,
    MAX_POOLED_SIZE,
    MAX_SAMPLING_RATIO,
    TORCH_KIND,
    check_boxes,
    check_float,
    check_int,
    check_output_bytes,
    kind_of,
    prepare,
    to_numpy,
    torch,
)
from ._scripting import Array


def as_rois(boxes, name: str = "boxes"):
    """The (K, 5) RoI array for `boxes` in either layout, in the boxes'
    framework (numpy for DLPack inputs). A (K, 5) array is returned as is."""
    if not isinstance(boxes, (list, tuple)):
        if kind_of(**{name: boxes}) == DLPACK_KIND:
            boxes = to_numpy(boxes, name)
        check_boxes(boxes, name, "(K, 5) [batch_index, x1, y1, x2, y2] or a list of (Ki, 4)", width=5)
        return boxes
    if len(boxes) == 0:
        raise ValueError(f"{name}: expected a list with one (Ki, 4) array per image, got an empty list")
    kind = kind_of(**{f"{name}[{i}]": b for i, b in enumerate(boxes)})
    if kind == DLPACK_KIND:
        boxes = [to_numpy(b, f"{name}[{i}]") for i, b in enumerate(boxes)]
    for i, b in enumerate(boxes):
        check_boxes(b, f"{name}[{i}]", "(Ki, 4)")
        if b.dtype != boxes[0].dtype:
            raise TypeError(f"{name}[{i}]: expected the dtype of {name}[0] ({boxes[0].dtype}), got {b.dtype}")
    if kind == TORCH_KIND:
        return torch.cat(
            [torch.cat([torch.full_like(b[:, :1], i), b], dim=1) for i, b in enumerate(boxes)], dim=0
        )
    return np.concatenate([np.concatenate([np.full_like(b[:, :1], i), b], axis=1) for i, b in enumerate(boxes)])


def script_rois(boxes: Union[Array, List[Array]]) -> Array:
    """`as_rois` for TorchScript (torch tensors only); the op checks the shape
    of a (K, 5) tensor."""
    if isinstance(boxes, torch.Tensor):
        return boxes
    if len(boxes) == 0:
        raise ValueError("boxes: expected a list with one (Ki, 4) tensor per image, got an empty list")
    rois: List[torch.Tensor] = []
    for i, b in enumerate(boxes):
        if b.dim() != 2 or b.size(1) != 4:
            raise ValueError("boxes: expected a list of (Ki, 4) tensors, got a tensor of another shape")
        rois.append(torch.cat([torch.full_like(b[:, :1], i), b], dim=1))
    return torch.cat(rois, dim=0)


def prepare_rois(input, boxes):
    """(kind, input, rois) for the RoI pooling ops: `input` and `boxes` in
    one framework as `interop.prepare` gives them, the boxes as (K, 5) RoIs."""
    if isinstance(boxes, (list, tuple)) and len(boxes) > 0:
        kind, (input, *boxes) = prepare(input=input, **{f"boxes[{i}]": b for i, b in enumerate(boxes)})
    elif isinstance(boxes, (list, tuple)):
        kind, (input,) = prepare(input=input)
    else:
        kind, (input, boxes) = prepare(input=input, boxes=boxes)
    return kind, input, as_rois(boxes, "boxes")


def pooled_size(output_size) -> tuple[int, int]:
    """(height, width) from an int or a (height, width) pair (a tuple, list,
    torch.Size or 1-D numpy array), each in [1, MAX_POOLED_SIZE]."""
    if isinstance(output_size, numbers.Integral) and not isinstance(output_size, bool):
        size = (output_size, output_size)
    elif isinstance(output_size, (tuple, list, np.ndarray)) or (torch is not None and isinstance(output_size, torch.Size)):
        if len(output_size) != 2:
            raise ValueError(f"output_size: expected a (height, width) pair, got {len(output_size)} values")
        size = tuple(output_size)
    else:
        raise TypeError(f"output_size: expected an int or a (height, width) pair of ints, got {type(output_size).__name__}")
    return tuple(check_int(s, "output_size", 1, MAX_POOLED_SIZE) for s in size)


def sampling_ratio_arg(sampling_ratio) -> int:
    """RoIAlign's samples per bin per axis: at most MAX_SAMPLING_RATIO; any
    value <= 0 (adaptive) becomes -1."""
    value = check_int(sampling_ratio, "sampling_ratio", maximum=MAX_SAMPLING_RATIO)
    return max(value, -1)


def check_pooled_output(input, rois, pooled_height: int, pooled_width: int) -> None:
    """ValueError naming output_size when the (K, C, height, width) output
    cannot exist (checked before the allocation is tried)."""
    shape = (rois.shape[0], input.shape[1], pooled_height, pooled_width)
    check_output_bytes(shape, input.dtype.itemsize, "output_size")


def spatial_scale_arg(spatial_scale) -> float:
    """The feature-map scale of the RoI coordinates: a finite number > 0."""
    value = check_float(spatial_scale, "spatial_scale")
    if not 0 < value < math.inf:  # not math.isfinite: symbolic under torch.compile
        raise ValueError(f"spatial_scale: expected a finite number > 0, got {value}")
    return value
