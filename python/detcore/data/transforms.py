"""Training and evaluation transforms on ``(image, target)`` pairs.

Each transform is called as ``t(image, target, generator)``; random ones draw
from ``generator`` (a ``torch.Generator``, or the global RNG when None), so the
training sampler can make every sample's augmentation a function of its seed
(and a resumed run sees the same augmentations as an uninterrupted one).
Targets are never modified in place.
"""

from __future__ import annotations

from typing import Optional, Sequence

import torch
import torch.nn.functional as F


def _rand(generator: Optional[torch.Generator]) -> float:
    return float(torch.rand((), generator=generator))


class Compose:
    def __init__(self, transforms):
        self.transforms = list(transforms)

    def __call__(self, image, target, generator=None):
        for t in self.transforms:
            image, target = t(image, target, generator)
        return image, target

    def __repr__(self) -> str:
        return f"Compose({self.transforms})"


class Resize:
    """Scales the shorter side to ``min_size`` (one picked at random when a
    sequence: multi-scale training) while the longer side stays <= ``max_size``."""

    def __init__(self, min_size, max_size: int):
        self.min_sizes = tuple(min_size) if isinstance(min_size, (list, tuple)) else (min_size,)
        if not self.min_sizes or min(self.min_sizes) <= 0 or max_size <= 0:
            raise ValueError(f"Resize: min_size and max_size must be positive, got {min_size}, {max_size}")
        self.max_size = max_size

    def __call__(self, image, target, generator=None):
        height, width = image.shape[-2:]
        index = int(torch.randint(len(self.min_sizes), (), generator=generator)) if len(self.min_sizes) > 1 else 0
        scale = min(self.min_sizes[index] / min(height, width), self.max_size / max(height, width))
        new_h, new_w = max(1, round(height * scale)), max(1, round(width * scale))
        if (new_h, new_w) == (height, width):
            return image, target
        image = F.interpolate(image[None], size=(new_h, new_w), mode="bilinear", align_corners=False)[0]
        return image, resize_target(target, (height, width), (new_h, new_w))


def resize_target(target: dict, old_size, new_size) -> dict:
    """Boxes, proposals, keypoints and masks of ``target`` moved from ``old_size`` (H, W) to ``new_size``."""
    sy, sx = new_size[0] / old_size[0], new_size[1] / old_size[1]
    target = dict(target)
    for key in ("boxes", "proposals"):
        if key in target:
            target[key] = target[key] * torch.tensor([sx, sy, sx, sy], dtype=target[key].dtype)
    if "keypoints" in target:
        kps = target["keypoints"].clone()
        kps[..., 0] *= sx
        kps[..., 1] *= sy
        target["keypoints"] = kps
    if "masks" in target:
        masks = target["masks"]
        if masks.shape[0]:
            masks = F.interpolate(masks[:, None].float(), size=tuple(new_size), mode="nearest")[:, 0].to(masks.dtype)
        else:
            masks = masks.new_zeros((0, *new_size))
        target["masks"] = masks
    return target


class RandomHorizontalFlip:
    """Flips with probability ``prob``; keypoints take the index given by
    ``keypoint_flip_map`` (left <-> right), as flipping swaps the body sides."""

    def __init__(self, prob: float = 0.5, keypoint_flip_map: Optional[Sequence[int]] = None):
        if not 0.0 <= prob <= 1.0:
            raise ValueError(f"RandomHorizontalFlip: prob must be in [0, 1], got {prob}")
        self.prob = prob
        self.keypoint_flip_map = list(keypoint_flip_map) if keypoint_flip_map is not None else None

    def __call__(self, image, target, generator=None):
        if _rand(generator) >= self.prob:
            return image, target
        return image.flip(-1), hflip_target(target, image.shape[-1], self.keypoint_flip_map)


def hflip_target(target: dict, width: int, keypoint_flip_map=None) -> dict:
    target = dict(target)
    for key in ("boxes", "proposals"):
        if key in target:
            boxes = target[key]
            target[key] = torch.stack([width - boxes[:, 2], boxes[:, 1], width - boxes[:, 0], boxes[:, 3]], 1)
    if "masks" in target:
        target["masks"] = target["masks"].flip(-1)
    if "keypoints" in target:
        kps = target["keypoints"].clone()
        kps[..., 0] = width - kps[..., 0]
        if keypoint_flip_map is not None:
            if len(keypoint_flip_map) != kps.shape[1]:
                raise ValueError(f"keypoint_flip_map has {len(keypoint_flip_map)} entries for {kps.shape[1]} keypoints")
            kps = kps[:, keypoint_flip_map]
        target["keypoints"] = kps
    return target


class ColorJitter:
    """Photometric jitter: brightness, contrast and saturation factors drawn
    uniformly in [1 - x, 1 + x], applied in a random order."""

    def __init__(self, brightness: float = 0.2, contrast: float = 0.2, saturation: float = 0.2):
        for name, value in (("brightness", brightness), ("contrast", contrast), ("saturation", saturation)):
            if not 0.0 <= value < 1.0:
                raise ValueError(f"ColorJitter: {name} must be in [0, 1), got {value}")
        self.brightness, self.contrast, self.saturation = brightness, contrast, saturation

    def __call__(self, image, target, generator=None):
        ops = [(self._brightness, self.brightness), (self._contrast, self.contrast),
               (self._saturation, self.saturation)]
        order = torch.randperm(len(ops), generator=generator).tolist()
        for i in order:
            op, strength = ops[i]
            if strength > 0:
                factor = 1.0 + (2 * _rand(generator) - 1) * strength
                image = op(image, factor)
        return image.clamp(0.0, 1.0), target

    @staticmethod
    def _brightness(image, factor):
        return image * factor

    @staticmethod
    def _contrast(image, factor):
        mean = _grey(image).mean()
        return (image - mean) * factor + mean

    @staticmethod
    def _saturation(image, factor):
        grey = _grey(image)[None]
        return (image - grey) * factor + grey


def _grey(image):
    return 0.299 * image[0] + 0.587 * image[1] + 0.114 * image[2]


def build_transforms(train: bool, *, min_size=None, max_size: int = 1333, flip_prob: float = 0.5,
                     jitter: float = 0.0, keypoint_flip_map=None) -> Optional[Compose]:
    """The standard pipeline: an optional resize, then for training a flip and jitter."""
    transforms = []
    if min_size:
        transforms.append(Resize(min_size if train else (min_size if isinstance(min_size, int) else max(min_size)),
                                 max_size))
    if train and flip_prob > 0:
        transforms.append(RandomHorizontalFlip(flip_prob, keypoint_flip_map))
    if train and jitter > 0:
        transforms.append(ColorJitter(jitter, jitter, jitter))
    return Compose(transforms) if transforms else None
