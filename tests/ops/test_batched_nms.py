import numpy as np
import pytest

from detcore.ops import batched_nms, nms
from helpers import HALF_DTYPES, edge_case_boxes, integer_boxes, random_boxes, to_half
from nms_reference import reference_greedy

try:
    import torch
except ImportError:
    torch = None


def reference_batched_nms(boxes, scores, idxs, iou_threshold):
    return reference_greedy(boxes, scores, idxs, iou_threshold)


def check_batched_nms(boxes, scores, idxs, iou_threshold):
    keep = batched_nms(boxes, scores, idxs, iou_threshold)
    assert keep.dtype == np.int64 and keep.ndim == 1
    np.testing.assert_array_equal(keep, reference_batched_nms(boxes, scores, idxs, iou_threshold))
    return keep


@pytest.mark.parametrize("num_classes", [1, 3, 20])
@pytest.mark.parametrize("iou_threshold", [0.0, 0.5, 0.7])
def test_random_float64_boxes_match_reference(rng, num_classes, iou_threshold):
    n = 300
    check_batched_nms(random_boxes(rng, n), rng.random(n), rng.integers(0, num_classes, n), iou_threshold)


@pytest.mark.parametrize("iou_threshold", [0.25, 0.5])
def test_random_float32_boxes_match_reference(rng, iou_threshold):
    n = 400  # integer coordinates: float32 and float64 agree on thresholds exact in float32
    check_batched_nms(integer_boxes(rng, n), rng.random(n).astype(np.float32), rng.integers(0, 6, n), iou_threshold)


def test_many_boxes_with_a_large_class_and_many_small_ones(rng):
    # One class longer than a small run (processed with threads inside it),
    # plus many short ones (processed side by side).
    n = 7000
    idxs = np.where(rng.random(n) < 0.8, 7, rng.integers(0, 200, n))
    boxes = integer_boxes(rng, n, size=1000, max_wh=60)
    check_batched_nms(boxes, rng.random(n).astype(np.float32), idxs, 0.5)


def test_one_class_equals_nms(rng):
    boxes, scores = integer_boxes(rng, 500), rng.random(500).astype(np.float32)
    keep = batched_nms(boxes, scores, np.full(500, 3, np.int64), 0.5)
    np.testing.assert_array_equal(keep, nms(boxes, scores, 0.5))
    assert len(keep) < 500


def test_all_classes_distinct_keeps_everything_in_score_order(rng):
    boxes = np.tile(np.array([[0, 0, 10, 10]], np.float32), (50, 1))
    scores = rng.integers(0, 10, 50).astype(np.float32)
    keep = batched_nms(boxes, scores, rng.permutation(50).astype(np.int64), 0.5)
    np.testing.assert_array_equal(keep, np.lexsort((np.arange(50), -scores)))


def test_tied_scores_across_classes_keep_the_lower_index_first(rng):
    n = 300
    boxes = integer_boxes(rng, n, size=64, max_wh=32, dtype=np.float64)
    check_batched_nms(boxes, rng.integers(0, 4, n).astype(np.float64), rng.integers(0, 3, n), 0.5)


def test_huge_coordinates_and_extreme_class_ids_do_not_mix_classes():
    # The coordinate-offset trick would shift these boxes into each other (or
    # to inf); comparing class ids cannot.
    big = 1e150  # areas 1e300 are still finite
    boxes = np.array([[0, 0, big, big], [0, 0, big, big], [0, 0, big, big], [-big, -big, 0, 0]], np.float64)
    idxs = np.array([np.iinfo(np.int64).min, np.iinfo(np.int64).max, -1, np.iinfo(np.int64).min], np.int64)
    np.testing.assert_array_equal(batched_nms(boxes, np.array([4.0, 3, 2, 1]), idxs, 0.5), [0, 1, 2, 3])
    idxs[1] = idxs[0]
    np.testing.assert_array_equal(batched_nms(boxes, np.array([4.0, 3, 2, 1]), idxs, 0.5), [0, 2, 3])


def test_iou_exactly_at_the_threshold_is_kept_and_above_it_suppressed():
    boxes = np.array([[0, 0, 10, 10], [0, 0, 10, 5], [0, 0, 10, 6]], np.float32)
    scores = np.array([3, 2, 1], np.float32)
    idxs = np.array([0, 0, 1], np.int64)
    np.testing.assert_array_equal(batched_nms(boxes, scores, idxs, 0.5), [0, 1, 2])
    np.testing.assert_array_equal(batched_nms(boxes, scores, idxs, np.nextafter(0.5, 0.0)), [0, 2])
    np.testing.assert_array_equal(batched_nms(boxes, scores, np.zeros(3, np.int64), 0.5), [0, 1])


def test_nan_inf_boxes_and_nan_scores_match_reference(rng):
    boxes = np.concatenate([edge_case_boxes(), random_boxes(rng, 40, size=20)])
    boxes = np.concatenate([boxes, boxes[::-1]])
    scores = rng.random(len(boxes))
    scores[rng.random(len(boxes)) < 0.2] = np.nan
    scores[3] = -np.inf
    idxs = rng.integers(0, 3, len(boxes))
    for threshold in (0.0, 0.5):
        check_batched_nms(boxes, scores, idxs, threshold)


def test_empty_1d_inputs_give_an_empty_result_as_torchvision():
    # torchvision returns early for boxes.numel() == 0, shape (0,) included.
    keep = batched_nms(np.zeros(0, np.float32), np.zeros(0, np.float32), np.zeros(0, np.int64), 0.5)
    assert keep.shape == (0,) and keep.dtype == np.int64
    if torch is not None:
        args = (torch.zeros(0), torch.zeros(0), torch.zeros(0, dtype=torch.int64), 0.5)
        for fn in (batched_nms, torch.jit.script(batched_nms)):
            keep = fn(*args)
            assert keep.shape == (0,) and keep.dtype == torch.int64
    with pytest.raises(ValueError, match="boxes"):  # other 1-D boxes are still refused
        batched_nms(np.zeros(4, np.float32), np.zeros(1, np.float32), np.zeros(1, np.int64), 0.5)


def test_inputs_are_not_mutated(rng):
    boxes, scores, idxs = integer_boxes(rng, 100), rng.random(100).astype(np.float32), rng.integers(0, 4, 100)
    before = boxes.copy(), scores.copy(), idxs.copy()
    batched_nms(boxes, scores, idxs, 0.5)
    for after, original in zip((boxes, scores, idxs), before):
        np.testing.assert_array_equal(after, original)


_B, _S, _I = np.zeros((3, 4), np.float32), np.zeros(3, np.float32), np.zeros(3, np.int64)


@pytest.mark.parametrize(
    "boxes,scores,idxs,threshold,error,words",
    [
        (np.zeros((3, 3), np.float32), _S, _I, 0.5, ValueError, "boxes"),
        (_B, np.zeros(2, np.float32), _I, 0.5, ValueError, "scores"),
        (_B, _S, np.zeros(4, np.int64), 0.5, ValueError, "idxs"),
        (_B, _S, np.zeros((3, 1), np.int64), 0.5, ValueError, "idxs"),
        (_B, _S, np.zeros(3, np.float32), 0.5, TypeError, "idxs"),
        (_B, _S, np.zeros(3, np.float32), 0.5, TypeError, "idxs"),
        (_B, np.zeros(3, np.float64), _I, 0.5, TypeError, "scores"),
        (np.zeros((3, 4), np.int32), np.zeros(3, np.int32), _I, 0.5, TypeError, "boxes"),
        (_B, _S, _I, -1e-9, ValueError, "iou_threshold"),
        (_B, _S, _I, float("nan"), ValueError, "iou_threshold"),
        (_B, _S, _I, float("inf"), ValueError, "iou_threshold"),
        (_B, _S, _I, None, TypeError, "iou_threshold"),
        (_B, _S, [0, 0, 0], 0.5, TypeError, "idxs"),
    ],
)
def test_bad_input_is_refused_with_the_argument_named(boxes, scores, idxs, threshold, error, words):
    with pytest.raises(error, match=words):
        batched_nms(boxes, scores, idxs, threshold)


@pytest.mark.skipif(torch is None, reason="needs torch")
class TestTorch:
    def test_matches_reference_and_returns_int64_tensor(self, rng):
        boxes, scores, idxs = integer_boxes(rng, 200), rng.random(200).astype(np.float32), rng.integers(0, 5, 200)
        keep = batched_nms(torch.from_numpy(boxes), torch.from_numpy(scores), torch.from_numpy(idxs), 0.5)
        assert isinstance(keep, torch.Tensor) and keep.dtype == torch.int64
        np.testing.assert_array_equal(keep.numpy(), reference_batched_nms(boxes, scores, idxs, 0.5))

    def test_torch_compile_fullgraph_with_data_dependent_size(self, rng):
        boxes = torch.from_numpy(integer_boxes(rng, 150))
        scores = torch.from_numpy(rng.random(150).astype(np.float32))
        idxs = torch.from_numpy(rng.integers(0, 4, 150))

        def kept_boxes(b, s, i):
            keep = batched_nms(b, s, i, 0.5)
            return b[keep] * 2

        compiled = torch.compile(kept_boxes, fullgraph=True)
        expected = reference_batched_nms(boxes.numpy(), scores.numpy(), idxs.numpy(), 0.5)
        torch.testing.assert_close(compiled(boxes, scores, idxs), boxes[torch.from_numpy(expected)] * 2)

    def test_class_ids_of_any_integer_dtype_are_taken_as_int64(self, rng):
        boxes = torch.from_numpy(random_boxes(rng, 50, dtype=np.float32))
        scores = torch.from_numpy(rng.random(50, dtype=np.float32))
        idxs = torch.from_numpy(rng.integers(0, 4, 50))
        expected = batched_nms(boxes, scores, idxs, 0.3)
        scripted = torch.jit.script(batched_nms)
        for dtype in (torch.int32, torch.int16, torch.uint8):
            torch.testing.assert_close(batched_nms(boxes, scores, idxs.to(dtype), 0.3), expected)
            torch.testing.assert_close(scripted(boxes, scores, idxs.to(dtype), 0.3), expected)
        np.testing.assert_array_equal(
            batched_nms(boxes.numpy(), scores.numpy(), idxs.numpy().astype(np.int32), 0.3), expected.numpy()
        )
        with pytest.raises(TypeError, match="idxs"):
            batched_nms(boxes, scores, idxs.float(), 0.3)
        # TorchScript's interpreter re-raises every error as a RuntimeError.
        with pytest.raises(RuntimeError, match="TypeError: idxs"):
            scripted(boxes, scores, idxs.float(), 0.3)

    @pytest.mark.cuda
    @pytest.mark.parametrize("dtype", ["float32", "float64", "float16", "bfloat16"])
    def test_cuda_matches_cpu(self, rng, dtype):
        dtype = getattr(torch, dtype)
        for n, num_classes in [(1, 1), (900, 1), (900, 7), (6000, 80)]:
            boxes = torch.from_numpy(integer_boxes(rng, n)).to(dtype)
            scores = torch.from_numpy(rng.integers(0, 50, n).astype(np.float32)).to(dtype)
            idxs = torch.from_numpy(rng.integers(-3, num_classes - 3, n))
            cpu_dtype = torch.float64 if dtype == torch.float64 else torch.float32
            expected = batched_nms(boxes.to(cpu_dtype), scores.to(cpu_dtype), idxs, 0.5)
            got = batched_nms(boxes.cuda(), scores.cuda(), idxs.cuda(), 0.5)
            assert got.device.type == "cuda" and got.dtype == torch.int64
            torch.testing.assert_close(got.cpu(), expected, rtol=0, atol=0)

    @pytest.mark.cuda
    def test_cuda_huge_coordinates_do_not_mix_classes(self):
        boxes = torch.tensor([[0, 0, 1e300, 1e300]] * 3, dtype=torch.float64, device="cuda")
        idxs = torch.tensor([0, 1, 0], device="cuda")
        keep = batched_nms(boxes, torch.tensor([3.0, 2, 1], dtype=torch.float64, device="cuda"), idxs, 0.5)
        assert keep.cpu().tolist() == [0, 1]

    @pytest.mark.cuda
    def test_cuda_torch_compile_fullgraph(self, rng):
        boxes = torch.from_numpy(integer_boxes(rng, 300)).cuda()
        scores = torch.from_numpy(rng.random(300).astype(np.float32)).cuda()
        idxs = torch.from_numpy(rng.integers(0, 5, 300)).cuda()
        compiled = torch.compile(lambda b, s, i: batched_nms(b, s, i, 0.5), fullgraph=True)
        expected = batched_nms(boxes.cpu(), scores.cpu(), idxs.cpu(), 0.5)
        torch.testing.assert_close(compiled(boxes, scores, idxs).cpu(), expected)


@pytest.mark.skipif(torch is None, reason="needs torch for bfloat16")
@pytest.mark.parametrize("dtype", HALF_DTYPES)
def test_half_boxes_and_scores_use_a_float_iou(rng, dtype):
    boxes, scores = to_half(integer_boxes(rng, 300), dtype), to_half(rng.random(300), dtype)
    idxs = torch.from_numpy(rng.integers(0, 4, 300))
    keep = batched_nms(boxes, scores, idxs, 0.5)
    np.testing.assert_array_equal(keep.numpy(), batched_nms(boxes.float(), scores.float(), idxs, 0.5).numpy())
    np.testing.assert_array_equal(keep.numpy(), reference_batched_nms(boxes.double(), scores.double(), idxs, 0.5))
