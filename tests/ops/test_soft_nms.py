"""soft_nms and batched_soft_nms against a plain Python Soft-NMS."""

import math

import numpy as np
import pytest

from detcore.ops import batched_soft_nms, soft_nms
from helpers import DLPackArray, edge_case_boxes

try:
    import torch
except ImportError:
    torch = None


def iou(a, b):
    inter = max(min(a[2], b[2]) - max(a[0], b[0]), 0.0) * max(min(a[3], b[3]) - max(a[1], b[1]), 0.0)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.float64(inter) / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter)


def reference(boxes, scores, iou_threshold=0.3, sigma=0.5, score_threshold=0.001, method="gaussian", idxs=None):
    """Algorithm 1 of Bodla et al. 2017, one box at a time, in float64: take
    the highest score (ties: lower index; NaN last), decay the others of its
    class, drop those below score_threshold."""
    boxes = [list(map(float, b)) for b in boxes]
    remaining = {i: float(s) for i, s in enumerate(scores) if not float(s) < score_threshold}
    classes = [0] * len(boxes) if idxs is None else [int(c) for c in idxs]
    keep, kept_scores = [], []
    while remaining:

        def rank(i):
            s = remaining[i]
            return (1, 0.0, i) if math.isnan(s) else (0, -s, i)

        m = min(remaining, key=rank)
        keep.append(m)
        kept_scores.append(remaining.pop(m))
        for i in list(remaining):
            if classes[i] != classes[m]:
                continue
            o = iou(boxes[m], boxes[i])
            if math.isnan(o):
                weight = 1.0
            elif method == "linear":
                weight = 1 - o if o > iou_threshold else 1.0
            else:
                weight = math.exp(-(o * o) / sigma)
            remaining[i] *= weight
            if remaining[i] < score_threshold:
                del remaining[i]
    return np.array(keep, dtype=np.int64), np.array(kept_scores)


def clustered(rng, n, dtype=np.float64):
    """Boxes in a few overlapping clusters, so the decays matter."""
    centres = rng.uniform(20, 80, (4, 2))[rng.integers(0, 4, n)]
    wh = rng.uniform(10, 30, (n, 2))
    xy = centres + rng.normal(0, 4, (n, 2))
    return np.concatenate([xy - wh / 2, xy + wh / 2], axis=1).astype(dtype), rng.uniform(0, 1, n).astype(dtype)


@pytest.mark.parametrize("method", ["gaussian", "linear"])
@pytest.mark.parametrize("params", [{}, {"iou_threshold": 0.5, "sigma": 0.2, "score_threshold": 0.05}])
def test_matches_reference(rng, method, params):
    boxes, scores = clustered(rng, 120)
    keep, kept_scores = soft_nms(boxes, scores, method=method, **params)
    ref_keep, ref_scores = reference(boxes, scores, method=method, **params)
    assert keep.dtype == np.int64 and kept_scores.dtype == np.float64
    np.testing.assert_array_equal(keep, ref_keep)
    np.testing.assert_allclose(kept_scores, ref_scores, rtol=1e-12)
    assert np.all(np.diff(kept_scores) <= 0)


@pytest.mark.parametrize("method", ["gaussian", "linear"])
def test_batched_matches_reference(rng, method):
    boxes, scores = clustered(rng, 150)
    idxs = rng.integers(0, 5, 150)
    keep, kept_scores = batched_soft_nms(boxes, scores, idxs.astype(np.int32), method=method)
    ref_keep, ref_scores = reference(boxes, scores, method=method, idxs=idxs)
    np.testing.assert_array_equal(keep, ref_keep)
    np.testing.assert_allclose(kept_scores, ref_scores, rtol=1e-12)


def test_float32_close_to_reference(rng):
    boxes, scores = clustered(rng, 60, np.float32)
    keep, kept_scores = soft_nms(boxes, scores)
    ref_keep, ref_scores = reference(boxes, scores)
    assert kept_scores.dtype == np.float32
    np.testing.assert_array_equal(keep, ref_keep)
    np.testing.assert_allclose(kept_scores, ref_scores, rtol=1e-5)


def test_known_decays():
    boxes = np.array([[0, 0, 10, 10], [0, 0, 10, 5], [50, 50, 60, 60]], dtype=np.float64)
    scores = np.array([0.9, 0.8, 0.7])
    keep, s = soft_nms(boxes, scores, method="linear", iou_threshold=0.3)
    np.testing.assert_array_equal(keep, [0, 2, 1])
    np.testing.assert_allclose(s, [0.9, 0.7, 0.8 * 0.5])
    keep, s = soft_nms(boxes, scores, method="gaussian", sigma=0.5)
    np.testing.assert_allclose(s, [0.9, 0.7, 0.8 * math.exp(-0.25 / 0.5)])
    np.testing.assert_array_equal(keep, [0, 2, 1])
    # linear: exactly at the threshold no decay (strictly greater decays)
    keep, s = soft_nms(boxes, scores, method="linear", iou_threshold=0.5)
    np.testing.assert_allclose(s, [0.9, 0.8, 0.7])


def test_ties_keep_the_lower_index_and_nan_scores_come_last():
    boxes = np.array(
        [[0, 0, 10, 10], [100, 0, 110, 10], [200, 0, 210, 10], [300, 0, 310, 10], [0, 0, 10, 10]], dtype=np.float64
    )
    scores = np.array([0.5, np.nan, 0.5, 0.7, np.nan])
    keep, s = soft_nms(boxes, scores)
    np.testing.assert_array_equal(keep, [3, 0, 2, 1, 4])
    np.testing.assert_array_equal(s[:3], [0.7, 0.5, 0.5])
    assert np.isnan(s[3:]).all()
    ref_keep, _ = reference(boxes, scores)
    np.testing.assert_array_equal(keep, ref_keep)


def test_score_threshold_drops_boxes_initially_and_after_decay():
    boxes = np.array([[0, 0, 10, 10], [0, 0, 10, 10], [50, 50, 60, 60]], dtype=np.float64)
    scores = np.array([0.9, 0.8, 0.0005])
    keep, _ = soft_nms(boxes, scores, method="linear", iou_threshold=0.3, score_threshold=0.001)
    np.testing.assert_array_equal(keep, [0])  # box 1 decays to 0, box 2 starts below
    keep, _ = soft_nms(boxes, scores, method="linear", score_threshold=-math.inf)
    np.testing.assert_array_equal(keep, [0, 2, 1])


def test_edge_case_boxes_and_empty(rng):
    boxes = edge_case_boxes(np.float64)
    scores = rng.uniform(0, 1, len(boxes))
    keep, s = soft_nms(boxes, scores)
    ref_keep, ref_scores = reference(boxes, scores)
    np.testing.assert_array_equal(keep, ref_keep)
    np.testing.assert_allclose(s, ref_scores, rtol=1e-12)
    keep, s = soft_nms(np.zeros((0, 4), np.float32), np.zeros((0,), np.float32))
    assert keep.shape == (0,) and s.shape == (0,) and s.dtype == np.float32
    keep, s = batched_soft_nms(np.zeros((0, 4)), np.zeros((0,)), np.zeros((0,), np.int64))
    assert keep.shape == (0,)


def test_bad_input_names_the_argument(rng):
    boxes, scores = clustered(rng, 5)
    with pytest.raises(ValueError, match="method"):
        soft_nms(boxes, scores, method="hard")
    with pytest.raises(ValueError, match="sigma"):
        soft_nms(boxes, scores, sigma=0.0)
    with pytest.raises(ValueError, match="iou_threshold"):
        soft_nms(boxes, scores, iou_threshold=-1)
    with pytest.raises(ValueError, match="score_threshold"):
        soft_nms(boxes, scores, score_threshold=float("nan"))
    with pytest.raises(ValueError, match="scores"):
        soft_nms(boxes, scores[:3])
    with pytest.raises(ValueError, match="idxs"):
        batched_soft_nms(boxes, scores, np.zeros(3, np.int64))
    with pytest.raises(TypeError, match="scores"):
        soft_nms(boxes, scores.astype(np.float32))


@pytest.mark.skipif(torch is None, reason="needs torch")
class TestTorch:
    def test_torch_dlpack_and_script(self, rng):
        boxes, scores = clustered(rng, 40, np.float32)
        idxs = rng.integers(0, 3, 40)
        expected = batched_soft_nms(boxes, scores, idxs)
        tb, ts, ti = torch.from_numpy(boxes), torch.from_numpy(scores), torch.from_numpy(idxs)
        for got in (
            batched_soft_nms(tb, ts, ti),
            torch.jit.script(batched_soft_nms)(tb, ts, ti, 0.3, 0.5, 0.001, "gaussian"),
        ):
            assert isinstance(got[0], torch.Tensor)
            np.testing.assert_array_equal(got[0].numpy(), expected[0])
            np.testing.assert_array_equal(got[1].numpy(), expected[1])
        got = soft_nms(DLPackArray(boxes), DLPackArray(scores), method="linear")
        np.testing.assert_array_equal(got[0], soft_nms(boxes, scores, method="linear")[0])
        torch.library.opcheck(torch.ops.detcore.soft_nms.default, (tb, ts, 0.3, 0.5, 0.001, "gaussian"))

    @pytest.mark.cuda
    @pytest.mark.parametrize("method", ["gaussian", "linear"])
    @pytest.mark.parametrize("batched", [False, True])
    def test_cuda_matches_cpu(self, rng, method, batched):
        boxes, scores = clustered(rng, 3000)
        idxs = torch.from_numpy(rng.integers(0, 7, 3000)) if batched else None
        tb, ts = torch.from_numpy(boxes), torch.from_numpy(scores)
        args = (tb, ts) if idxs is None else (tb, ts, idxs)
        fn = batched_soft_nms if batched else soft_nms
        cpu = fn(*args, method=method)
        gpu = fn(*(a.cuda() for a in args), method=method)
        assert torch.equal(gpu[0].cpu(), cpu[0])  # float64: the same arithmetic
        torch.testing.assert_close(gpu[1].cpu(), cpu[1], rtol=1e-12, atol=0)
        half = fn(*(a.cuda().half() if a.is_floating_point() else a.cuda() for a in args), method=method)
        assert half[1].dtype == torch.float16
