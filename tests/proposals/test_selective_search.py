"""Selective search: deterministic, (P, 4) float32 boxes inside the image, the
same set of boxes as OpenCV's, truncated to max_boxes in ranking order."""

import numpy as np
import pytest

from proposal_images import painted_image

from detcore.proposals import selective_search
from detcore.proposals import selective as ss_module
from detcore.proposals.selective import clip_to_image

pytest.importorskip("cv2", reason="selective search needs detcore[classic] (opencv-contrib-python-headless)")


def opencv_boxes(image, strategy):
    """OpenCV's own output, as a set of x1 y1 x2 y2 tuples (its order is random)."""
    import cv2

    search = cv2.ximgproc.segmentation.createSelectiveSearchSegmentation()
    search.setBaseImage(np.ascontiguousarray(image[:, :, ::-1]))
    getattr(search, "switchToSelectiveSearchFast" if strategy == "fast" else "switchToSelectiveSearchQuality")()
    rects = search.process().astype(np.float64)
    return {tuple(r) for r in np.concatenate([rects[:, :2], rects[:, :2] + rects[:, 2:]], 1)}


@pytest.mark.parametrize("strategy", ["fast", "quality"])
def test_deterministic_inside_the_image_and_opencvs_set(rng, strategy):
    image = painted_image(rng, 40, 56)
    first = selective_search(image, strategy)
    other = selective_search(painted_image(rng, 40, 56), strategy)  # the generator moves on in between
    second = selective_search(image, strategy)
    assert first.dtype == np.float32 and first.ndim == 2 and first.shape[1] == 4 and len(first) > 0
    np.testing.assert_array_equal(first, second)
    assert not np.array_equal(first, other[: len(first)]) or len(first) != len(other)
    h, w = image.shape[:2]
    assert (first[:, 0] >= 0).all() and (first[:, 1] >= 0).all() and (first[:, 2] <= w).all() and (first[:, 3] <= h).all()
    assert (first[:, 2] > first[:, 0]).all() and (first[:, 3] > first[:, 1]).all()
    # the boxes OpenCV finds, none lost or invented (they are inside the image already)
    assert {tuple(b) for b in first.astype(np.float64)} == opencv_boxes(image, strategy)


def test_max_boxes_keeps_the_top_of_the_ranking(image):
    full = selective_search(image, "fast")
    assert len(full) > 5
    np.testing.assert_array_equal(selective_search(image, "fast", max_boxes=5), full[:5])


def test_fallback_ranking_is_deterministic(image, monkeypatch):
    full = selective_search(image, "fast")
    monkeypatch.setattr(ss_module, "_SRAND", None)  # a C library whose rand cannot be seeded
    a = selective_search(image, "fast")
    b = selective_search(image, "fast")
    np.testing.assert_array_equal(a, b)
    assert {tuple(x) for x in a} == {tuple(x) for x in full}
    assert not np.array_equal(a, selective_search(image, "fast", seed=1))


def test_clip_to_image_against_a_plain_reference(rng):
    h, w = 30, 50
    boxes = rng.uniform(-20, 70, (200, 4))
    boxes[:10, 2:] = boxes[:10, :2]  # degenerate
    boxes[10:15, 1] = np.nan
    boxes[15] = [1e30, -1e30, 2e30, 1e30]  # huge
    kept, keep = clip_to_image(boxes, h, w)
    expected = []
    for x1, y1, x2, y2 in boxes:
        c = [min(max(x1, 0), w), min(max(y1, 0), h), min(max(x2, 0), w), min(max(y2, 0), h)]
        if c[2] > c[0] and c[3] > c[1]:
            expected.append(c)
    assert kept.dtype == np.float32 and keep.sum() == len(expected)
    np.testing.assert_allclose(kept, np.array(expected, np.float64).reshape(-1, 4), rtol=1e-6)


def test_empty_image_and_bad_arguments(image):
    assert selective_search(np.zeros((0, 5, 3), np.uint8)).shape == (0, 4)
    with pytest.raises(ValueError, match="strategy: expected one of"):
        selective_search(image, "slow")
    with pytest.raises(ValueError, match="max_boxes: expected a positive int"):
        selective_search(image, "fast", 0)
    with pytest.raises(ValueError, match=r"image: expected an \(H, W, 3\) uint8 RGB array, got float64"):
        selective_search(image.astype(np.float64))
    with pytest.raises(ValueError, match="image: expected"):
        selective_search(image[:, :, 0])


def test_missing_opencv_contrib_names_the_extra(monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "cv2", None)
    with pytest.raises(ImportError, match=r"pip install 'detcore\[classic\]'"):
        ss_module.import_cv2()
