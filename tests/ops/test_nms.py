import numpy as np
import pytest

from detcore.ops import nms
from helpers import HALF_DTYPES, edge_case_boxes, integer_boxes, random_boxes, to_half
from nms_reference import reference_greedy

try:
    import torch
except ImportError:
    torch = None


def reference_nms(boxes, scores, iou_threshold):
    return reference_greedy(boxes, scores, np.zeros(len(scores), dtype=np.int64), iou_threshold)


def check_nms(boxes, scores, iou_threshold):
    keep = nms(boxes, scores, iou_threshold)
    assert keep.dtype == np.int64 and keep.ndim == 1
    np.testing.assert_array_equal(keep, reference_nms(boxes, scores, iou_threshold))
    return keep


@pytest.mark.parametrize("iou_threshold", [0.0, 0.3, 0.5, 0.7, 1.0])
def test_random_float64_boxes_match_reference(rng, iou_threshold):
    boxes = random_boxes(rng, 300)
    keep = check_nms(boxes, rng.random(300), iou_threshold)
    if 0 < iou_threshold < 1:
        assert 0 < len(keep) < 300  # the case suppresses something and keeps something


@pytest.mark.parametrize("iou_threshold", [0.0, 0.25, 0.5, 0.75])
def test_random_float32_boxes_match_reference(rng, iou_threshold):
    # Integer coordinates: float32 and float64 IoUs sit on the same side of
    # every threshold exact in float32, so the float64 reference decides
    # exactly (for 0.3 they differ when the IoU is exactly 3/10: see below).
    check_nms(integer_boxes(rng, 400), rng.random(400).astype(np.float32), iou_threshold)


def test_many_boxes_over_several_blocks_and_threads(rng):
    boxes = integer_boxes(rng, 3000, size=1000, max_wh=60)
    check_nms(boxes, rng.random(3000).astype(np.float32), 0.5)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_tied_scores_keep_the_lower_index_first(rng, dtype):
    boxes = integer_boxes(rng, 200, size=64, max_wh=32, dtype=dtype)
    scores = rng.integers(0, 5, 200).astype(dtype)
    check_nms(boxes, scores, 0.5)
    same = np.tile(np.array([[0, 0, 10, 10]], dtype), (4, 1))
    np.testing.assert_array_equal(nms(same, np.ones(4, dtype), 0.5), [0])
    np.testing.assert_array_equal(nms(same, np.array([1, 2, 2, 1], dtype), 0.5), [1])


def test_negative_zero_ties_with_zero():
    boxes = np.array([[0, 0, 10, 10], [20, 20, 30, 30]], np.float32)
    np.testing.assert_array_equal(nms(boxes, np.array([0.0, -0.0], np.float32), 0.5), [0, 1])
    np.testing.assert_array_equal(nms(boxes, np.array([-0.0, 0.0], np.float32), 0.5), [0, 1])


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_iou_exactly_at_the_threshold_is_kept_and_above_it_suppressed(dtype):
    # IoUs 0.5 (inter 50, union 100) and 0.25 are exact in every dtype.
    boxes = np.array([[0, 0, 10, 10], [0, 0, 10, 5], [100, 100, 104, 104], [100, 100, 104, 101]], dtype)
    scores = np.array([4, 3, 2, 1], dtype)
    np.testing.assert_array_equal(nms(boxes, scores, 0.5), [0, 1, 2, 3])
    np.testing.assert_array_equal(nms(boxes, scores, np.nextafter(0.5, 0.0)), [0, 2, 3])
    np.testing.assert_array_equal(nms(boxes, scores, 0.25), [0, 2, 3])
    np.testing.assert_array_equal(nms(boxes, scores, np.nextafter(0.25, 0.0)), [0, 2])
    np.testing.assert_array_equal(nms(boxes, scores, np.nextafter(0.25, 1.0)), [0, 2, 3])


def test_float32_iou_is_compared_with_the_double_threshold_as_torchvision():
    # IoU exactly 3/10: rounded to float32 it is 0.300000012 > 0.3, so it
    # suppresses in float32 (torchvision's CPU kernel agrees) but not in float64.
    boxes = np.array([[0, 0, 10, 10], [0, 0, 10, 3]])
    np.testing.assert_array_equal(nms(boxes.astype(np.float32), np.array([2, 1], np.float32), 0.3), [0])
    np.testing.assert_array_equal(nms(boxes.astype(np.float64), np.array([2.0, 1.0]), 0.3), [0, 1])


def test_threshold_zero_suppresses_any_overlap_but_not_touching():
    boxes = np.array([[0, 0, 10, 10], [10, 0, 20, 10], [9, 9, 30, 30]], np.float64)
    np.testing.assert_array_equal(nms(boxes, np.array([3.0, 2.0, 1.0]), 0.0), [0, 1])


def test_nan_inf_and_degenerate_boxes_match_reference(rng):
    boxes = np.concatenate([edge_case_boxes(), random_boxes(rng, 30, size=20)])
    boxes = np.concatenate([boxes, boxes[::-1]])  # each edge case both above and below the others
    scores = rng.random(len(boxes))
    for threshold in (0.0, 0.5):
        check_nms(boxes, scores, threshold)


def test_float32_overflowing_and_nan_boxes_give_valid_indices(rng):
    boxes = np.concatenate([edge_case_boxes(np.float32), integer_boxes(rng, 40, size=16, max_wh=16)])
    scores = rng.random(len(boxes)).astype(np.float32)
    with np.errstate(all="ignore"):
        keep = nms(boxes, scores, 0.5)
    assert len(np.unique(keep)) == len(keep) and np.all((keep >= 0) & (keep < len(boxes)))
    assert np.all(np.diff(scores[keep]) <= 0)
    assert keep[0] == np.argmax(scores)  # the best box is always kept


def test_nan_iou_never_suppresses():
    # Two empty boxes: 0 / 0 = NaN, so both stay, at every threshold.
    boxes = np.array([[5, 5, 5, 5], [5, 5, 5, 5], [np.nan, 0, 1, 1], [np.nan, 0, 1, 1]], np.float32)
    np.testing.assert_array_equal(nms(boxes, np.array([4, 3, 2, 1], np.float32), 0.0), [0, 1, 2, 3])


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_nan_scores_rank_last_and_inf_scores_are_ordinary(rng, dtype):
    boxes = np.array([[0, 0, 10, 10]] * 5, dtype)
    scores = np.array([np.nan, -np.inf, 1.0, np.inf, np.nan], dtype)
    np.testing.assert_array_equal(nms(boxes, scores, 0.5), [3])
    disjoint = np.array([[10 * i, 0, 10 * i + 5, 5] for i in range(5)], dtype)
    np.testing.assert_array_equal(nms(disjoint, scores, 0.5), [3, 2, 1, 0, 4])
    scores = rng.random(100).astype(dtype)
    scores[rng.random(100) < 0.3] = np.nan
    check_nms(integer_boxes(rng, 100, size=64, max_wh=32, dtype=dtype), scores, 0.5)


def test_inputs_are_not_mutated(rng):
    boxes, scores = integer_boxes(rng, 100), rng.random(100).astype(np.float32)
    boxes_before, scores_before = boxes.copy(), scores.copy()
    nms(boxes, scores, 0.5)
    np.testing.assert_array_equal(boxes, boxes_before)
    np.testing.assert_array_equal(scores, scores_before)


@pytest.mark.parametrize(
    "boxes,scores,threshold,error,words",
    [
        (np.zeros((3, 5), np.float32), np.zeros(3, np.float32), 0.5, ValueError, "boxes"),
        (np.zeros((3,), np.float32), np.zeros(3, np.float32), 0.5, ValueError, "boxes"),
        (np.zeros((3, 4), np.float32), np.zeros(4, np.float32), 0.5, ValueError, "scores"),
        (np.zeros((3, 4), np.float32), np.zeros((3, 1), np.float32), 0.5, ValueError, "scores"),
        (np.zeros((3, 4), np.int64), np.zeros(3, np.int64), 0.5, TypeError, "boxes"),
        (np.zeros((3, 4), np.float32), np.zeros(3, np.float64), 0.5, TypeError, "scores"),
        (np.zeros((3, 4), np.float32), np.zeros(3, np.float32), -0.1, ValueError, "iou_threshold"),
        (np.zeros((3, 4), np.float32), np.zeros(3, np.float32), float("nan"), ValueError, "iou_threshold"),
        (np.zeros((3, 4), np.float32), np.zeros(3, np.float32), float("inf"), ValueError, "iou_threshold"),
        (np.zeros((3, 4), np.float32), np.zeros(3, np.float32), "0.5", TypeError, "iou_threshold"),
        ([[0, 0, 1, 1]], np.zeros(1, np.float32), 0.5, TypeError, "boxes"),
    ],
)
def test_bad_input_is_refused_with_the_argument_named(boxes, scores, threshold, error, words):
    with pytest.raises(error, match=words):
        nms(boxes, scores, threshold)


def test_native_entry_checks_keep_and_workspace(rng):
    from detcore import _C

    boxes, scores = integer_boxes(rng, 10), rng.random(10).astype(np.float32)
    size = _C.nms_workspace_bytes("cpu", "float32", 0.5, 10)
    keep, workspace = np.empty(10, np.int64), np.empty(size, np.uint8)
    count = _C.nms(0.5, boxes, scores, keep, workspace)
    np.testing.assert_array_equal(keep[:count], reference_nms(boxes, scores, 0.5))
    with pytest.raises(ValueError, match="workspace"):
        _C.nms(0.5, boxes, scores, keep, workspace[: size - 1])
    with pytest.raises(TypeError, match="workspace"):
        _C.nms(0.5, boxes, scores, keep, np.empty(size // 8 + 1, np.int64))
    with pytest.raises(ValueError, match="keep"):
        _C.nms(0.5, boxes, scores, keep[:9], workspace)
    with pytest.raises(TypeError, match="keep"):
        _C.nms(0.5, boxes, scores, keep.astype(np.int32), workspace)
    read_only = keep.copy()
    read_only.setflags(write=False)
    with pytest.raises(ValueError, match="keep"):
        _C.nms(0.5, boxes, scores, read_only, workspace)
    with pytest.raises(ValueError, match="iou_threshold"):
        _C.nms(-0.5, boxes, scores, keep, workspace)
    with pytest.raises(ValueError, match="num_boxes"):
        _C.nms_workspace_bytes("cpu", "float32", 0.5, -1)


@pytest.mark.skipif(torch is None, reason="needs torch")
class TestTorch:
    def test_matches_reference_and_returns_int64_tensor(self, rng):
        boxes, scores = integer_boxes(rng, 200), rng.random(200).astype(np.float32)
        keep = nms(torch.from_numpy(boxes), torch.from_numpy(scores), 0.5)
        assert isinstance(keep, torch.Tensor) and keep.dtype == torch.int64
        np.testing.assert_array_equal(keep.numpy(), reference_nms(boxes, scores, 0.5))

    def test_torch_compile_fullgraph_with_data_dependent_size(self, rng):
        boxes = torch.from_numpy(integer_boxes(rng, 100))
        scores = torch.from_numpy(rng.random(100).astype(np.float32))

        def kept_score_sum(b, s):
            keep = nms(b, s, 0.5)
            return s[keep].sum(), keep.shape[0]

        compiled = torch.compile(kept_score_sum, fullgraph=True)
        total, count = compiled(boxes, scores)
        expected = reference_nms(boxes.numpy(), scores.numpy(), 0.5)
        assert count == len(expected)
        torch.testing.assert_close(total, scores[torch.from_numpy(expected)].sum())

    def test_bad_threshold_is_refused(self):
        with pytest.raises(ValueError, match="iou_threshold"):
            nms(torch.zeros((2, 4)), torch.zeros(2), -1.0)

    def test_mixed_frameworks_are_refused(self):
        with pytest.raises(TypeError, match="one framework"):
            nms(torch.zeros((2, 4)), np.zeros(2, np.float32), 0.5)

    @pytest.mark.cuda
    @pytest.mark.parametrize("dtype", ["float32", "float64", "float16", "bfloat16"])
    def test_cuda_matches_cpu(self, rng, dtype):
        # Integer coordinates are exact in every dtype, and so are their
        # products: the float IoU on the GPU equals the CPU's bit for bit.
        dtype = getattr(torch, dtype)
        for n, size, max_wh in [(1, 128, 128), (700, 128, 128), (5000, 128, 32)]:
            boxes = torch.from_numpy(integer_boxes(rng, n, size=size, max_wh=max_wh)).to(dtype)
            scores = torch.from_numpy(rng.integers(0, 50, n).astype(np.float32)).to(dtype)
            cpu_dtype = torch.float64 if dtype == torch.float64 else torch.float32
            expected = nms(boxes.to(cpu_dtype), scores.to(cpu_dtype), 0.5)
            got = nms(boxes.cuda(), scores.cuda(), 0.5)
            assert got.device.type == "cuda" and got.dtype == torch.int64
            torch.testing.assert_close(got.cpu(), expected, rtol=0, atol=0)

    @pytest.mark.cuda
    def test_cuda_edge_cases_and_empty_match_cpu(self, rng):
        boxes = torch.from_numpy(np.concatenate([edge_case_boxes(), random_boxes(rng, 30, size=20)]))
        scores = torch.from_numpy(rng.random(len(boxes)))
        scores[::7] = float("nan")
        torch.testing.assert_close(nms(boxes.cuda(), scores.cuda(), 0.5).cpu(), nms(boxes, scores, 0.5))
        empty = nms(torch.zeros((0, 4), device="cuda"), torch.zeros(0, device="cuda"), 0.5)
        assert empty.shape == (0,) and empty.device.type == "cuda"

    @pytest.mark.cuda
    def test_cuda_torch_compile_fullgraph(self, rng):
        boxes = torch.from_numpy(integer_boxes(rng, 300)).cuda()
        scores = torch.from_numpy(rng.random(300).astype(np.float32)).cuda()
        compiled = torch.compile(lambda b, s: nms(b, s, 0.5), fullgraph=True)
        torch.testing.assert_close(compiled(boxes, scores).cpu(), nms(boxes.cpu(), scores.cpu(), 0.5))


@pytest.mark.skipif(torch is None, reason="needs torch for bfloat16")
@pytest.mark.parametrize("dtype", HALF_DTYPES)
def test_half_boxes_and_scores_use_a_float_iou(rng, dtype):
    # Integer coordinates up to 256 are exact in both half types; half
    # scores tie often, which exercises the tie rule too.
    boxes, scores = to_half(integer_boxes(rng, 300), dtype), to_half(rng.random(300), dtype)
    scores[:5] = float("nan")
    keep = nms(boxes, scores, 0.5)
    np.testing.assert_array_equal(keep.numpy(), nms(boxes.float(), scores.float(), 0.5).numpy())
    np.testing.assert_array_equal(keep.numpy(), reference_nms(boxes.double(), scores.double(), 0.5))
    if dtype == "float16":
        np.testing.assert_array_equal(nms(boxes.numpy(), scores.numpy(), 0.5), keep.numpy())


def test_workspace_query_takes_device_and_dtype_names():
    from detcore import _C

    assert _C.nms_workspace_bytes("cpu", "bfloat16", 0.5, 10) == _C.nms_workspace_bytes("cpu", "float32", 0.5, 10)
    assert _C.nms_workspace_bytes("cpu", "float64", 0.5, 0) == 0
    with pytest.raises(ValueError, match="device: expected 'cpu', 'cuda' or 'cuda:N', got 'gpu'"):
        _C.nms_workspace_bytes("gpu", "float32", 0.5, 10)
    with pytest.raises(ValueError, match="device"):
        _C.nms_workspace_bytes("cuda:x", "float32", 0.5, 10)
    with pytest.raises(TypeError, match="dtype: .* got 'float8'"):
        _C.nms_workspace_bytes("cpu", "float8", 0.5, 10)
