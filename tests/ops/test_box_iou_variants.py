"""generalized_box_iou, distance_box_iou, complete_box_iou (pairwise)."""

import math

import numpy as np
import pytest

from detcore.ops import box_iou, complete_box_iou, distance_box_iou, generalized_box_iou
from helpers import DLPackArray, edge_case_boxes, random_boxes

try:
    import torch
except ImportError:
    torch = None

OPS = {"generalized": generalized_box_iou, "distance": distance_box_iou, "complete": complete_box_iou}


def reference(variant, boxes1, boxes2, eps=1e-7):
    """Plain float64 loops of the papers' formulas, in torchvision's form."""
    b1 = np.asarray(boxes1, dtype=np.float64)
    b2 = np.asarray(boxes2, dtype=np.float64)
    out = np.empty((len(b1), len(b2)))
    with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
        for i, a in enumerate(b1):
            for j, b in enumerate(b2):
                inter = max(min(a[2], b[2]) - max(a[0], b[0]), 0.0) * max(min(a[3], b[3]) - max(a[1], b[1]), 0.0)
                union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
                iou = np.float64(inter) / union
                cw = max(max(a[2], b[2]) - min(a[0], b[0]), 0.0)
                ch = max(max(a[3], b[3]) - min(a[1], b[1]), 0.0)
                if variant == "generalized":
                    out[i, j] = iou - (cw * ch - union) / np.float64(cw * ch)
                    continue
                centre = ((a[0] + a[2]) / 2 - (b[0] + b[2]) / 2) ** 2 + ((a[1] + a[3]) / 2 - (b[1] + b[3]) / 2) ** 2
                diou = iou - centre / (cw**2 + ch**2 + eps)
                if variant == "distance":
                    out[i, j] = diou
                    continue
                v = (
                    4
                    / math.pi**2
                    * (np.arctan((a[2] - a[0]) / (a[3] - a[1])) - np.arctan((b[2] - b[0]) / (b[3] - b[1]))) ** 2
                )
                out[i, j] = diou - v / (1 - iou + v + eps) * v
    return out


@pytest.mark.parametrize("variant", list(OPS))
@pytest.mark.parametrize("dtype,atol", [(np.float32, 2e-6), (np.float64, 1e-12)])
def test_random_boxes_match_reference(rng, variant, dtype, atol):
    b1 = random_boxes(rng, 23, dtype=dtype)
    b2 = random_boxes(rng, 31, dtype=dtype)
    out = OPS[variant](b1, b2)
    assert out.dtype == dtype and out.shape == (23, 31)
    np.testing.assert_allclose(out, reference(variant, b1, b2), atol=atol, rtol=0)


@pytest.mark.parametrize("variant", ["distance", "complete"])
def test_eps_is_used(rng, variant):
    b1, b2 = random_boxes(rng, 5), random_boxes(rng, 6)
    np.testing.assert_allclose(OPS[variant](b1, b2, eps=3.0), reference(variant, b1, b2, eps=3.0), atol=1e-12)


def test_known_values():
    a = np.array([[0, 0, 10, 10]], dtype=np.float64)
    b = np.array([[0, 0, 10, 10], [20, 0, 30, 10], [0, 0, 5, 10]], dtype=np.float64)
    # Disjoint boxes 10 apart: union 200, enclosing box 30 x 10.
    np.testing.assert_allclose(generalized_box_iou(a, b), [[1.0, -(300 - 200) / 300, 0.5]])
    np.testing.assert_allclose(distance_box_iou(a, b, eps=0.0), [[1.0, -400 / 1000, 0.5 - 6.25 / 200]])
    assert complete_box_iou(a, b)[0, 0] == pytest.approx(1.0)


@pytest.mark.parametrize("variant", list(OPS))
def test_edge_case_boxes_match_reference(variant):
    boxes = edge_case_boxes(np.float64)
    out = OPS[variant](boxes, boxes)
    np.testing.assert_allclose(out, reference(variant, boxes, boxes), rtol=1e-12, equal_nan=True)


@pytest.mark.parametrize("variant", list(OPS))
@pytest.mark.parametrize("n,m", [(0, 0), (0, 5), (4, 0)])
def test_empty(rng, variant, n, m):
    out = OPS[variant](random_boxes(rng, n, dtype=np.float32), random_boxes(rng, m, dtype=np.float32))
    assert out.shape == (n, m) and out.dtype == np.float32


def test_integer_boxes_are_taken_as_float32(rng):
    b = random_boxes(rng, 7).round()
    out = generalized_box_iou(b.astype(np.int64), b.astype(np.int32))
    assert out.dtype == np.float32
    np.testing.assert_allclose(out, reference("generalized", b, b), atol=1e-6)


def test_threads_do_not_change_the_result(rng):
    import detcore

    b1, b2 = random_boxes(rng, 300, dtype=np.float32), random_boxes(rng, 200, dtype=np.float32)
    before = detcore._C.num_threads()
    try:
        detcore._C.set_num_threads(1)
        one = complete_box_iou(b1, b2)
    finally:
        detcore._C.set_num_threads(before)
    np.testing.assert_array_equal(one, complete_box_iou(b1, b2))


def test_bad_input_names_the_argument(rng):
    b = random_boxes(rng, 3)
    with pytest.raises(ValueError, match="boxes1"):
        generalized_box_iou(b[:, :3], b)
    with pytest.raises(ValueError, match="boxes2"):
        distance_box_iou(b, b[None])
    with pytest.raises(TypeError, match="boxes2"):
        complete_box_iou(b, b.astype(np.float32))
    with pytest.raises(ValueError, match="eps"):
        distance_box_iou(b, b, eps=-1.0)
    with pytest.raises(TypeError, match="eps"):
        complete_box_iou(b, b, eps="x")


@pytest.mark.skipif(torch is None, reason="needs torch")
class TestTorch:
    @pytest.mark.parametrize("variant", list(OPS))
    def test_torch_and_dlpack_match_numpy(self, rng, variant):
        b1, b2 = random_boxes(rng, 9, dtype=np.float32), random_boxes(rng, 4, dtype=np.float32)
        expected = OPS[variant](b1, b2)
        got = OPS[variant](torch.from_numpy(b1), torch.from_numpy(b2))
        assert isinstance(got, torch.Tensor)
        np.testing.assert_array_equal(got.numpy(), expected)
        np.testing.assert_array_equal(OPS[variant](DLPackArray(b1), DLPackArray(b2)), expected)

    @pytest.mark.parametrize("variant", list(OPS))
    def test_script_compile_and_opcheck(self, rng, variant):
        b1 = torch.from_numpy(random_boxes(rng, 6, dtype=np.float32))
        b2 = torch.from_numpy(random_boxes(rng, 5, dtype=np.float32))
        expected = OPS[variant](b1, b2)
        torch.testing.assert_close(torch.jit.script(OPS[variant])(b1, b2), expected, rtol=0, atol=0)
        torch.testing.assert_close(torch.compile(OPS[variant], fullgraph=True)(b1, b2), expected, rtol=0, atol=0)
        torch.library.opcheck(getattr(torch.ops.detcore, f"{variant}_box_iou").default, (b1, b2, 1e-7))

    @pytest.mark.cuda
    @pytest.mark.parametrize("variant", list(OPS))
    @pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.float16])
    def test_cuda_matches_cpu(self, rng, variant, dtype):
        b1 = torch.from_numpy(random_boxes(rng, 70)).to(dtype)
        b2 = torch.from_numpy(random_boxes(rng, 90)).to(dtype)
        cpu = OPS[variant](b1.float(), b2.float())
        gpu = OPS[variant](b1.cuda(), b2.cuda())
        assert gpu.dtype == dtype and gpu.is_cuda
        tol = 1e-2 if dtype == torch.float16 else 1e-5
        torch.testing.assert_close(gpu.cpu().float(), cpu, atol=tol, rtol=0)


def test_box_iou_is_the_iou_term_of_generalized(rng):
    # generalized IoU of boxes that overlap their enclosing box completely is
    # their IoU: nested boxes.
    a = np.array([[0, 0, 10, 10]], dtype=np.float64)
    b = np.array([[2, 2, 5, 5]], dtype=np.float64)
    np.testing.assert_allclose(generalized_box_iou(a, b), box_iou(a, b))
