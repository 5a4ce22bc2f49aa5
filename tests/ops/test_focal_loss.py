import numpy as np
import pytest

import detcore
from detcore.ops import sigmoid_focal_loss

try:
    import torch
except ImportError:
    torch = None

needs_torch = pytest.mark.skipif(torch is None, reason="needs torch")


def reference_focal_loss(x, t, alpha=0.25, gamma=2.0, reduction="none"):
    """torchvision's formula in float64 numpy. BCE in its stable form, and
    1 - p_t written as p (1 - t) + (1 - p) t with 1 - p = sigmoid(-x), which
    is the same number without the cancellation of 1 - p_t near p_t = 1."""
    x = np.asarray(x, dtype=np.float64)
    t = np.asarray(t, dtype=np.float64)
    with np.errstate(over="ignore", invalid="ignore"):
        p = 1.0 / (1.0 + np.exp(-x))
        one_minus_p = 1.0 / (1.0 + np.exp(x))
        ce = np.maximum(x, 0.0) - x * t + np.log1p(np.exp(-np.abs(x)))
        one_minus_p_t = p * (1 - t) + one_minus_p * t
        loss = ce * one_minus_p_t**gamma
        if alpha >= 0:
            loss = (alpha * t + (1 - alpha) * (1 - t)) * loss
    if reduction == "sum":
        return loss.sum()
    if reduction == "mean":
        return loss.mean() if loss.size else np.float64(np.nan)
    return loss


def reference_grad(x, t, alpha=0.25, gamma=2.0, h=1e-6):
    """d loss / d x per element by central differences of the reference."""
    x = np.asarray(x, dtype=np.float64)
    return (reference_focal_loss(x + h, t, alpha, gamma) - reference_focal_loss(x - h, t, alpha, gamma)) / (2 * h)


def one_hot(labels, classes, dtype=np.float64):
    """Labels (N,) to (N, C) targets; label C (background) and ignored
    (negative) rows are all zero."""
    out = np.zeros((len(labels), classes), dtype=dtype)
    rows = np.nonzero((labels >= 0) & (labels < classes))[0]
    out[rows, labels[rows]] = 1
    return out


def random_problem(rng, n=37, classes=11, dtype=np.float64, scale=3.0):
    x = (rng.standard_normal((n, classes)) * scale).astype(dtype)
    labels = rng.integers(-1, classes + 1, n)  # -1 ignored, classes = background
    return x, labels


TOLERANCE = {np.float32: dict(rtol=2e-5, atol=2e-6), np.float64: dict(rtol=1e-11, atol=1e-13)}


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("reduction", ["none", "sum", "mean"])
@pytest.mark.parametrize("alpha,gamma", [(0.25, 2.0), (-1.0, 2.0), (0.5, 0.0), (0.25, 1.0), (0.75, 1.5), (0.1, 0.3)])
def test_float_targets_match_reference(rng, dtype, reduction, alpha, gamma):
    x, labels = random_problem(rng, dtype=dtype)
    t = one_hot(labels, x.shape[1], dtype)
    t[::3] = rng.uniform(0, 1, t[::3].shape)  # soft targets too
    out = sigmoid_focal_loss(x, t, alpha=alpha, gamma=gamma, reduction=reduction)
    expected = reference_focal_loss(x, t, alpha, gamma, reduction)
    assert out.dtype == dtype and out.shape == np.shape(expected)
    tol = dict(TOLERANCE[dtype])
    if reduction == "sum":
        tol["atol"] *= x.size
    np.testing.assert_allclose(out, expected, **tol)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("reduction", ["none", "sum", "mean"])
def test_labels_equal_one_hot_of_the_kept_rows(rng, dtype, reduction):
    x, labels = random_problem(rng, dtype=dtype)
    kept = labels >= 0
    out = sigmoid_focal_loss(x, labels, reduction=reduction)
    # torchvision on the one-hot targets of the rows that are not ignored.
    expected = reference_focal_loss(x[kept], one_hot(labels[kept], x.shape[1]), reduction=reduction)
    if reduction == "none":
        assert out.shape == x.shape
        np.testing.assert_array_equal(out[~kept], 0)
        out = out[kept]
    np.testing.assert_allclose(out, expected, rtol=TOLERANCE[dtype]["rtol"] * 10, atol=TOLERANCE[dtype]["atol"] * x.size)


def test_background_label_is_an_all_zero_row(rng):
    x = rng.standard_normal((4, 5))
    out = sigmoid_focal_loss(x, np.full(4, 5, dtype=np.int64))
    np.testing.assert_allclose(out, reference_focal_loss(x, np.zeros_like(x)), rtol=1e-12)


def test_sum_is_bitwise_the_same_for_any_thread_count(rng):
    x = rng.standard_normal((3000, 80)).astype(np.float32)
    labels = rng.integers(-1, 81, 3000)
    previous = detcore.num_threads()
    try:
        results = []
        for threads in (1, 2, 3, 5):
            detcore.set_num_threads(threads)
            results.append(
                (
                    sigmoid_focal_loss(x, labels, reduction="sum"),
                    sigmoid_focal_loss(x, (x > 0.5).astype(np.float32), reduction="mean"),
                )
            )
    finally:
        detcore.set_num_threads(previous)
    for r in results[1:]:
        assert r[0].tobytes() == results[0][0].tobytes() and r[1].tobytes() == results[0][1].tobytes()


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("gamma", [0.0, 0.5, 2.0])
def test_extreme_logits_give_finite_loss_and_gradient(dtype, gamma):
    x = np.array([[-1e4, -100, -30, 0, 30, 100, 1e4]], dtype=dtype).repeat(2, 0)
    t = np.stack([np.zeros(7), np.ones(7)]).astype(dtype)
    out = sigmoid_focal_loss(x, t, gamma=gamma)
    assert np.isfinite(out).all()
    np.testing.assert_allclose(out, reference_focal_loss(x, t, gamma=gamma), rtol=1e-5, atol=1e-30)
    if torch is not None:
        xt = torch.from_numpy(x).requires_grad_()
        sigmoid_focal_loss(xt, torch.from_numpy(t), gamma=gamma, reduction="sum").backward()
        grad = xt.grad.numpy()
        assert np.isfinite(grad).all()
        # Saturated logits: the derivative is +-w (wrong side) or 0 (right side).
        np.testing.assert_allclose(grad[0, [0, -1]], [0, 0.75], atol=1e-6)
        np.testing.assert_allclose(grad[1, [0, -1]], [-0.25, 0], atol=1e-6)


@needs_torch
def test_gradient_is_finite_where_p_t_is_one_for_small_gamma():
    # exp(-800) underflows in float64: p_t == 1 exactly and m^(gamma-1) is infinite.
    x = torch.tensor([800.0, -800.0, 40.0], dtype=torch.float64, requires_grad=True)
    t = torch.tensor([1.0, 0.0, 1.0], dtype=torch.float64)
    for gamma in (0.0, 0.25, 0.5, 1.0, 1.5):
        x.grad = None
        sigmoid_focal_loss(x, t, gamma=gamma, reduction="sum").backward()
        assert torch.isfinite(x.grad).all(), gamma
        np.testing.assert_allclose(x.grad[:2].numpy(), 0, atol=1e-300)


def test_nan_logits_give_nan_loss_without_crashing(rng):
    for dtype in (np.float32, np.float64):
        x = rng.standard_normal((6, 4)).astype(dtype)
        x[1, 2] = np.nan
        x[4, 0] = np.nan
        labels = np.array([0, 1, 4, -1, 3, 2])
        out = sigmoid_focal_loss(x, labels)
        assert np.isnan(out[1, 2]) and np.isnan(out[4, 0])
        assert np.isfinite(np.delete(out.ravel(), [1 * 4 + 2, 4 * 4 + 0])).all()
        assert np.isnan(sigmoid_focal_loss(x, labels, reduction="sum"))
        assert np.isnan(sigmoid_focal_loss(x, one_hot(labels, 4, dtype), gamma=0.7, reduction="mean"))


@pytest.mark.parametrize("shape", [(0,), (0, 80), (5, 0)])
def test_empty_inputs(shape):
    x = np.zeros(shape, np.float32)
    assert sigmoid_focal_loss(x, x).shape == shape
    assert sigmoid_focal_loss(x, x, reduction="sum") == 0
    assert np.isnan(sigmoid_focal_loss(x, x, reduction="mean"))  # torchvision: mean of nothing
    if len(shape) == 2:
        labels = np.zeros(shape[0], np.int64)
        assert sigmoid_focal_loss(x, labels).shape == shape
        assert sigmoid_focal_loss(x, labels, reduction="sum") == 0
        assert np.isnan(sigmoid_focal_loss(x, labels, reduction="mean"))


def test_mean_over_only_ignored_rows_is_nan(rng):
    x = rng.standard_normal((3, 4))
    assert np.isnan(sigmoid_focal_loss(x, np.full(3, -1), reduction="mean"))
    assert sigmoid_focal_loss(x, np.full(3, -1), reduction="sum") == 0


def test_any_rank_with_float_targets(rng):
    x = rng.standard_normal((2, 3, 4, 5))
    t = (rng.uniform(size=x.shape) > 0.7).astype(np.float64)
    np.testing.assert_allclose(sigmoid_focal_loss(x, t), reference_focal_loss(x, t), rtol=1e-12)


@pytest.mark.parametrize(
    "x,t,kwargs,error,words",
    [
        (np.zeros((3, 4)), np.zeros((3, 5)), {}, ValueError, "targets"),
        (np.zeros((3, 4)), np.zeros(4, np.int64), {}, ValueError, "targets"),
        (np.zeros(4), np.zeros(4, np.int64), {}, ValueError, "inputs"),
        (np.zeros((3, 4)), np.zeros((3, 1), np.int64), {}, ValueError, "targets"),
        (np.zeros((3, 4)), np.array([0, 4, 5]), {}, ValueError, "targets"),
        (np.zeros((3, 4)), np.zeros(3, np.int32), {}, TypeError, "targets"),
        (np.zeros((3, 4)), np.zeros((3, 4), np.float32), {}, TypeError, "targets"),
        (np.zeros((3, 4), np.int64), np.zeros((3, 4), np.int64), {}, TypeError, "inputs"),
        (np.zeros((3, 4), np.float16), np.zeros((3, 4), np.float16), {}, TypeError, "inputs"),
        (np.zeros((3, 4)), np.zeros((3, 4)), {"reduction": "avg"}, ValueError, "reduction"),
        (np.zeros((3, 4)), np.zeros((3, 4)), {"reduction": None}, ValueError, "reduction"),
        (np.zeros((3, 4)), np.zeros((3, 4)), {"gamma": -0.5}, ValueError, "gamma"),
        (np.zeros((3, 4)), np.zeros((3, 4)), {"gamma": float("inf")}, ValueError, "gamma"),
        (np.zeros((3, 4)), np.zeros((3, 4)), {"gamma": float("nan")}, ValueError, "gamma"),
        (np.zeros((3, 4)), np.zeros((3, 4)), {"alpha": float("nan")}, ValueError, "alpha"),
        (np.zeros((3, 4)), np.zeros((3, 4)), {"alpha": 1.5}, ValueError, "alpha"),
        (np.zeros((3, 4)), np.zeros((3, 4)), {"alpha": "0.25"}, TypeError, "alpha"),
        ([[0.0]], np.zeros((1, 1)), {}, TypeError, "inputs"),
    ],
)
def test_bad_input_is_refused_with_the_argument_named(x, t, kwargs, error, words):
    with pytest.raises(error, match=words):
        sigmoid_focal_loss(x, t, **kwargs)


def test_native_core_checks_label_range_and_outputs(rng):
    # The Python layer sizes the outputs; the core still checks what it is given.
    x = np.zeros((3, 4))
    with pytest.raises(ValueError, match="loss"):
        detcore._C.sigmoid_focal_loss(0.25, 2.0, "none", x, x, np.zeros(5), None, None)
    with pytest.raises(ValueError, match="grad"):
        detcore._C.sigmoid_focal_loss(0.25, 2.0, "sum", x, x, np.zeros(()), np.zeros((3, 3)), None)
    with pytest.raises(ValueError, match="targets"):
        detcore._C.sigmoid_focal_loss(0.25, 2.0, "sum", x, np.array([0, 9, 1]), np.zeros(()), None, None)
    with pytest.raises(ValueError, match="reduction"):
        detcore._C.sigmoid_focal_loss(0.25, 2.0, "max", x, x, np.zeros(()), None, None)


@needs_torch
class TestTorch:
    @pytest.mark.parametrize("reduction", ["none", "sum", "mean"])
    @pytest.mark.parametrize("labels_given", [False, True])
    def test_gradient_matches_finite_differences_of_reference(self, rng, reduction, labels_given):
        x, labels = random_problem(rng)
        kept = labels >= 0
        t = one_hot(labels, x.shape[1])
        xt = torch.from_numpy(x).requires_grad_()
        loss = sigmoid_focal_loss(xt, torch.from_numpy(labels if labels_given else t), reduction=reduction)
        upstream = torch.from_numpy(rng.standard_normal(loss.shape))
        loss.backward(upstream)
        expected = reference_grad(x, t) * upstream.numpy()
        if labels_given:
            expected[~kept] = 0
        if reduction == "mean":
            expected /= (kept.sum() * x.shape[1]) if labels_given else x.size
        np.testing.assert_allclose(xt.grad.numpy(), expected, rtol=1e-6, atol=1e-9)

    @pytest.mark.parametrize("reduction", ["none", "sum", "mean"])
    @pytest.mark.parametrize("gamma", [0.0, 1.5, 2.0])
    @pytest.mark.parametrize("alpha", [0.25, -1.0])
    @pytest.mark.parametrize("labels_given", [False, True])
    def test_gradcheck(self, rng, reduction, gamma, alpha, labels_given):
        x, labels = random_problem(rng, n=6, classes=4, scale=2.0)
        targets = torch.from_numpy(labels) if labels_given else torch.from_numpy(rng.uniform(0, 1, x.shape))
        xt = torch.from_numpy(x).requires_grad_()
        assert torch.autograd.gradcheck(
            lambda inp: sigmoid_focal_loss(inp, targets, alpha=alpha, gamma=gamma, reduction=reduction), (xt,)
        )

    def test_no_gradient_is_computed_without_autograd(self, rng):
        x, labels = random_problem(rng, dtype=np.float32)
        xt = torch.from_numpy(x)
        loss, grad = torch.ops.detcore.sigmoid_focal_loss(xt, torch.from_numpy(labels), 0.25, 2.0, "sum", False)
        assert grad.numel() == 0
        with torch.no_grad():
            assert not sigmoid_focal_loss(xt.requires_grad_(), torch.from_numpy(labels)).requires_grad

    @pytest.mark.parametrize("labels_given", [False, True])
    def test_torch_compile_fullgraph_forward_and_backward(self, rng, labels_given):
        x, labels = random_problem(rng, dtype=np.float32)
        targets = torch.from_numpy(labels if labels_given else one_hot(labels, x.shape[1], np.float32))

        def step(inputs, targets):
            return sigmoid_focal_loss(inputs, targets, alpha=0.25, gamma=2.0, reduction="mean") * 3

        compiled = torch.compile(step, fullgraph=True)
        x1, x2 = torch.from_numpy(x).requires_grad_(), torch.from_numpy(x).requires_grad_()
        got, expected = compiled(x1, targets), step(x2, targets)
        got.backward()
        expected.backward()
        torch.testing.assert_close(got, expected)
        torch.testing.assert_close(x1.grad, x2.grad)

    def test_torch_compile_dynamic_shapes_with_symbolic_alpha_and_gamma(self, rng):
        x, labels = random_problem(rng, dtype=np.float32)
        targets = torch.from_numpy(one_hot(labels, x.shape[1], np.float32))
        compiled = torch.compile(lambda i, t: sigmoid_focal_loss(i, t, reduction="sum"), fullgraph=True, dynamic=True)
        xt = torch.from_numpy(x)
        torch.testing.assert_close(compiled(xt, targets), sigmoid_focal_loss(xt, targets, reduction="sum"))

    def test_second_derivatives_are_refused_not_silently_zero(self, rng):
        x = torch.tensor([0.3, -1.2], dtype=torch.float64, requires_grad=True)
        t = torch.tensor([1.0, 0.0], dtype=torch.float64)
        with pytest.raises(RuntimeError, match="second derivatives"):
            torch.autograd.grad(sigmoid_focal_loss(x, t, reduction="sum"), x, create_graph=True)

    def test_targets_requiring_grad_are_refused(self, rng):
        x = torch.zeros(3, 4, requires_grad=True)
        with pytest.raises(ValueError, match="targets"):
            sigmoid_focal_loss(x, torch.zeros(3, 4, requires_grad=True))

    def test_mixed_frameworks_are_refused(self, rng):
        x = np.zeros((3, 4), np.float32)
        with pytest.raises(TypeError, match="one framework"):
            sigmoid_focal_loss(torch.from_numpy(x), x)

    @pytest.mark.cuda
    @pytest.mark.parametrize("reduction", ["none", "sum", "mean"])
    def test_cuda_matches_cpu(self, rng, reduction):
        x, labels = random_problem(rng, n=3000, classes=80)
        t = one_hot(labels, 80)
        t[::5] = rng.uniform(0, 1, t[::5].shape)
        for dtype, tol in [(torch.float32, 1e-5), (torch.float64, 1e-12), (torch.float16, 2e-3), (torch.bfloat16, 2e-2)]:
            for targets in (torch.from_numpy(labels), torch.from_numpy(t)):
                xc = torch.from_numpy(x).to(dtype)
                tc = targets if targets.dtype == torch.int64 else targets.to(dtype)
                x_cpu = xc.double().requires_grad_()
                expected = sigmoid_focal_loss(x_cpu, tc.double() if tc.is_floating_point() else tc, reduction=reduction)
                expected.backward(torch.ones_like(expected))
                x_gpu = xc.cuda().requires_grad_()
                got = sigmoid_focal_loss(x_gpu, tc.cuda(), reduction=reduction)
                got.backward(torch.ones_like(got))
                scale = max(1.0, float(expected.abs().max()))
                torch.testing.assert_close(got.detach().cpu().double(), expected.detach(), atol=tol * scale, rtol=tol)
                torch.testing.assert_close(x_gpu.grad.cpu().double(), x_cpu.grad, atol=tol, rtol=tol)

    @pytest.mark.cuda
    def test_cuda_sum_is_deterministic_and_bad_labels_give_nan(self, rng):
        x, labels = random_problem(rng, n=20000, classes=80, dtype=np.float32)
        xc, lc = torch.from_numpy(x).cuda(), torch.from_numpy(labels).cuda()
        first = sigmoid_focal_loss(xc, lc, reduction="sum")
        for _ in range(3):
            assert torch.equal(sigmoid_focal_loss(xc, lc, reduction="sum"), first)
        bad = lc.clone()
        bad[7] = 85
        out = sigmoid_focal_loss(xc, bad)
        assert torch.isnan(out[7]).all() and not torch.isnan(out[8]).any()
        assert torch.isnan(sigmoid_focal_loss(xc, bad, reduction="mean"))

    @pytest.mark.cuda
    def test_cuda_empty_and_compile(self, rng):
        x = torch.zeros(0, 80, device="cuda")
        assert sigmoid_focal_loss(x, torch.zeros(0, dtype=torch.int64, device="cuda"), reduction="sum").item() == 0
        assert torch.isnan(sigmoid_focal_loss(x, x, reduction="mean")).item()
        xs = torch.randn(64, 80, device="cuda", requires_grad=True)
        ts = torch.randint(-1, 81, (64,), device="cuda")
        compiled = torch.compile(lambda a, b: sigmoid_focal_loss(a, b, reduction="sum"), fullgraph=True)
        compiled(xs, ts).backward()
        assert torch.isfinite(xs.grad).all()

