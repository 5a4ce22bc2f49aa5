import math

import numpy as np
import pytest

from detcore.ops import decode_boxes, encode_boxes
from detcore.ops.box_coding import DEFAULT_CLAMP
from helpers import HALF_DTYPES, assert_half_result, random_boxes, to_half

try:
    import torch
except ImportError:
    torch = None

try:  # only where torchvision is installed (not a detcore dependency)
    from torchvision.models.detection._utils import BoxCoder
except Exception:
    BoxCoder = None

RCNN_WEIGHTS = (10.0, 10.0, 5.0, 5.0)


def reference_decode(deltas, boxes, weights=(1, 1, 1, 1), clamp=DEFAULT_CLAMP):
    """Plain float64 loops. Also returns, per coordinate, the magnitude of
    the terms summed (|centre| + |half size|), the scale of rounding errors."""
    d = np.asarray(deltas, dtype=np.float64)
    b = np.asarray(boxes, dtype=np.float64)
    out, scale = np.empty_like(d), np.empty_like(d)
    wx, wy, ww, wh = weights
    with np.errstate(all="ignore"):
        for i in range(d.shape[0]):
            x1, y1, x2, y2 = b[i]
            w, h = x2 - x1, y2 - y1
            cx, cy = x1 + 0.5 * w, y1 + 0.5 * h
            for j in range(d.shape[1] // 4):
                dx, dy, dw, dh = d[i, 4 * j : 4 * j + 4]
                dw, dh = np.minimum(dw / ww, clamp), np.minimum(dh / wh, clamp)  # NaN stays NaN
                pcx, pcy = dx / wx * w + cx, dy / wy * h + cy
                half_w, half_h = 0.5 * np.exp(dw) * w, 0.5 * np.exp(dh) * h
                out[i, 4 * j : 4 * j + 4] = [pcx - half_w, pcy - half_h, pcx + half_w, pcy + half_h]
                sx, sy = abs(pcx) + abs(half_w) + abs(cx), abs(pcy) + abs(half_h) + abs(cy)
                scale[i, 4 * j : 4 * j + 4] = [sx, sy, sx, sy]
    return out, scale


def reference_encode(reference_boxes, proposals, weights=(1, 1, 1, 1)):
    """Plain float64 loops; also the scale of float32 rounding errors."""
    r = np.asarray(reference_boxes, dtype=np.float64)
    p = np.asarray(proposals, dtype=np.float64)
    out, scale = np.empty_like(r), np.empty_like(r)
    wx, wy, ww, wh = weights
    with np.errstate(all="ignore"):
        for i in range(len(r)):
            pw, ph = p[i, 2] - p[i, 0], p[i, 3] - p[i, 1]
            pcx, pcy = p[i, 0] + 0.5 * pw, p[i, 1] + 0.5 * ph
            gw, gh = r[i, 2] - r[i, 0], r[i, 3] - r[i, 1]
            gcx, gcy = r[i, 0] + 0.5 * gw, r[i, 1] + 0.5 * gh
            out[i] = [wx * (gcx - pcx) / pw, wy * (gcy - pcy) / ph, ww * math.log(gw / pw), wh * math.log(gh / ph)]
            scale[i] = [wx * (abs(gcx) + abs(pcx) + abs(r[i]).max() + abs(p[i]).max()) / pw,
                        wy * (abs(gcy) + abs(pcy) + abs(r[i]).max() + abs(p[i]).max()) / ph,
                        ww * (1 + abs(r[i]).max() / gw + abs(p[i]).max() / pw),
                        wh * (1 + abs(r[i]).max() / gh + abs(p[i]).max() / ph)]
    return out, scale


def assert_close_in_ulps(got, expected, scale, dtype, ulps=8):
    """|got - expected| <= ulps * eps(dtype) * scale, NaN where NaN."""
    eps = float(np.finfo(dtype).eps)
    got = np.asarray(got, dtype=np.float64)
    np.testing.assert_array_equal(np.isnan(got), np.isnan(expected))
    finite = np.isfinite(expected)
    np.testing.assert_array_equal(got[~finite & ~np.isnan(expected)], expected[~finite & ~np.isnan(expected)])
    err = np.abs(got[finite] - expected[finite])
    bound = ulps * eps * scale[finite]
    assert (err <= bound).all(), f"max error / bound = {(err / bound).max():.3g}"


def random_deltas(rng, n, k, std=1.0, dtype=np.float64):
    return rng.normal(0, std, (n, 4 * k)).astype(dtype)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("k", [1, 5])
@pytest.mark.parametrize("weights", [(1.0, 1.0, 1.0, 1.0), RCNN_WEIGHTS])
def test_decode_matches_reference(rng, dtype, k, weights):
    boxes = random_boxes(rng, 150, dtype=dtype)
    deltas = random_deltas(rng, 150, k, std=weights[2], dtype=dtype)
    out = decode_boxes(deltas, boxes, weights)
    assert out.dtype == dtype and out.shape == (150, 4 * k)
    expected, scale = reference_decode(deltas, boxes, weights)
    assert_close_in_ulps(out, expected, scale, dtype)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("weights", [(1.0, 1.0, 1.0, 1.0), RCNN_WEIGHTS, (2.0, 3.0, 0.5, 7.0)])
def test_encode_matches_reference(rng, dtype, weights):
    reference, proposals = random_boxes(rng, 200, dtype=dtype), random_boxes(rng, 200, dtype=dtype)
    out = encode_boxes(reference, proposals, weights)
    assert out.dtype == dtype and out.shape == (200, 4)
    expected, scale = reference_encode(reference, proposals, weights)
    assert_close_in_ulps(out, expected, scale, dtype)


@pytest.mark.parametrize("dtype,tol", [(np.float32, 1e-4), (np.float64, 1e-12)])
def test_decode_of_encode_is_identity(rng, dtype, tol):
    reference, proposals = random_boxes(rng, 300, dtype=dtype), random_boxes(rng, 300, dtype=dtype)
    deltas = encode_boxes(reference, proposals, RCNN_WEIGHTS)
    back = decode_boxes(deltas, proposals, RCNN_WEIGHTS)
    np.testing.assert_allclose(back, reference, rtol=0, atol=tol * 200)  # coordinates up to ~150


def test_zero_deltas_give_back_the_boxes_exactly(rng):
    boxes = np.round(random_boxes(rng, 50, dtype=np.float32))  # integer corners: centres and sizes exact
    out = decode_boxes(np.zeros((50, 8), np.float32), boxes)
    np.testing.assert_array_equal(out, np.concatenate([boxes, boxes], axis=1))


def test_clamp_limits_the_size_and_inf_turns_it_off():
    boxes = np.array([[10, 20, 30, 60]], dtype=np.float64)  # w 20, h 40, centre (20, 40)
    deltas = np.array([[0, 0, 50.0, -3.0, 0, 0, 2.0, 9.0]])
    out = decode_boxes(deltas, boxes, clamp=2.5)
    expected, _ = reference_decode(deltas, boxes, clamp=2.5)
    np.testing.assert_allclose(out, expected, rtol=1e-14)
    assert out[0, 2] - out[0, 0] == pytest.approx(20 * math.exp(2.5))  # dw 50 clamped
    assert out[0, 3] - out[0, 1] == pytest.approx(40 * math.exp(-3.0))  # below the clamp: untouched
    unclamped = decode_boxes(deltas, boxes, clamp=math.inf)
    assert unclamped[0, 2] - unclamped[0, 0] == pytest.approx(20 * math.exp(50))
    default = decode_boxes(deltas, boxes)
    assert default[0, 2] - default[0, 0] == pytest.approx(20 * 1000 / 16)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_huge_and_nan_deltas_never_crash(dtype):
    boxes = np.array([[0, 0, 10, 10]] * 6, dtype=dtype)
    deltas = np.array(
        [
            [0, 0, 1e30, 1e30],
            [0, 0, np.inf, -np.inf],
            [np.nan, 0, 0, 0],
            [0, 0, np.nan, 0],
            [1e30, -1e30, 0, 0],
            [np.inf, 0, 0, 0],
        ],
        dtype=dtype,
    )
    with np.errstate(all="ignore"):
        out = decode_boxes(deltas, boxes)
    expected, _ = reference_decode(deltas, boxes)
    np.testing.assert_allclose(out, expected.astype(dtype), rtol=1e-6, equal_nan=True)
    assert np.isfinite(out[:2]).all() and np.isnan(out[2, [0, 2]]).all() and np.isfinite(out[2, [1, 3]]).all()


def test_boxes_are_converted_to_the_dtype_of_deltas(rng):
    boxes = random_boxes(rng, 20, dtype=np.float64)
    deltas = random_deltas(rng, 20, 2, dtype=np.float32)
    out = decode_boxes(deltas, boxes)
    assert out.dtype == np.float32
    np.testing.assert_array_equal(out, decode_boxes(deltas, boxes.astype(np.float32)))


@pytest.mark.parametrize("n,k", [(0, 1), (0, 0), (5, 0)])
def test_empty_decode(n, k):
    out = decode_boxes(np.zeros((n, 4 * k), np.float32), np.zeros((n, 4), np.float32))
    assert out.shape == (n, 4 * k) and out.dtype == np.float32


_F = np.float32


@pytest.mark.parametrize(
    "deltas,boxes,kwargs,error,words",
    [
        (np.zeros((3, 5), _F), np.zeros((3, 4), _F), {}, ValueError, "deltas"),
        (np.zeros((4,), _F), np.zeros((1, 4), _F), {}, ValueError, "deltas"),
        (np.zeros((3, 4), _F), np.zeros((3, 3), _F), {}, ValueError, "boxes"),
        (np.zeros((3, 8), _F), np.zeros((2, 4), _F), {}, ValueError, "boxes"),
        (np.zeros((3, 4), np.int64), np.zeros((3, 4), np.int64), {}, TypeError, "deltas"),
        (np.zeros((3, 4), _F), np.zeros((3, 4), np.int32), {}, TypeError, "boxes"),
        ([[0.0, 0, 0, 0]], np.zeros((1, 4), _F), {}, TypeError, "deltas"),
        (np.zeros((3, 4), _F), np.zeros((3, 4), _F), dict(weights=(1, 1, 1)), TypeError, "weights"),
        (np.zeros((3, 4), _F), np.zeros((3, 4), _F), dict(weights=(1, 1, 0, 1)), ValueError, "weights"),
        (np.zeros((3, 4), _F), np.zeros((3, 4), _F), dict(weights=(1, -1, 1, 1)), ValueError, "weights"),
        (np.zeros((3, 4), _F), np.zeros((3, 4), _F), dict(weights=(1, 1, math.inf, 1)), ValueError, "weights"),
        (np.zeros((3, 4), _F), np.zeros((3, 4), _F), dict(weights=(1, 1, 1, math.nan)), ValueError, "weights"),
        (np.zeros((3, 4), _F), np.zeros((3, 4), _F), dict(weights=(1, 1, "1", 1)), TypeError, "weights"),
        (np.zeros((3, 4), _F), np.zeros((3, 4), _F), dict(weights=10.0), TypeError, "weights"),
        (np.zeros((3, 4), _F), np.zeros((3, 4), _F), dict(clamp=math.nan), ValueError, "clamp"),
        (np.zeros((3, 4), _F), np.zeros((3, 4), _F), dict(clamp="4"), TypeError, "clamp"),
        (np.zeros((3, 4), _F), np.zeros((3, 4), _F), dict(clamp=None), TypeError, "clamp"),
    ],
)
def test_decode_bad_input_is_refused_with_the_argument_named(deltas, boxes, kwargs, error, words):
    with pytest.raises(error, match=words):
        decode_boxes(deltas, boxes, **kwargs)


@pytest.mark.parametrize(
    "reference,proposals,kwargs,error,words",
    [
        (np.zeros((3, 5), _F), np.zeros((3, 4), _F), {}, ValueError, "reference_boxes"),
        (np.zeros((3, 4), _F), np.zeros((3,), _F), {}, ValueError, "proposals"),
        (np.zeros((3, 4), _F), np.zeros((2, 4), _F), {}, ValueError, "proposals"),
        (np.zeros((3, 4), np.int64), np.zeros((3, 4), np.int64), {}, TypeError, "reference_boxes"),
        (np.zeros((3, 4), _F), np.zeros((3, 4), np.float64), {}, TypeError, "proposals"),
        (np.zeros((3, 4), _F), np.zeros((3, 4), _F), dict(weights=(1, 1, 1, 0)), ValueError, "weights"),
        (np.zeros((3, 4), _F), np.zeros((3, 4), _F), dict(weights=[1, 1, 1, 1, 1]), TypeError, "weights"),
    ],
)
def test_encode_bad_input_is_refused_with_the_argument_named(reference, proposals, kwargs, error, words):
    with pytest.raises(error, match=words):
        encode_boxes(reference, proposals, **kwargs)


@pytest.mark.skipif(torch is None, reason="needs torch")
class TestTorch:
    def test_tensors_in_tensors_out(self, rng):
        boxes = random_boxes(rng, 30, dtype=np.float32)
        deltas = random_deltas(rng, 30, 4, dtype=np.float32)
        out = decode_boxes(torch.from_numpy(deltas), torch.from_numpy(boxes), RCNN_WEIGHTS)
        assert isinstance(out, torch.Tensor) and out.dtype == torch.float32
        np.testing.assert_array_equal(out.numpy(), decode_boxes(deltas, boxes, RCNN_WEIGHTS))
        enc = encode_boxes(torch.from_numpy(boxes), torch.from_numpy(boxes[::-1].copy()), RCNN_WEIGHTS)
        np.testing.assert_array_equal(enc.numpy(), encode_boxes(boxes, boxes[::-1].copy(), RCNN_WEIGHTS))

    def test_mixed_frameworks_are_refused(self, rng):
        boxes = random_boxes(rng, 3, dtype=np.float32)
        with pytest.raises(TypeError, match="one framework"):
            decode_boxes(torch.zeros(3, 4), boxes)

    def test_decode_gradcheck_both_inputs(self, rng):
        boxes = torch.from_numpy(random_boxes(rng, 6)).requires_grad_()
        deltas = torch.from_numpy(random_deltas(rng, 6, 3, std=0.5))
        deltas[:2, 2] = 4.0  # dw / ww = 0.8 > clamp: no gradient to those
        deltas.requires_grad_()
        fn = lambda d, b: decode_boxes(d, b, (2.0, 3.0, 5.0, 0.5), clamp=0.6)  # noqa: E731
        assert torch.autograd.gradcheck(fn, (deltas, boxes))
        (grad,) = torch.autograd.grad(fn(deltas, boxes).pow(2).sum(), deltas)
        assert (grad[:2, 2] == 0).all() and (grad[2:, 2] != 0).all()

    def test_decode_gradient_matches_autograd_of_a_plain_torch_decode(self, rng):
        boxes = torch.from_numpy(random_boxes(rng, 40)).requires_grad_()
        deltas = torch.from_numpy(random_deltas(rng, 40, 2, std=2.0)).requires_grad_()
        weights, clamp = RCNN_WEIGHTS, 0.3

        def plain(d, b):
            w, h = b[:, 2:3] - b[:, 0:1], b[:, 3:4] - b[:, 1:2]
            cx, cy = b[:, 0:1] + 0.5 * w, b[:, 1:2] + 0.5 * h
            pcx, pcy = d[:, 0::4] / weights[0] * w + cx, d[:, 1::4] / weights[1] * h + cy
            pw = torch.exp(torch.clamp(d[:, 2::4] / weights[2], max=clamp)) * w
            ph = torch.exp(torch.clamp(d[:, 3::4] / weights[3], max=clamp)) * h
            return torch.stack([pcx - 0.5 * pw, pcy - 0.5 * ph, pcx + 0.5 * pw, pcy + 0.5 * ph], dim=2).flatten(1)

        g = torch.from_numpy(rng.normal(size=(40, 8)))
        expected = torch.autograd.grad(plain(deltas, boxes), (deltas, boxes), g)
        got = torch.autograd.grad(decode_boxes(deltas, boxes, weights, clamp), (deltas, boxes), g)
        for e, a in zip(expected, got):
            torch.testing.assert_close(a, e, rtol=1e-12, atol=1e-12)

    def test_encode_output_is_a_target_without_grad(self, rng):
        boxes = torch.from_numpy(random_boxes(rng, 5)).requires_grad_()
        out = encode_boxes(boxes, boxes.detach() + 1)
        assert not out.requires_grad

    @pytest.mark.parametrize("dynamic", [False, True])
    def test_torch_compile_fullgraph_forward_and_backward(self, rng, dynamic):
        def loss(d, b, wx):
            decoded = decode_boxes(d, b, (wx, wx, 5.0, 5.0))
            target = encode_boxes(b, b.flip(0), (wx, wx, 5.0, 5.0))
            return decoded.pow(2).sum() + target.sum()

        compiled = torch.compile(loss, fullgraph=True, dynamic=dynamic)
        for n, wx in [(12, 10.0), (7, 2.0)]:
            boxes = torch.from_numpy(random_boxes(rng, n, dtype=np.float32))
            deltas = torch.from_numpy(random_deltas(rng, n, 2, dtype=np.float32))
            d1, d2 = deltas.clone().requires_grad_(), deltas.clone().requires_grad_()
            expected, got = loss(d1, boxes, wx), compiled(d2, boxes, wx)
            torch.testing.assert_close(got, expected)
            expected.backward()
            got.backward()
            torch.testing.assert_close(d2.grad, d1.grad)

    @pytest.mark.skipif(BoxCoder is None, reason="needs torchvision")
    @pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
    def test_equal_to_torchvision_box_coder(self, rng, dtype):
        coder = BoxCoder(RCNN_WEIGHTS)
        proposals = torch.from_numpy(random_boxes(rng, 500, size=800.0, max_wh=300.0)).to(dtype)
        reference = torch.from_numpy(random_boxes(rng, 500, size=800.0, max_wh=300.0)).to(dtype)
        deltas = torch.from_numpy(random_deltas(rng, 500, 91, std=4.0)).to(dtype)
        eps = torch.finfo(dtype).eps
        decoded = decode_boxes(deltas, proposals, RCNN_WEIGHTS)
        expected = coder.decode_single(deltas, proposals)
        _, scale = reference_decode(deltas.numpy(), proposals.numpy(), RCNN_WEIGHTS)
        assert ((decoded - expected).abs() <= 4 * eps * torch.from_numpy(scale).to(dtype)).all()
        encoded = encode_boxes(reference, proposals, RCNN_WEIGHTS)
        _, scale = reference_encode(reference.numpy(), proposals.numpy(), RCNN_WEIGHTS)
        expected = coder.encode_single(reference, proposals)
        assert ((encoded - expected).abs() <= 4 * eps * torch.from_numpy(scale).to(dtype)).all()
        # Where no exp or log is involved (dw = dh = 0, equal sizes) the arithmetic is the same, bit for bit.
        deltas[:, 2::4] = 0
        deltas[:, 3::4] = 0
        assert torch.equal(decode_boxes(deltas, proposals, RCNN_WEIGHTS), coder.decode_single(deltas, proposals))
        shifted = reference.clone()
        shifted[:, 2:] = shifted[:, :2] + (proposals[:, 2:] - proposals[:, :2])
        assert torch.equal(encode_boxes(shifted, proposals, RCNN_WEIGHTS)[:, :2],
                           coder.encode_single(shifted, proposals)[:, :2])

    @pytest.mark.cuda
    def test_cuda_matches_cpu(self, rng):
        tolerances = [(torch.float32, 1e-5), (torch.float64, 1e-12), (torch.float16, 4e-3), (torch.bfloat16, 3e-2)]
        boxes64 = torch.from_numpy(random_boxes(rng, 3000, size=800.0, max_wh=300.0))
        deltas64 = torch.from_numpy(random_deltas(rng, 3000, 3))
        for dtype, tol in tolerances:
            boxes, deltas = boxes64.to(dtype), deltas64.to(dtype)
            expected = decode_boxes(deltas.double(), boxes.double(), RCNN_WEIGHTS)
            got = decode_boxes(deltas.cuda(), boxes.cuda(), RCNN_WEIGHTS)
            assert got.device.type == "cuda" and got.dtype == dtype
            torch.testing.assert_close(got.cpu().double(), expected, rtol=tol, atol=tol * 1000)
            proposals = boxes.flip(0)
            expected = encode_boxes(boxes.double(), proposals.double(), RCNN_WEIGHTS)
            got = encode_boxes(boxes.cuda(), proposals.cuda(), RCNN_WEIGHTS)
            torch.testing.assert_close(got.cpu().double(), expected, rtol=tol, atol=tol * 100)

    @pytest.mark.cuda
    def test_cuda_gradient_matches_cpu(self, rng):
        boxes = torch.from_numpy(random_boxes(rng, 500))
        deltas = torch.from_numpy(random_deltas(rng, 500, 4))
        deltas[::7, 2] = 9.0  # clamped
        g = torch.from_numpy(rng.normal(size=(500, 16)))
        grads = []
        for device in ("cpu", "cuda"):
            d, b = deltas.to(device).requires_grad_(), boxes.to(device).requires_grad_()
            grads.append(torch.autograd.grad(decode_boxes(d, b, RCNN_WEIGHTS), (d, b), g.to(device)))
        for c, a in zip(*grads):  # exp and FMA contraction on the device: not bit for bit
            torch.testing.assert_close(a.cpu(), c, rtol=1e-10, atol=1e-9)

    @pytest.mark.cuda
    def test_cuda_empty_and_nan(self):
        empty = decode_boxes(torch.zeros(0, 8, device="cuda"), torch.zeros(0, 4, device="cuda"))
        assert empty.shape == (0, 8) and empty.device.type == "cuda"
        deltas = torch.tensor([[math.nan, 0, 1e30, 0]], device="cuda")
        out = decode_boxes(deltas, torch.tensor([[0.0, 0, 10, 10]], device="cuda"))
        torch.testing.assert_close(out.cpu(), decode_boxes(deltas.cpu(), torch.tensor([[0.0, 0, 10, 10]])),
                                   equal_nan=True)


@pytest.mark.skipif(torch is None, reason="needs torch for bfloat16")
@pytest.mark.parametrize("dtype", HALF_DTYPES)
def test_half_precision_coding_computes_in_float(rng, dtype):
    boxes, proposals = to_half(random_boxes(rng, 60), dtype), to_half(random_boxes(rng, 60), dtype)
    deltas = to_half(random_deltas(rng, 60, 3, std=RCNN_WEIGHTS[2]), dtype).requires_grad_()
    boxes.requires_grad_()

    out = decode_boxes(deltas, boxes, RCNN_WEIGHTS)
    deltas32, boxes32 = deltas.detach().float().requires_grad_(), boxes.detach().float().requires_grad_()
    out32 = decode_boxes(deltas32, boxes32, RCNN_WEIGHTS)
    expected, scale = reference_decode(deltas.detach().double(), boxes.detach().double(), RCNN_WEIGHTS)
    assert_half_result(out.detach(), out32.detach(), expected, dtype, scale=scale)

    grad = to_half(rng.standard_normal(out.shape), dtype)
    out.backward(grad)
    out32.backward(grad.float())
    torch.testing.assert_close(deltas.grad, deltas32.grad.to(deltas.grad.dtype), rtol=0, atol=0)
    torch.testing.assert_close(boxes.grad, boxes32.grad.to(boxes.grad.dtype), rtol=0, atol=0)

    encoded = encode_boxes(boxes.detach(), proposals, RCNN_WEIGHTS)
    expected, scale = reference_encode(boxes.detach().double(), proposals.double(), RCNN_WEIGHTS)
    assert_half_result(encoded, encode_boxes(boxes.detach().float(), proposals.float(), RCNN_WEIGHTS), expected,
                       dtype, scale=scale)
    if dtype == "float16":  # the numpy path
        np.testing.assert_array_equal(decode_boxes(deltas.detach().numpy(), boxes.detach().numpy(), RCNN_WEIGHTS),
                                      out.detach().numpy())
