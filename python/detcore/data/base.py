"""What the datasets share: the error type, image loading and the target layout.

A dataset item is ``(image, target)``: ``image`` a float32 (3, H, W) tensor in
[0, 1], ``target`` a dict with

* ``boxes``  (N, 4) float32, x1 y1 x2 y2 in absolute pixels
* ``labels`` (N,) int64, 1..num_classes-1 (0 is the background)
* ``masks``  (N, H, W) uint8 (when the dataset has masks)
* ``keypoints`` (N, K, 3) float32 x, y, visibility (when it has keypoints)
* ``iscrowd`` (N,) int64, ``area`` (N,) float32, ``image_id`` int,
  ``orig_size`` (H, W) of the file, and for VOC ``difficult`` (N,) bool;
* with a proposal source (:func:`detcore.proposals.attach_proposals`):
  ``proposals`` (P, 4) float32 in the same pixels as ``boxes`` (the transforms
  move them with the image) and, when the source has scores, ``proposal_scores`` (P,).
"""

from __future__ import annotations

import os
from typing import List, Sequence

import numpy as np
import torch


class DatasetError(ValueError):
    """A dataset that cannot be read: a missing path or a malformed annotation file."""


def load_image(path: str) -> torch.Tensor:
    from PIL import Image

    if not os.path.isfile(path):
        raise DatasetError(f"image file not found: {path}")
    try:
        with Image.open(path) as img:
            pixels = np.asarray(img.convert("RGB"), dtype=np.uint8)
    except OSError as e:
        raise DatasetError(f"cannot read image {path}: {e}") from e
    return torch.from_numpy(pixels.copy()).permute(2, 0, 1).float().div_(255.0)


def require_dir(path: str, what: str) -> None:
    if not os.path.isdir(path):
        raise DatasetError(f"{what} not found or not a folder: {path}")


def require_file(path: str, what: str) -> None:
    if not os.path.isfile(path):
        raise DatasetError(f"{what} not found: {path}")


def keypoint_flip_indices(names: Sequence[str]) -> List[int]:
    """For keypoint names, the index each one takes after a horizontal flip:
    a name with ``left`` swaps with the same name with ``right``."""
    index = {name: i for i, name in enumerate(names)}
    flip = []
    for i, name in enumerate(names):
        if "left" in name:
            other = name.replace("left", "right")
        elif "right" in name:
            other = name.replace("right", "left")
        else:
            other = name
        flip.append(index.get(other, i))
    return flip


class DetectionDataset(torch.utils.data.Dataset):
    """Base of the datasets: class names, aspect ratios and a transform hook.

    Subclasses fill ``class_names`` (index 0 is ``__background__``),
    ``keypoint_names`` and ``image_infos`` (dicts with ``height`` and
    ``width``) and implement ``load(index) -> (image, target)``.
    """

    class_names: List[str]
    keypoint_names: List[str]
    image_infos: List[dict]
    proposal_source = None  # set by detcore.proposals.attach_proposals

    def __init__(self, transforms=None):
        self.transforms = transforms

    def __len__(self) -> int:
        return len(self.image_infos)

    @property
    def num_classes(self) -> int:
        """Including the background."""
        return len(self.class_names)

    def aspect_ratios(self) -> List[float]:
        """width / height of every image, from the annotations (no image read)."""
        return [info["width"] / info["height"] for info in self.image_infos]

    def keypoint_flip_map(self) -> List[int]:
        return keypoint_flip_indices(self.keypoint_names)

    def load(self, index: int):
        raise NotImplementedError

    def load_target(self, index: int) -> dict:
        """The target alone; subclasses that can skip reading the image do."""
        return self.load(index)[1]

    def image_path(self, index: int) -> str:
        """The image file of item ``index`` (for per-file proposals)."""
        raise NotImplementedError(f"{type(self).__name__} does not say where its image files are")

    def proposal_id(self, index: int):
        """The id proposal files know image ``index`` by."""
        return self.image_infos[index]["id"]

    def __getitem__(self, index: int):
        if not -len(self) <= index < len(self):
            raise IndexError(f"index {index} out of range for a dataset of {len(self)} images")
        index %= len(self)
        image, target = self.load(index)
        if self.proposal_source is not None:
            boxes, scores = self.proposal_source.get(self, index)
            target = dict(target, proposals=torch.from_numpy(np.array(boxes, dtype=np.float32).reshape(-1, 4)))
            if scores is not None:
                target["proposal_scores"] = torch.from_numpy(np.array(scores, dtype=np.float32).reshape(-1))
        if self.transforms is not None:
            image, target = self.transforms(image, target, None)
        return image, target
