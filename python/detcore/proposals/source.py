"""Proposal sources: where a dataset's proposals come from.

A source spec (``--proposals``) is ``selective_search[:fast|quality[:MAX_BOXES]]``
(computed per image file, cached on disk) or the path of a proposal file
(``.pkl`` detectron2 / ``.npz`` detcore, see :mod:`detcore.proposals.files`).
:func:`attach_proposals` checks that the source covers the dataset and sets it
on the dataset, whose items then carry ``target["proposals"]`` ((P, 4) float32
in the image's pixels, moved by the transforms like the boxes) and, when the
source has scores, ``target["proposal_scores"]`` (P,).

A dataset serves proposals through ``image_path(index)`` (the image file) and
``proposal_id(index)`` (the id proposal files know it by: the COCO image id,
the VOC file stem).
"""

from __future__ import annotations

import os
from typing import Callable, Optional, Tuple

import numpy as np

from .cache import ProposalCache
from .files import ProposalError, ProposalSet, read_proposals
from .selective import (DEFAULT_MAX_BOXES, STRATEGIES, check_settings, clip_to_image, import_cv2,
                               selective_search)

SELECTIVE_SEARCH = "selective_search"
SPEC_HELP = "selective_search[:fast|quality[:MAX_BOXES]] or a proposal file (.pkl detectron2, .npz detcore)"


def read_rgb(path: str) -> np.ndarray:
    """An image file as (H, W, 3) uint8 RGB."""
    from PIL import Image

    try:
        with Image.open(path) as img:
            return np.asarray(img.convert("RGB"), dtype=np.uint8)
    except OSError as e:
        raise ProposalError(f"cannot read image {path}: {e}") from e


class SelectiveSearchSource:
    """Selective search per image file, through a :class:`ProposalCache`."""

    def __init__(self, strategy: str = "fast", max_boxes: int = DEFAULT_MAX_BOXES, cache_dir: Optional[str] = None):
        check_settings(strategy, max_boxes)
        cv2 = import_cv2()  # fail now, with the install hint, rather than in a data-loader worker
        self.strategy, self.max_boxes = strategy, max_boxes
        self.cache = ProposalCache(f"selective_search-{strategy}-{max_boxes}-opencv{cv2.__version__}", cache_dir)

    def __repr__(self) -> str:
        return f"{SELECTIVE_SEARCH}:{self.strategy}:{self.max_boxes}"

    def boxes_for_file(self, path: str) -> np.ndarray:
        return self.cache.get(path, lambda: selective_search(read_rgb(path), self.strategy, self.max_boxes))

    def check(self, dataset) -> None:
        for index in range(len(dataset)):
            path = dataset.image_path(index)
            if not os.path.isfile(path):
                raise ProposalError(f"selective search: image file not found: {path}")

    def get(self, dataset, index: int) -> Tuple[np.ndarray, Optional[np.ndarray]]:
        return self.boxes_for_file(dataset.image_path(index)), None

    def precompute(self, dataset, log: Optional[Callable[[str], None]] = None, limit: Optional[int] = None,
                   workers: int = 1) -> None:
        """Fills the cache for every image, or the first ``limit`` (once; later
        runs read it), in ``workers`` processes."""
        count = len(dataset) if limit is None else min(limit, len(dataset))
        paths = [dataset.image_path(i) for i in range(count)]
        missing = [p for p in paths if not os.path.isfile(self.cache.path_for(p))]
        self.cache.hits += count - len(missing)
        if workers > 1 and len(missing) > 1:
            from concurrent.futures import ProcessPoolExecutor

            with ProcessPoolExecutor(min(workers, len(missing))) as pool:
                for done, _ in enumerate(pool.map(self._fill, missing, chunksize=4), 1):
                    _progress(log, done, len(missing))
            self.cache.misses += len(missing)
        else:
            for done, path in enumerate(missing, 1):
                self.boxes_for_file(path)
                _progress(log, done, len(missing))

    def _fill(self, path: str) -> None:
        self.boxes_for_file(path)  # in a worker process: the boxes stay in the cache


def _progress(log, done: int, total: int) -> None:
    if log is not None and done % 100 == 0:
        log(f"selective search: {done}/{total} images")


class FileSource:
    """Proposals read from a file, looked up by ``dataset.proposal_id(index)``."""

    def __init__(self, path: str, proposals: Optional[ProposalSet] = None):
        self.path = path
        self.proposals = proposals if proposals is not None else read_proposals(path)

    def __repr__(self) -> str:
        return self.path

    def check(self, dataset) -> None:
        ids = [dataset.proposal_id(i) for i in range(len(dataset))]
        self.proposals.check_covers(ids, [info.get("file_name") for info in dataset.image_infos])

    def get(self, dataset, index: int) -> Tuple[np.ndarray, Optional[np.ndarray]]:
        info = dataset.image_infos[index]
        name = f" ({info['file_name']})" if info.get("file_name") else ""
        boxes, scores = self.proposals.get(dataset.proposal_id(index), name)
        return _inside_image(boxes, scores, info["height"], info["width"])


def _inside_image(boxes, scores, height, width):
    """Clipped to the image; empty and NaN boxes dropped (with their scores)."""
    boxes, keep = clip_to_image(boxes, height, width)
    return boxes, (None if scores is None else scores[keep])


def parse_source(spec: str, cache_dir: Optional[str] = None):
    """A source from its spec (see the module docstring)."""
    if not isinstance(spec, str) or not spec:
        raise ValueError(f"proposals: expected {SPEC_HELP}, got {spec!r}")
    kind, _, rest = spec.partition(":")
    if kind == SELECTIVE_SEARCH:
        strategy, _, count = rest.partition(":")
        strategy = strategy or "fast"
        if strategy not in STRATEGIES:
            raise ValueError(f"proposals {spec!r}: the strategy must be one of {STRATEGIES}")
        try:
            max_boxes = int(count) if count else DEFAULT_MAX_BOXES
        except ValueError:
            raise ValueError(f"proposals {spec!r}: MAX_BOXES must be an int, got {count!r}") from None
        if max_boxes <= 0:
            raise ValueError(f"proposals {spec!r}: MAX_BOXES must be positive, got {max_boxes}")
        return SelectiveSearchSource(strategy, max_boxes, cache_dir)
    if not os.path.isfile(spec):
        raise FileNotFoundError(f"proposal file not found: {spec} (proposals are {SPEC_HELP})")
    return FileSource(spec)


def attach_proposals(dataset, source, cache_dir: Optional[str] = None):
    """Sets ``source`` (a spec or a source object) on ``dataset`` after checking
    it covers every image; returns the source."""
    if isinstance(source, str):
        source = parse_source(source, cache_dir)
    source.check(dataset)
    dataset.proposal_source = source
    return source
