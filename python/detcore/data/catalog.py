"""Datasets named on the command line.

A dataset spec is one of

* ``synthetic`` - the built-in shapes dataset, made under ``<cache>/synthetic``;
  ``synthetic:N`` makes N training images, ``synthetic:N:M`` also M validation images;
* ``coco:ANNOTATIONS.json:IMAGE_DIR`` - a COCO-format annotation file and its images;
* ``voc:ROOT[:SPLIT]`` - a VOC folder (split defaults to trainval for training, test otherwise).
"""

from __future__ import annotations

import os

from .base import DatasetError
from .coco import CocoDetection
from .synthetic import SyntheticSpec, make_synthetic_dataset
from .voc import VOCDetection


def build_dataset(spec: str, *, train: bool, cache_dir: str, synthetic: SyntheticSpec = None):
    """The dataset of a spec, untransformed. Training datasets drop crowd /
    difficult instances and images without any instance."""
    kind, _, rest = spec.partition(":")
    if kind == "synthetic":
        if rest:
            try:
                counts = [int(v) for v in rest.split(":")]
                if len(counts) > 2 or min(counts) < 1:
                    raise ValueError
            except ValueError:
                raise DatasetError(f"dataset spec {spec!r}: expected synthetic[:TRAIN_IMAGES[:VAL_IMAGES]]") from None
            changes = dict(zip(("num_train", "num_val"), counts))
            synthetic = SyntheticSpec(**{**(synthetic.__dict__ if synthetic else {}), **changes})
        paths = make_synthetic_dataset(os.path.join(cache_dir, "synthetic"), synthetic or SyntheticSpec())
        ann, images = paths["train" if train else "val"]
        return CocoDetection(ann, images, remove_empty=train, skip_crowd=train)
    if kind == "coco":
        ann, sep, images = rest.rpartition(":")
        if not sep or not ann or not images:
            raise DatasetError(f"dataset spec {spec!r}: expected coco:ANNOTATIONS.json:IMAGE_DIR")
        return CocoDetection(ann, images, remove_empty=train, skip_crowd=train)
    if kind == "voc":
        root, _, split = rest.partition(":")
        if not root:
            raise DatasetError(f"dataset spec {spec!r}: expected voc:ROOT[:SPLIT]")
        return VOCDetection(root, split or ("trainval" if train else "test"), use_difficult=not train,
                            remove_empty=train)
    raise DatasetError(f"unknown dataset spec {spec!r}: expected 'synthetic', 'coco:ANNOTATIONS.json:IMAGE_DIR' "
                       f"or 'voc:ROOT[:SPLIT]'")
