"""Checks of the detectors' inputs: a ValueError naming the image index and
the field, before anything is computed."""

from __future__ import annotations

import torch


def check_images(images) -> None:
    if not isinstance(images, (list, tuple)) or len(images) == 0:
        raise ValueError(f"images: expected a non-empty list of 3xHxW float tensors, got {type(images).__name__}")
    for i, img in enumerate(images):
        if not isinstance(img, torch.Tensor):
            raise ValueError(f"images[{i}]: expected a 3xHxW float tensor, got {type(img).__name__}")
        if img.dim() != 3 or img.shape[0] != 3 or img.shape[1] == 0 or img.shape[2] == 0:
            raise ValueError(f"images[{i}]: expected shape 3xHxW, got {tuple(img.shape)}")
        if not img.is_floating_point():
            raise ValueError(f"images[{i}]: expected a float tensor, got {img.dtype}")


def check_targets(
    targets, num_images: int, num_classes: int, need_masks: bool = False, need_keypoints: bool = False
) -> None:
    if targets is None:
        raise ValueError("targets: required in training mode")
    if len(targets) != num_images:
        raise ValueError(f"targets: expected one dict per image ({num_images}), got {len(targets)}")
    for i, t in enumerate(targets):
        if not isinstance(t, dict):
            raise ValueError(f"targets[{i}]: expected a dict, got {type(t).__name__}")
        for key in ["boxes", "labels"] + (["masks"] if need_masks else []) + (["keypoints"] if need_keypoints else []):
            if key not in t:
                raise ValueError(f"targets[{i}]['{key}']: missing")
        boxes, labels = t["boxes"], t["labels"]
        if boxes.dim() != 2 or boxes.shape[-1] != 4:
            raise ValueError(f"targets[{i}]['boxes']: expected shape (N, 4), got {tuple(boxes.shape)}")
        if not boxes.is_floating_point():
            raise ValueError(f"targets[{i}]['boxes']: expected a float tensor, got {boxes.dtype}")
        if not torch.isfinite(boxes).all():
            raise ValueError(f"targets[{i}]['boxes']: expected finite coordinates")
        # zero-size boxes too: their regression targets would be log(0)
        bad = torch.where((boxes[:, 2] <= boxes[:, 0]) | (boxes[:, 3] <= boxes[:, 1]))[0]
        if bad.numel():
            raise ValueError(
                f"targets[{i}]['boxes']: expected x2 > x1 and y2 > y1, box {int(bad[0])} is {boxes[bad[0]].tolist()}"
            )
        n = boxes.shape[0]
        if labels.shape != (n,):
            raise ValueError(f"targets[{i}]['labels']: expected shape ({n},) to match the boxes, got {tuple(labels.shape)}")
        if labels.dtype != torch.int64:
            raise ValueError(f"targets[{i}]['labels']: expected int64, got {labels.dtype}")
        if n and (labels.min() < 1 or labels.max() >= num_classes):
            raise ValueError(
                f"targets[{i}]['labels']: expected values in [1, {num_classes - 1}] (0 is background), "
                f"got [{int(labels.min())}, {int(labels.max())}]"
            )
        if need_masks:
            m = t["masks"]
            if m.dim() != 3 or m.shape[0] != n:
                raise ValueError(f"targets[{i}]['masks']: expected shape ({n}, H, W) to match the boxes, got {tuple(m.shape)}")
        if need_keypoints:
            k = t["keypoints"]
            if k.dim() != 3 or k.shape[0] != n or k.shape[2] != 3:
                raise ValueError(
                    f"targets[{i}]['keypoints']: expected shape ({n}, K, 3) to match the boxes, got {tuple(k.shape)}"
                )
