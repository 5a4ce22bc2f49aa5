"""generalized_box_iou_loss, distance_box_iou_loss, complete_box_iou_loss."""

import math

import numpy as np
import pytest

from detcore.ops import complete_box_iou_loss, distance_box_iou_loss, generalized_box_iou_loss
from helpers import DLPackArray, edge_case_boxes, random_boxes

try:
    import torch
except ImportError:
    torch = None

LOSSES = {
    "generalized": generalized_box_iou_loss,
    "distance": distance_box_iou_loss,
    "complete": complete_box_iou_loss,
}


def reference(variant, boxes1, boxes2, eps=1e-7):
    """Per-pair float64 loop of the losses in torchvision's form (the
    intersection counts only when both overlaps are positive; the complete
    loss' distance part uses eps = 1e-7, its alpha `eps`)."""
    out = []
    with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
        for p, g in zip(np.asarray(boxes1, np.float64), np.asarray(boxes2, np.float64)):
            iw, ih = min(p[2], g[2]) - max(p[0], g[0]), min(p[3], g[3]) - max(p[1], g[1])
            inter = iw * ih if iw > 0 and ih > 0 else 0.0
            union = (p[2] - p[0]) * (p[3] - p[1]) + (g[2] - g[0]) * (g[3] - g[1]) - inter
            cw, ch = max(p[2], g[2]) - min(p[0], g[0]), max(p[3], g[3]) - min(p[1], g[1])
            if variant == "generalized":
                iou = inter / (union + eps)
                out.append(1 - (iou - (cw * ch - union) / (cw * ch + eps)))
                continue
            iou = inter / (union + (1e-7 if variant == "complete" else eps))
            centre = ((p[0] + p[2]) / 2 - (g[0] + g[2]) / 2) ** 2 + ((p[1] + p[3]) / 2 - (g[1] + g[3]) / 2) ** 2
            loss = 1 - iou + centre / (cw**2 + ch**2 + (1e-7 if variant == "complete" else eps))
            if variant == "complete":
                v = (
                    4
                    / math.pi**2
                    * (math.atan((g[2] - g[0]) / (g[3] - g[1])) - math.atan((p[2] - p[0]) / (p[3] - p[1]))) ** 2
                )
                loss += v / (1 - iou + v + eps) * v
            out.append(loss)
    return np.array(out, dtype=np.float64)


def reduce(values, reduction):
    if reduction == "none":
        return values
    if reduction == "sum":
        return values.sum()
    return values.mean() if len(values) else 0.0


def pairs(rng, n, dtype=np.float64):
    """Paired boxes that overlap, touch or are disjoint."""
    b1 = random_boxes(rng, n, size=60, dtype=dtype)
    return b1, random_boxes(rng, n, size=60, dtype=dtype)


@pytest.mark.parametrize("variant", list(LOSSES))
@pytest.mark.parametrize("reduction", ["none", "sum", "mean"])
@pytest.mark.parametrize("dtype,rtol", [(np.float32, 2e-5), (np.float64, 1e-12)])
def test_random_pairs_match_reference(rng, variant, reduction, dtype, rtol):
    b1, b2 = pairs(rng, 41, dtype)
    out = LOSSES[variant](b1, b2, reduction=reduction)
    assert out.dtype == dtype and out.shape == ((41,) if reduction == "none" else ())
    np.testing.assert_allclose(
        out, reduce(reference(variant, b1, b2), reduction), rtol=rtol, atol=1e-6 * (dtype == np.float32)
    )


@pytest.mark.parametrize("variant", list(LOSSES))
def test_eps_and_any_leading_shape(rng, variant):
    b1, b2 = pairs(rng, 6)
    expected = reference(variant, b1, b2, eps=0.5)
    np.testing.assert_allclose(
        LOSSES[variant](b1.reshape(2, 3, 4), b2.reshape(2, 3, 4), eps=0.5), expected.reshape(2, 3)
    )
    single = LOSSES[variant](b1[0], b2[0], eps=0.5)
    assert single.shape == () and single == pytest.approx(expected[0])


@pytest.mark.parametrize("variant", list(LOSSES))
def test_edge_cases_match_reference(variant):
    boxes = edge_case_boxes(np.float64)
    b1, b2 = boxes, boxes[::-1].copy()
    np.testing.assert_allclose(LOSSES[variant](b1, b2), reference(variant, b1, b2), rtol=1e-12, equal_nan=True)


@pytest.mark.parametrize("variant", list(LOSSES))
def test_empty(variant):
    empty = np.zeros((0, 4), np.float32)
    assert LOSSES[variant](empty, empty).shape == (0,)
    assert LOSSES[variant](empty, empty, reduction="sum") == 0
    assert LOSSES[variant](empty, empty, reduction="mean") == 0  # torchvision: 0, not NaN


def test_bad_input_names_the_argument(rng):
    b1, b2 = pairs(rng, 3)
    with pytest.raises(ValueError, match="boxes2"):
        generalized_box_iou_loss(b1, b2[:2])
    with pytest.raises(ValueError, match="boxes1"):
        generalized_box_iou_loss(b1[:, :3], b2[:, :3])
    with pytest.raises(ValueError, match="reduction"):
        distance_box_iou_loss(b1, b2, reduction="max")
    with pytest.raises(ValueError, match="eps"):
        complete_box_iou_loss(b1, b2, eps=float("nan"))
    with pytest.raises(TypeError, match="boxes2"):
        complete_box_iou_loss(b1, b2.astype(np.float32))


@pytest.mark.skipif(torch is None, reason="needs torch")
class TestTorch:
    @pytest.mark.parametrize("variant", list(LOSSES))
    @pytest.mark.parametrize("reduction", ["none", "sum", "mean"])
    def test_gradcheck(self, rng, variant, reduction):
        b1, b2 = pairs(rng, 7)
        b1[0], b2[0] = [0, 0, 10, 10], [20, 20, 30, 40]  # disjoint: no gradient through the intersection
        if variant == "complete":
            # torchvision holds alpha constant, so its gradient is the true one
            # only where alpha's own derivative is multiplied by zero: v = 0,
            # i.e. boxes of equal aspect ratios (scaled and shifted copies).
            b2 = b1 * rng.uniform(0.5, 1.5, (7, 1)) + np.tile(rng.uniform(-5, 5, (7, 2)), 2)
        t1 = torch.from_numpy(b1).requires_grad_()
        t2 = torch.from_numpy(b2).requires_grad_()
        assert torch.autograd.gradcheck(lambda a, b: LOSSES[variant](a, b, reduction=reduction), (t1, t2))

    @pytest.mark.parametrize("variant", list(LOSSES))
    def test_gradient_matches_autograd_of_reference_formula(self, rng, variant):
        # The same formula composed of torch ops, differentiated by autograd,
        # including ties of min/max (split in halves, as torch.minimum).
        b1, b2 = pairs(rng, 5)
        b2[1] = b1[1]  # identical boxes: every min/max ties
        b2[2, 0] = b1[2, 0]
        t1, t2 = torch.from_numpy(b1).requires_grad_(), torch.from_numpy(b2).requires_grad_()
        LOSSES[variant](t1, t2, reduction="sum").backward()
        r1, r2 = torch.from_numpy(b1).requires_grad_(), torch.from_numpy(b2).requires_grad_()
        composed(variant, r1, r2).sum().backward()
        torch.testing.assert_close(t1.grad, r1.grad)
        torch.testing.assert_close(t2.grad, r2.grad)

    @pytest.mark.parametrize("variant", list(LOSSES))
    def test_torch_dlpack_script_and_opcheck(self, rng, variant):
        b1, b2 = pairs(rng, 8, np.float32)
        expected = LOSSES[variant](b1, b2)
        t1, t2 = torch.from_numpy(b1), torch.from_numpy(b2)
        np.testing.assert_array_equal(LOSSES[variant](t1, t2).numpy(), expected)
        np.testing.assert_array_equal(LOSSES[variant](DLPackArray(b1), DLPackArray(b2)), expected)
        scripted = torch.jit.script(LOSSES[variant])
        np.testing.assert_array_equal(scripted(t1, t2, "none", 1e-7).numpy(), expected)
        op = getattr(torch.ops.detcore, f"{variant}_box_iou_loss").default
        torch.library.opcheck(op, (t1.double().requires_grad_(), t2.double().requires_grad_(), "mean", 1e-7))

    def test_compile(self, rng):
        b1, b2 = pairs(rng, 8, np.float32)
        t1, t2 = torch.from_numpy(b1).requires_grad_(), torch.from_numpy(b2)
        compiled = torch.compile(lambda a, b: complete_box_iou_loss(a, b, reduction="mean"), fullgraph=True)
        loss = compiled(t1, t2)
        loss.backward()
        assert loss.item() == pytest.approx(float(reduce(reference("complete", b1, b2), "mean")), rel=1e-5)
        assert t1.grad is not None and torch.isfinite(t1.grad).all()

    def test_second_derivative_raises(self, rng):
        b1, b2 = pairs(rng, 3)
        t1 = torch.from_numpy(b1).requires_grad_()
        loss = generalized_box_iou_loss(t1, torch.from_numpy(b2), reduction="sum")
        (g,) = torch.autograd.grad(loss, t1, create_graph=True)
        assert not g.requires_grad or pytest.raises(RuntimeError, g.sum().backward)

    @pytest.mark.cuda
    @pytest.mark.parametrize("variant", list(LOSSES))
    @pytest.mark.parametrize("reduction", ["none", "sum", "mean"])
    def test_cuda_matches_cpu(self, rng, variant, reduction):
        b1, b2 = pairs(rng, 3000, np.float32)
        results = []
        for device in ("cpu", "cuda"):
            t1 = torch.from_numpy(b1).to(device).requires_grad_()
            t2 = torch.from_numpy(b2).to(device).requires_grad_()
            loss = LOSSES[variant](t1, t2, reduction=reduction)
            loss.sum().backward()
            results.append((loss.detach().cpu(), t1.grad.cpu(), t2.grad.cpu()))
        for cpu, gpu in zip(*results):
            torch.testing.assert_close(gpu, cpu, rtol=1e-4, atol=1e-5)
        again = LOSSES[variant](torch.from_numpy(b1).cuda(), torch.from_numpy(b2).cuda(), reduction=reduction)
        assert torch.equal(again.cpu(), results[1][0]) or reduction == "none"


def composed(variant, b1, b2, eps=1e-7):
    """The losses as torch expressions, for autograd's gradient."""
    x1, y1, x2, y2 = b1.unbind(-1)
    g1, h1, g2, h2 = b2.unbind(-1)
    iw, ih = torch.minimum(x2, g2) - torch.maximum(x1, g1), torch.minimum(y2, h2) - torch.maximum(y1, h1)
    inter = torch.where((iw > 0) & (ih > 0), iw * ih, torch.zeros_like(iw))
    union = (x2 - x1) * (y2 - y1) + (g2 - g1) * (h2 - h1) - inter
    iou = inter / (union + eps)
    cw = torch.maximum(x2, g2) - torch.minimum(x1, g1)
    ch = torch.maximum(y2, h2) - torch.minimum(y1, h1)
    if variant == "generalized":
        return 1 - (iou - (cw * ch - union) / (cw * ch + eps))
    centre = ((x1 + x2) / 2 - (g1 + g2) / 2) ** 2 + ((y1 + y2) / 2 - (h1 + h2) / 2) ** 2
    loss = 1 - iou + centre / (cw**2 + ch**2 + eps)
    if variant == "complete":
        v = 4 / math.pi**2 * (torch.atan((g2 - g1) / (h2 - h1)) - torch.atan((x2 - x1) / (y2 - y1))) ** 2
        with torch.no_grad():
            alpha = v / (1 - iou + v + eps)
        loss = loss + alpha * v
    return loss


@pytest.mark.skipif(torch is None, reason="needs torch")
@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
def test_cpu_half_precision_computes_in_float32(rng, dtype):
    from detcore.ops import generalized_box_iou, soft_nms

    half = getattr(torch, dtype)
    b1, b2 = (torch.from_numpy(b).to(half) for b in pairs(rng, 9))
    t1 = b1.clone().requires_grad_()
    loss = complete_box_iou_loss(t1, b2, reduction="sum")
    loss.backward()
    w1 = b1.float().requires_grad_()
    expected = complete_box_iou_loss(w1, b2.float(), reduction="sum")
    expected.backward()
    assert loss.dtype == half and t1.grad.dtype == half
    torch.testing.assert_close(loss, expected.to(half))
    torch.testing.assert_close(t1.grad, w1.grad.to(half))
    torch.testing.assert_close(generalized_box_iou(b1, b2), generalized_box_iou(b1.float(), b2.float()).to(half))
    scores = torch.rand(9).to(half)
    keep, kept = soft_nms(b1, scores)
    keep32, kept32 = soft_nms(b1.float(), scores.float())
    assert torch.equal(keep, keep32) and kept.dtype == half
    torch.testing.assert_close(kept, kept32.to(half))
