"""RoIs in the two layouts torchvision accepts: a (K, 5) array of
``[batch_index, x1, y1, x2, y2]``, or a list with one (Ki, 4) box array per
image (image i's boxes get batch index i)."""

from __future__ import annotations

import numpy as np

from ._interop import DLPACK_KIND, TORCH_KIND, check_boxes, kind_of, to_numpy, torch


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
