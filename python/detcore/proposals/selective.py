"""Selective search (Uijlings et al., IJCV 2013) through OpenCV's contrib module,
the proposals R-CNN, SPP-net and Fast R-CNN were trained and tested on.

``strategy="fast"`` and ``"quality"`` are OpenCV's ``switchToSelectiveSearchFast``
/ ``...Quality`` (the paper's "fast" and "quality" modes; R-CNN used "fast").
OpenCV ranks the regions of its hierarchies by ``level * rand()`` with the C
library's ``rand``; the set of boxes is a function of the image, but their order
is not unless that generator is seeded, so it is seeded before every call. Where
the C library cannot be reached, the ranking is redone with a seeded numpy
generator (``area rank * uniform``: small, early-merged regions first, as the
level-weighted rank does), so the result is deterministic everywhere.
"""

from __future__ import annotations

import ctypes
import sys
import numpy as np

STRATEGIES = ("fast", "quality")
DEFAULT_MAX_BOXES = 2000
SEED = 0


def import_cv2():
    """OpenCV with its contrib modules, or an ImportError that says how to get it."""
    try:
        import cv2
    except ImportError as e:
        raise ImportError("selective search needs OpenCV's contrib modules: pip install 'detcore[classic]' "
                          f"(opencv-contrib-python-headless); {e}") from e
    if not hasattr(cv2, "ximgproc"):
        raise ImportError("selective search needs cv2.ximgproc, which this OpenCV lacks (plain opencv-python?): "
                          "pip install 'detcore[classic]' (opencv-contrib-python-headless)")
    return cv2


def _c_rand_seeder():
    """srand of the C library OpenCV's std::rand draws from, or None."""
    try:
        if sys.platform == "win32":
            lib = ctypes.CDLL("ucrtbase")  # the UCRT keeps rand's state per thread; process() runs in this one
        else:
            lib = ctypes.CDLL(None)
        return lib.srand
    except (OSError, AttributeError):
        return None


_SRAND = _c_rand_seeder()


def check_settings(strategy: str, max_boxes: int) -> None:
    if strategy not in STRATEGIES:
        raise ValueError(f"strategy: expected one of {STRATEGIES}, got {strategy!r}")
    if isinstance(max_boxes, bool) or not isinstance(max_boxes, (int, np.integer)) or max_boxes <= 0:
        raise ValueError(f"max_boxes: expected a positive int, got {max_boxes!r}")


def selective_search(image: np.ndarray, strategy: str = "fast", max_boxes: int = DEFAULT_MAX_BOXES,
                     seed: int = SEED) -> np.ndarray:
    """Proposals of one image.

    Args:
        image: (H, W, 3) uint8 RGB (as ``PIL`` reads it).
        strategy: ``"fast"`` or ``"quality"``.
        max_boxes: keep the first ``max_boxes`` boxes of the ranking.
        seed: the ranking's seed; same image, settings and seed -> same boxes.
    Returns:
        (P, 4) float32 ``x1, y1, x2, y2`` in the image's pixels, clipped inside
        it, without empty boxes, in ranking order, P <= max_boxes.
    """
    check_settings(strategy, max_boxes)
    image = np.asarray(image)
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise ValueError(f"image: expected an (H, W, 3) uint8 RGB array, got {image.dtype} {image.shape}")
    if image.shape[0] == 0 or image.shape[1] == 0:
        return np.zeros((0, 4), np.float32)
    cv2 = import_cv2()
    search = cv2.ximgproc.segmentation.createSelectiveSearchSegmentation()
    search.setBaseImage(np.ascontiguousarray(image[:, :, ::-1]))  # OpenCV's colour conversions expect BGR
    if strategy == "fast":
        search.switchToSelectiveSearchFast()
    else:
        search.switchToSelectiveSearchQuality()
    if _SRAND is not None:
        _SRAND(int(seed) & 0xFFFFFFFF)
    rects = np.asarray(search.process(), dtype=np.float64).reshape(-1, 4)  # x, y, w, h
    boxes = np.concatenate([rects[:, :2], rects[:, :2] + rects[:, 2:]], axis=1)
    if _SRAND is None:
        boxes = _rerank(boxes, seed)
    return clip_to_image(boxes, image.shape[0], image.shape[1])[0][:max_boxes]


def _rerank(boxes: np.ndarray, seed: int) -> np.ndarray:
    order = np.lexsort((boxes[:, 3], boxes[:, 2], boxes[:, 1], boxes[:, 0]))
    boxes = boxes[order]  # a canonical order first: OpenCV's output order is random here
    area = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    area_rank = np.argsort(np.argsort(area, kind="stable"), kind="stable") + 1.0
    rank = area_rank * np.random.default_rng(seed).random(len(boxes))
    return boxes[np.argsort(rank, kind="stable")]


def clip_to_image(boxes: np.ndarray, height: int, width: int):
    """(N, 4) boxes clipped to the image, those with no area (or a NaN) dropped:
    ``(kept boxes as float32, keep mask)``."""
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4).copy()
    boxes[:, 0::2] = boxes[:, 0::2].clip(0, width)
    boxes[:, 1::2] = boxes[:, 1::2].clip(0, height)
    keep = (boxes[:, 2] > boxes[:, 0]) & (boxes[:, 3] > boxes[:, 1])  # False for NaN
    return boxes[keep].astype(np.float32), keep
