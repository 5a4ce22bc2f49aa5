import numpy as np
import pytest

from detcore.ops import box_iou
from helpers import HALF_DTYPES, assert_half_result, edge_case_boxes, random_boxes, to_half

try:
    import torch
except ImportError:
    torch = None


def reference_box_iou(boxes1, boxes2):
    """Plain float64 loops, torchvision's arithmetic (negative areas kept)."""
    b1 = np.asarray(boxes1, dtype=np.float64)
    b2 = np.asarray(boxes2, dtype=np.float64)
    out = np.empty((len(b1), len(b2)))
    with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
        for i, a in enumerate(b1):
            for j, b in enumerate(b2):
                w = max(min(a[2], b[2]) - max(a[0], b[0]), 0.0)
                h = max(min(a[3], b[3]) - max(a[1], b[1]), 0.0)
                inter = w * h
                area_a = (a[2] - a[0]) * (a[3] - a[1])
                area_b = (b[2] - b[0]) * (b[3] - b[1])
                out[i, j] = inter / (area_a + area_b - inter)
    return out


@pytest.mark.parametrize("dtype,atol", [(np.float32, 1e-6), (np.float64, 1e-12)])
def test_random_boxes_match_reference(rng, dtype, atol):
    b1 = random_boxes(rng, 37, dtype=dtype)
    b2 = random_boxes(rng, 53, dtype=dtype)
    out = box_iou(b1, b2)
    assert out.dtype == dtype and out.shape == (37, 53)
    np.testing.assert_allclose(out, reference_box_iou(b1, b2), atol=atol, rtol=0)


def test_identical_and_disjoint_boxes():
    boxes = np.array([[0, 0, 10, 10], [20, 20, 30, 30], [0, 0, 10, 5]], dtype=np.float32)
    out = box_iou(boxes, boxes)
    np.testing.assert_array_equal(np.diag(out), [1, 1, 1])
    assert out[0, 1] == 0 and out[0, 2] == 0.5


def test_edge_case_boxes_match_reference_without_crashing():
    boxes = edge_case_boxes(np.float64)
    out = box_iou(boxes, boxes)
    np.testing.assert_allclose(out, reference_box_iou(boxes, boxes), rtol=1e-12, equal_nan=True)


def test_float32_overflow_behaves_like_float32_arithmetic():
    boxes = edge_case_boxes(np.float32)
    with np.errstate(all="ignore"):
        out = box_iou(boxes, boxes)
    assert out.shape == (8, 8)  # inf/NaN entries allowed, no crash


@pytest.mark.parametrize("n,m", [(0, 0), (0, 5), (5, 0)])
def test_empty_inputs_give_empty_outputs(rng, n, m):
    out = box_iou(random_boxes(rng, n, dtype=np.float32), random_boxes(rng, m, dtype=np.float32))
    assert out.shape == (n, m) and out.dtype == np.float32


@pytest.mark.parametrize(
    "b1,b2,error,words",
    [
        (np.zeros((3, 5), np.float32), np.zeros((2, 4), np.float32), ValueError, "boxes1"),
        (np.zeros((3, 4), np.float32), np.zeros((4,), np.float32), ValueError, "boxes2"),
        (np.zeros((3, 4), np.uint8), np.zeros((2, 4), np.uint8), TypeError, "boxes1"),
        (np.zeros((3, 4), np.int32), np.zeros((2, 4), np.int64), TypeError, "boxes2"),
        (np.zeros((3, 4), np.float32), np.zeros((2, 4), np.float64), TypeError, "boxes2"),
        ([[0, 0, 1, 1]], np.zeros((2, 4), np.float32), TypeError, "boxes1"),
    ],
)
def test_bad_input_is_refused_with_the_argument_named(b1, b2, error, words):
    with pytest.raises(error, match=words):
        box_iou(b1, b2)


@pytest.mark.skipif(torch is None, reason="needs torch")
class TestTorch:
    def test_mixed_frameworks_are_refused(self, rng):
        b = random_boxes(rng, 3, dtype=np.float32)
        with pytest.raises(TypeError, match="one framework"):
            box_iou(torch.from_numpy(b), b)

    @pytest.mark.cuda
    def test_cuda_matches_cpu(self, rng):
        for dtype, tol in [(torch.float32, 1e-6), (torch.float64, 1e-12), (torch.float16, 2e-3), (torch.bfloat16, 2e-2)]:
            b1 = torch.from_numpy(random_boxes(rng, 300)).to(dtype)
            b2 = torch.from_numpy(random_boxes(rng, 200)).to(dtype)
            expected = box_iou(b1.double(), b2.double())
            got = box_iou(b1.cuda(), b2.cuda()).cpu().double()
            torch.testing.assert_close(got, expected, atol=tol, rtol=0)


@pytest.mark.skipif(torch is None, reason="needs torch")
def test_backward_raises_rather_than_giving_a_wrong_gradient(rng):
    b = torch.from_numpy(random_boxes(rng, 4, dtype=np.float32)).requires_grad_()
    with pytest.raises(RuntimeError):
        box_iou(b, b.detach()).sum().backward()


@pytest.mark.skipif(torch is None, reason="needs torch for bfloat16")
@pytest.mark.parametrize("dtype", HALF_DTYPES)
def test_half_boxes_compute_in_float(rng, dtype):
    b1 = to_half(np.concatenate([random_boxes(rng, 29), edge_case_boxes()]), dtype)
    b2 = to_half(random_boxes(rng, 41), dtype)
    out = box_iou(b1, b2)
    with np.errstate(all="ignore"):
        assert_half_result(out, box_iou(b1.float(), b2.float()), reference_box_iou(b1.double(), b2.double()), dtype)
    if dtype == "float16":  # the numpy path takes float16 too
        np.testing.assert_array_equal(box_iou(b1.numpy(), b2.numpy()), out.numpy())


def reference_integer_box_iou(boxes1, boxes2):
    """torchvision's arithmetic for integer boxes: areas and intersections
    in int64, their ratio in float32."""
    b1, b2 = np.asarray(boxes1, np.int64), np.asarray(boxes2, np.int64)
    out = np.empty((len(b1), len(b2)), np.float32)
    with np.errstate(invalid="ignore", divide="ignore"):
        for i, a in enumerate(b1):
            for j, b in enumerate(b2):
                inter = max(min(a[2], b[2]) - max(a[0], b[0]), 0) * max(min(a[3], b[3]) - max(a[1], b[1]), 0)
                union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
                out[i, j] = np.float32(inter) / np.float32(union)
    return out


@pytest.mark.parametrize("dtype", [np.int32, np.int64])
def test_integer_boxes_give_float32(rng, dtype):
    b1 = np.concatenate([rng.integers(0, 50, (23, 2)), rng.integers(0, 50, (23, 2))], axis=1)
    b1[:, 2:] += b1[:, :2]
    b1 = np.concatenate([b1, [[5, 5, 5, 5], [7, 7, 3, 3], [-4, -4, 2, 2]]]).astype(dtype)  # point, inverted, negative
    b2 = b1[::-1].copy()
    out = box_iou(b1, b2)
    assert out.dtype == np.float32
    np.testing.assert_array_equal(out, reference_integer_box_iou(b1, b2))
    with np.errstate(all="ignore"):
        np.testing.assert_allclose(out, reference_box_iou(b1, b2), rtol=1e-6, equal_nan=True)
    if torch is not None:
        got = box_iou(torch.from_numpy(b1), torch.from_numpy(b2))
        assert got.dtype == torch.float32
        np.testing.assert_array_equal(got.numpy(), out)
