"""Datasets named on the command line.

A dataset spec is one of

* ``synthetic`` - the built-in shapes dataset, made under ``<cache>/synthetic``;
  ``synthetic:N`` makes N training images, ``synthetic:N:M`` also M validation images;
* ``synthetic-hard[:N[:M]]`` - the harder shapes (several scales, thin bars and rings,
  clutter, occlusion; :data:`detcore.data.synthetic.HARD`), made under ``<cache>/synthetic-hard``;
* ``coco:ANNOTATIONS.json:IMAGE_DIR`` - a COCO-format annotation file and its images;
* ``voc:ROOT[:SPLIT][:classes=A,B,...]`` - a VOC folder (split defaults to trainval for
  training, test otherwise); the classes are those of the annotations, sorted, unless
  given (``classes=``, or the ``classes`` argument: a checkpoint's).
"""

from __future__ import annotations

import os
from typing import Optional, Sequence

from .base import DatasetError
from .coco import CocoDetection
from .synthetic import HARD, SyntheticSpec, make_synthetic_dataset
from .voc import VOCDetection


def build_dataset(spec: str, *, train: bool, cache_dir: str, synthetic: SyntheticSpec = None,
                  classes: Optional[Sequence[str]] = None, check_data: bool = False):
    """The dataset of a spec, untransformed. Training datasets drop crowd /
    difficult instances and images without any instance. Every image file must
    exist; ``check_data`` also reads every image's header. ``classes``
    (without the background) fixes the classes of a VOC dataset."""
    dataset = _open(spec, train, cache_dir, synthetic, classes)
    if check_data:
        dataset.check_images(read_headers=True)
    return dataset


def _open(spec, train, cache_dir, synthetic, classes):
    kind, _, rest = spec.partition(":")
    if kind in ("synthetic", "synthetic-hard"):
        if kind == "synthetic-hard":
            synthetic = HARD
        if rest:
            try:
                counts = [int(v) for v in rest.split(":")]
                if len(counts) > 2 or min(counts) < 1:
                    raise ValueError
            except ValueError:
                raise DatasetError(f"dataset spec {spec!r}: expected {kind}[:TRAIN_IMAGES[:VAL_IMAGES]]") from None
            changes = dict(zip(("num_train", "num_val"), counts))
            synthetic = SyntheticSpec(**{**(synthetic.__dict__ if synthetic else {}), **changes})
        paths = make_synthetic_dataset(os.path.join(cache_dir, kind), synthetic or SyntheticSpec())
        ann, images = paths["train" if train else "val"]
        return CocoDetection(ann, images, remove_empty=train, skip_crowd=train)
    if kind == "coco":
        ann, sep, images = rest.rpartition(":")
        if not sep or not ann or not images:
            raise DatasetError(f"dataset spec {spec!r}: expected coco:ANNOTATIONS.json:IMAGE_DIR")
        return CocoDetection(ann, images, remove_empty=train, skip_crowd=train)
    if kind == "voc":
        parts = rest.split(":")
        named = [p for p in parts[1:] if p.startswith("classes=")]
        positional = [p for p in parts[1:] if not p.startswith("classes=")]
        root = parts[0]
        if not root or len(positional) > 1 or len(named) > 1:
            raise DatasetError(f"dataset spec {spec!r}: expected voc:ROOT[:SPLIT][:classes=A,B,...]")
        if named:
            classes = [c.strip() for c in named[0][len("classes="):].split(",") if c.strip()]
            if not classes:
                raise DatasetError(f"dataset spec {spec!r}: classes= names no class")
        split = positional[0] if positional and positional[0] else ("trainval" if train else "test")
        return VOCDetection(root, split, classes=list(classes) if classes else None, use_difficult=not train,
                            remove_empty=train)
    raise DatasetError(f"unknown dataset spec {spec!r}: expected 'synthetic', 'synthetic-hard', 'coco:ANNOTATIONS.json:IMAGE_DIR' "
                       f"or 'voc:ROOT[:SPLIT][:classes=A,B,...]'")
