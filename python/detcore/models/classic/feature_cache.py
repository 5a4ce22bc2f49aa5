"""R-CNN's on-disk feature cache: one ``.npz`` per image with the pool5
features of its proposals and ground-truth boxes.

Only pool5 is stored (as R-CNN does): fc6 / fc7 are recomputed from it by the
fine-tuned fc layers when a stage needs them. Files are written atomically
and skipped when present, so an interrupted extraction resumes where it
stopped and a second run reuses them."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from typing import Iterator, Optional

import numpy as np

MANIFEST = "manifest.json"


@dataclass
class RegionRecord:
    """One image's cached regions: rows are the proposals, then the ground truth."""

    boxes: np.ndarray  # (N, 4) float32
    is_gt: np.ndarray  # (N,) bool
    gt_boxes: np.ndarray  # (G, 4) float32
    gt_labels: np.ndarray  # (G,) int64
    pool5: np.ndarray  # (N, D) float32


class FeatureCache:
    """The cache folder of one run: ``img_XXXXXXX.npz`` per dataset index."""

    def __init__(self, directory: str):
        self.directory = directory

    def path(self, index: int) -> str:
        return os.path.join(self.directory, f"img_{index:07d}.npz")

    def has(self, index: int) -> bool:
        return os.path.isfile(self.path(index))

    def write(self, index: int, record: RegionRecord) -> int:
        """Writes one image's record; returns the bytes written."""
        os.makedirs(self.directory, exist_ok=True)
        path = self.path(index)
        tmp = path + ".tmp.npz"
        np.savez(tmp, boxes=record.boxes, is_gt=record.is_gt, gt_boxes=record.gt_boxes,
                 gt_labels=record.gt_labels, pool5=record.pool5)
        os.replace(tmp, path)
        return os.path.getsize(path)

    def read(self, index: int) -> RegionRecord:
        path = self.path(index)
        try:
            with np.load(path) as f:
                return RegionRecord(f["boxes"], f["is_gt"], f["gt_boxes"], f["gt_labels"], f["pool5"])
        except (OSError, KeyError, ValueError) as e:
            raise ValueError(f"feature cache {path}: unreadable ({e}); delete it to recompute") from None

    def records(self, count: int) -> Iterator[RegionRecord]:
        for index in range(count):
            yield self.read(index)

    def total_bytes(self, count: int) -> int:
        return sum(os.path.getsize(self.path(i)) for i in range(count) if self.has(i))

    def manifest(self) -> Optional[dict]:
        path = os.path.join(self.directory, MANIFEST)
        if not os.path.isfile(path):
            return None
        with open(path) as f:
            return json.load(f)

    def write_manifest(self, payload: dict) -> None:
        os.makedirs(self.directory, exist_ok=True)
        path = os.path.join(self.directory, MANIFEST)
        with open(path + ".tmp", "w") as f:
            json.dump(payload, f, indent=2)
        os.replace(path + ".tmp", path)
