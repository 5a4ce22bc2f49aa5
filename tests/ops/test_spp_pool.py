import math

import numpy as np
import pytest

import detcore
from detcore import _C
from detcore.ops import spp_pool
from detcore.ops._interop import NUMPY, TORCH
from detcore.ops.spp_pool import _spp_pool, _spp_pool_backward
from helpers import HALF_DTYPES, assert_half_result, edge_case_boxes, random_boxes, to_half

try:
    import torch
except ImportError:
    torch = None

needs_torch = pytest.mark.skipif(torch is None, reason="needs torch")
COORD_LIMIT = 2.0**40  # where the op clamps scaled coordinates
LEVELS = (6, 3, 2, 1)


def _clamped(v):
    return min(max(v, -COORD_LIMIT), COORD_LIMIT) if not math.isnan(v) else -COORD_LIMIT


def _window(c1, c2, scale, ftype):
    """(first cell, number of cells) of the paper's projection, in the
    input's precision: cells floor(x1 s) + 1 .. ceil(x2 s) - 1, else the cell
    nearest the box centre."""
    s1 = ftype(_clamped(float(ftype(c1) * ftype(scale))))
    s2 = ftype(_clamped(float(ftype(c2) * ftype(scale))))
    first, last = math.floor(s1) + 1, math.ceil(s2) - 1
    if last >= first:
        return first, last - first + 1
    centre = float((s1 + s2) * ftype(0.5))
    return int(math.copysign(math.floor(abs(centre) + 0.5), centre)), 1


def _bin(first, size, i, n, extent):
    """Cells [begin, end) of bin i of n: window ceil(a/n), stride floor(a/n);
    when a < n bin i is the cell floor(i a / n). Clipped to the map."""
    window, stride = -(-size // n), size // n
    begin = first + (i * stride if stride > 0 else i * size // n)
    return min(max(begin, 0), extent), min(max(begin + window, 0), extent)


def reference_spp_pool(x, rois, levels, spatial_scale):
    """Plain loops. Returns (out, argmax), both (K, C * sum(n * n)): levels in
    order, each level's (C, n, n) block flattened."""
    ftype = x.dtype.type
    n_images, channels, height, width = x.shape
    lowest = float(np.finfo(x.dtype).min)
    outs, argmaxes = [], []
    with np.errstate(over="ignore", invalid="ignore"):
        for n in levels:
            out = np.zeros((len(rois), channels, n, n))
            argmax = np.full(out.shape, -1, dtype=np.int64)
            for k in range(len(rois)):
                if np.isnan(rois[k, 1:]).any():
                    continue  # NaN RoIs pool nothing
                x1, y1, x2, y2 = rois[k, 1:]
                fy, ay = _window(y1, y2, spatial_scale, ftype)
                fx, ax = _window(x1, x2, spatial_scale, ftype)
                image = int(rois[k, 0])
                for i in range(n):
                    h0, h1 = _bin(fy, ay, i, n, height)
                    for j in range(n):
                        w0, w1 = _bin(fx, ax, j, n, width)
                        if h1 <= h0 or w1 <= w0:
                            continue
                        for c in range(channels):
                            best, best_index = lowest, -1
                            for h in range(h0, h1):
                                for w in range(w0, w1):
                                    if x[image, c, h, w] > best:  # NaN never wins
                                        best, best_index = float(x[image, c, h, w]), h * width + w
                            out[k, c, i, j], argmax[k, c, i, j] = best, best_index
            outs.append(out.reshape(len(rois), -1))
            argmaxes.append(argmax.reshape(len(rois), -1))
    return np.concatenate(outs, axis=1), np.concatenate(argmaxes, axis=1)


def reference_spp_pool_backward(grad_out, rois, argmax, levels, input_shape):
    grad_input = np.zeros(input_shape)
    channels, width = input_shape[1], input_shape[3]
    column_channel = np.concatenate([np.repeat(np.arange(channels), n * n) for n in levels])
    for k, col in np.ndindex(*grad_out.shape):
        index = argmax[k, col]
        if index >= 0:
            grad_input[int(rois[k, 0]), column_channel[col], index // width, index % width] += grad_out[k, col]
    return grad_input


def random_rois(rng, num_rois, n_images, image_height, image_width, dtype=np.float64):
    """RoIs in image coordinates, some reaching past the image borders."""
    boxes = random_boxes(rng, num_rois, size=100.0, max_wh=70.0) / 100.0
    boxes = (boxes * 1.2 - 0.1) * np.array([image_width, image_height] * 2)
    index = rng.integers(0, n_images, (num_rois, 1))
    return np.concatenate([index, boxes], axis=1).astype(dtype)


def check_against_reference(x, rois, levels, scale):
    out, argmax = _spp_pool(NUMPY, x, rois, tuple(levels), scale)
    expected, expected_argmax = reference_spp_pool(x, rois, levels, scale)
    assert out.dtype == x.dtype and argmax.dtype == np.int32
    assert out.shape == (len(rois), x.shape[1] * sum(n * n for n in levels))
    np.testing.assert_array_equal(out, expected.astype(x.dtype))
    np.testing.assert_array_equal(argmax, expected_argmax)
    np.testing.assert_array_equal(spp_pool(x, rois, levels, scale), out)
    return out, argmax


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("levels,scale", [(LEVELS, 0.25), ((4, 2), 0.5), ((3,), 1.0), ((1, 7), 1 / 16), ((5, 1, 2), 0.3)])
def test_random_inputs_match_reference(rng, dtype, levels, scale):
    x = rng.standard_normal((2, 3, 15, 19)).astype(dtype)
    rois = random_rois(rng, 25, 2, 15 / scale, 19 / scale, dtype)
    check_against_reference(x, rois, levels, scale)


def test_bins_follow_the_papers_rule_on_a_worked_example():
    # Cell values are their own flat index, so each bin's maximum is its
    # bottom-right cell. Box [0, 13] at scale 1: cells 1 .. 12 (a = 12).
    x = np.arange(16 * 16, dtype=np.float64).reshape(1, 1, 16, 16)
    rois = np.array([[0, 0.0, 0.0, 13.0, 13.0]])
    out = spp_pool(x, rois, (5, 1), 1.0)
    # n = 5: window ceil(12/5) = 3, stride floor(12/5) = 2: bins start at
    # 1, 3, 5, 7, 9 and end at 3, 5, 7, 9, 11 (the last cell 12 is left out).
    last = np.array([3, 5, 7, 9, 11])
    np.testing.assert_array_equal(out[0, :25], (last[:, None] * 16 + last[None, :]).ravel())
    assert out[0, 25] == 12 * 16 + 12  # n = 1 covers the whole window
    # A box of 2 cells (a = 2) on a 4 x 4 level: bin i is cell 1 + floor(i * 2 / 4).
    out = spp_pool(x, np.array([[0, 0.5, 0.5, 2.5, 2.5]]), 4, 1.0)
    cells = 1 + np.array([0, 0, 1, 1])
    np.testing.assert_array_equal(out[0], (cells[:, None] * 16 + cells[None, :]).ravel())
    # No cell centre inside: the cell nearest the centre (5.5 * 0.5 -> 3).
    out = spp_pool(x, np.array([[0, 5.2, 5.2, 5.8, 5.8]]), 2, 0.5)
    np.testing.assert_array_equal(out[0], [3 * 16 + 3] * 4)


def test_layout_is_levels_then_channels_then_bins(rng):
    x = rng.standard_normal((1, 3, 12, 12))
    rois = random_rois(rng, 4, 1, 12, 12)
    out = spp_pool(x, rois, (2, 1))
    per_level = [spp_pool(x, rois, n).reshape(4, 3, n, n) for n in (2, 1)]
    np.testing.assert_array_equal(out, np.concatenate([p.reshape(4, -1) for p in per_level], axis=1))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_edge_case_rois_match_reference_without_crashing(rng, dtype):
    x = rng.standard_normal((2, 2, 12, 14)).astype(dtype)
    boxes = np.concatenate(
        [
            edge_case_boxes(np.float64),
            [
                [-np.inf, -np.inf, np.inf, np.inf],
                [np.inf, np.inf, -np.inf, -np.inf],
                [-1e30, 5, 1e30, 6],
                [3, 3, 3, 3],  # a point on a cell centre
                [13.6, 11.6, 40, 40],  # starts at the border
                [-40, -40, -0.6, -0.6],  # ends outside
                [-40, -40, 0.4, 0.4],
                [2.5, 2.5, 5.5, 5.5],
                [-2.5, -2.5, 1.5, 1.5],
            ],
        ]
    )
    index = rng.integers(0, 2, (len(boxes), 1))
    rois = np.concatenate([index, boxes], axis=1).astype(dtype)
    with np.errstate(over="ignore"):
        for levels, scale in [(LEVELS, 1.0), ((3, 2), 0.5), ((2,), 2.0)]:
            out, argmax = check_against_reference(x, rois, levels, scale)
            assert np.all(out[6] == 0) and np.all(argmax[6] == -1)  # the NaN RoI
            assert np.all((argmax >= -1) & (argmax < 12 * 14))


@pytest.mark.parametrize("scale", [1e-300, 1e300])
def test_extreme_spatial_scale_never_crashes(rng, scale):
    x = rng.standard_normal((1, 2, 6, 7)).astype(np.float32)
    rois = np.concatenate([random_rois(rng, 6, 1, 6, 7, np.float32), [[0, 0, 0, 0, 0], [0, -1, -1, 3, 3]]])
    out, argmax = _spp_pool(NUMPY, x, rois.astype(np.float32), LEVELS, scale)
    assert np.isin(out, np.append(x, 0)).all() and np.all((argmax >= -1) & (argmax < 6 * 7))
    out64, _ = _spp_pool(NUMPY, x.astype(np.float64), rois.astype(np.float64), LEVELS, scale)
    assert np.isin(out64, np.append(x, 0)).all()


def test_ties_pick_the_first_maximum_in_scan_order(rng):
    x = rng.integers(0, 3, (2, 4, 11, 13)).astype(np.float32)  # many equal values
    x[0, 0] = 1.0  # a constant plane
    rois = random_rois(rng, 20, 2, 11, 13, np.float32)
    rois[0] = [0, -1, -1, 14, 12]
    check_against_reference(x, rois, (3, 2, 1), 1.0)


def test_nan_and_inf_features_never_win(rng):
    x = rng.standard_normal((1, 3, 10, 10))
    x[rng.random(x.shape) < 0.3] = np.nan
    x[0, 1, :6] = np.nan  # whole bins of NaN
    x[0, 2, :6] = -np.inf
    x[0, 2, 8, 8] = np.inf
    rois = np.concatenate([random_rois(rng, 15, 1, 10, 10), [[0, -1, -1, 10, 10]]])
    out, argmax = check_against_reference(x, rois, (4, 2), 1.0)
    lowest = np.finfo(np.float64).min
    top_row = out[-1, 16:32].reshape(4, 4)[0]  # channel 1 of level 4
    assert np.all(top_row == lowest) and np.all(argmax[-1, 16:20] == -1)


@pytest.mark.parametrize("shape", [(2, 3, 8, 8), (2, 0, 8, 8), (2, 3, 0, 8), (2, 3, 8, 0)])
def test_empty_inputs_give_empty_or_zero_outputs(rng, shape):
    x = rng.standard_normal(shape).astype(np.float32)
    rois = random_rois(rng, 4, 2, 8, 8, np.float32)
    for r in (rois, rois[:0]):
        out, argmax = _spp_pool(NUMPY, x, r, LEVELS, 1.0)
        assert out.shape == (len(r), shape[1] * 50) and out.dtype == np.float32
        if 0 in shape[2:]:
            assert np.all(out == 0) and np.all(argmax == -1)
        grad = _spp_pool_backward(NUMPY, np.ones_like(out), r, argmax, LEVELS, shape)
        assert grad.shape == shape
        if len(r) == 0:
            assert np.all(grad == 0)


def test_list_layout_matches_k5_layout(rng):
    x = rng.standard_normal((3, 2, 10, 12)).astype(np.float32)
    per_image = [random_boxes(rng, n, size=40, dtype=np.float32) for n in (4, 0, 3)]
    rois = np.concatenate(
        [np.concatenate([np.full((len(b), 1), i, np.float32), b], axis=1) for i, b in enumerate(per_image)]
    )
    np.testing.assert_array_equal(spp_pool(x, per_image, (3, 1), 0.25), spp_pool(x, rois, (3, 1), 0.25))


def test_backward_matches_reference(rng):
    x = rng.standard_normal((2, 3, 12, 10))
    rois = random_rois(rng, 15, 2, 24, 20)
    out, argmax = _spp_pool(NUMPY, x, rois, LEVELS, 0.5)
    grad_out = rng.standard_normal(out.shape)
    grad = _spp_pool_backward(NUMPY, grad_out, rois, argmax, LEVELS, x.shape)
    expected = reference_spp_pool_backward(grad_out, rois, argmax, LEVELS, x.shape)
    np.testing.assert_allclose(grad, expected, rtol=1e-12, atol=1e-12)


def test_backward_ignores_out_of_range_argmax():
    grad_out = np.ones((1, 2))
    argmax = np.array([[-5, 4]], np.int32)
    grad = _spp_pool_backward(NUMPY, grad_out, np.zeros((1, 5)), argmax, (1,), (1, 2, 2, 3))
    grad_far = _spp_pool_backward(NUMPY, grad_out, np.zeros((1, 5)), np.array([[100, 2**31 - 1]], np.int32), (1,), (1, 2, 2, 3))
    expected = np.zeros((1, 2, 2, 3))
    expected[0, 1, 1, 1] = 1.0
    np.testing.assert_array_equal(grad, expected)
    np.testing.assert_array_equal(grad_far, 0)


def test_forward_and_backward_are_the_same_for_any_thread_count(rng):
    x = rng.standard_normal((1, 32, 20, 20)).astype(np.float32)
    rois = random_rois(rng, 150, 1, 20, 20, np.float32)  # heavily overlapping RoIs
    out, argmax = _spp_pool(NUMPY, x, rois, LEVELS, 1.0)
    grad_out = rng.standard_normal(out.shape).astype(np.float32)
    threads = detcore.num_threads()
    try:
        results = []
        for n in (1, 3):
            detcore.set_num_threads(n)
            results.append(_spp_pool_backward(NUMPY, grad_out, rois, argmax, LEVELS, x.shape))
            np.testing.assert_array_equal(_spp_pool(NUMPY, x, rois, LEVELS, 1.0)[0], out)
    finally:
        detcore.set_num_threads(threads)
    np.testing.assert_array_equal(results[1], results[0])


def test_levels_accept_numpy_integers_and_an_int_for_one_level(rng):
    x = rng.standard_normal((2, 2, 9, 9)).astype(np.float32)
    rois = random_rois(rng, 5, 2, 9, 9, np.float32)
    expected = spp_pool(x, rois, (3, 1))
    np.testing.assert_array_equal(spp_pool(x, rois, (np.int64(3), np.int32(1))), expected)
    np.testing.assert_array_equal(spp_pool(x, rois, np.array([3, 1])), expected)
    np.testing.assert_array_equal(spp_pool(x, rois, np.int64(3)), spp_pool(x, rois, (3,)))


@pytest.mark.skipif(torch is None, reason="needs torch for bfloat16")
@pytest.mark.parametrize("dtype", HALF_DTYPES)
def test_half_precision_forward_and_backward_compute_in_float(rng, dtype):
    shape, levels, scale = (2, 4, 10, 12), (3, 2, 1), 0.5
    x = to_half(rng.standard_normal(shape), dtype).requires_grad_()
    rois = to_half(random_rois(rng, 8, 2, 20, 24), dtype)
    out = spp_pool(x, rois, levels, scale)
    x32 = x.detach().float().requires_grad_()
    out32 = spp_pool(x32, rois.float(), levels, scale)
    x64, rois64 = x.detach().double().numpy(), rois.double().numpy()
    reference, argmax = reference_spp_pool(x64, rois64, levels, scale)
    assert_half_result(out.detach(), out32.detach(), reference, dtype, scale=np.abs(reference).max())

    grad = to_half(rng.standard_normal(out.shape), dtype)
    out.backward(grad)
    out32.backward(grad.float())
    reference = reference_spp_pool_backward(grad.double().numpy(), rois64, argmax, levels, shape)
    assert_half_result(x.grad, x32.grad, reference, dtype, scale=np.abs(reference).max())


def test_inputs_are_not_mutated(rng):
    x = rng.standard_normal((1, 2, 8, 9)).astype(np.float32)
    rois = random_rois(rng, 6, 1, 8, 9, np.float32)
    x_copy, rois_copy = x.copy(), rois.copy()
    spp_pool(x, rois)
    np.testing.assert_array_equal(x, x_copy)
    np.testing.assert_array_equal(rois, rois_copy)


X = np.zeros((2, 3, 8, 8), np.float32)
R = np.array([[0, 1, 1, 5, 5]], np.float32)


@pytest.mark.parametrize(
    "kwargs,error,words",
    [
        (dict(input=X[0]), ValueError, "input"),
        (dict(input=X.astype(np.int64)), TypeError, "input"),
        (dict(input=X.astype(np.float16)), TypeError, "boxes"),  # float32 RoIs
        (dict(levels=None), TypeError, "levels"),
        (dict(levels=np.zeros((2, 2), np.int64)), ValueError, "levels"),
        (dict(levels=(1, 2**63)), ValueError, "levels"),
        (dict(spatial_scale=None), TypeError, "spatial_scale"),
        (dict(boxes=R[:, :4]), ValueError, "boxes"),
        (dict(boxes=R.astype(np.float64)), TypeError, "boxes"),
        (dict(boxes=[]), ValueError, "boxes"),
        (dict(boxes=[[0, 1, 1, 5, 5]]), TypeError, "boxes"),
        (dict(boxes=np.array([[2, 1, 1, 5, 5]], np.float32)), ValueError, "boxes"),
        (dict(boxes=np.array([[-1, 1, 1, 5, 5]], np.float32)), ValueError, "boxes"),
        (dict(boxes=np.array([[0.5, 1, 1, 5, 5]], np.float32)), ValueError, "boxes"),
        (dict(boxes=np.array([[np.nan, 1, 1, 5, 5]], np.float32)), ValueError, "boxes"),
        (dict(levels=()), ValueError, "levels"),
        (dict(levels=(6, 0)), ValueError, "levels"),
        (dict(levels=(-2,)), ValueError, "levels"),
        (dict(levels=(2000,)), ValueError, "levels"),
        (dict(levels=tuple(range(1, 18))), ValueError, "levels"),
        (dict(levels=(6, 1.5)), TypeError, "levels"),
        (dict(levels=(True,)), TypeError, "levels"),
        (dict(levels="6"), TypeError, "levels"),
        (dict(spatial_scale=0.0), ValueError, "spatial_scale"),
        (dict(spatial_scale=-1.0), ValueError, "spatial_scale"),
        (dict(spatial_scale=float("nan")), ValueError, "spatial_scale"),
        (dict(spatial_scale=float("inf")), ValueError, "spatial_scale"),
        (dict(spatial_scale="1"), TypeError, "spatial_scale"),
    ],
)
def test_bad_input_is_refused_with_the_argument_named(kwargs, error, words):
    args = dict(input=X, boxes=R, levels=LEVELS, spatial_scale=1.0)
    args.update(kwargs)
    with pytest.raises(error, match=words):
        spp_pool(**args)


def test_huge_feature_plane_is_refused_for_the_int32_argmax():
    x = np.zeros((1, 0, 50000, 50000), np.float32)  # no data, but H * W > 2**31 - 1
    with pytest.raises(ValueError, match="input"):
        spp_pool(x, R)


def test_core_checks_the_raw_arguments():
    out = np.zeros((1, 3 * 5), np.float32)
    argmax = np.zeros((1, 3 * 5), np.int32)
    grad_input = np.zeros((2, 3, 8, 8), np.float32)
    levels = [2, 1]
    with pytest.raises(TypeError, match="argmax"):
        _C.spp_pool_backward(levels, False, out, R, argmax.astype(np.int64), grad_input)
    with pytest.raises(ValueError, match="argmax"):
        _C.spp_pool_backward(levels, False, out, R, argmax[:, :4].copy(), grad_input)
    with pytest.raises(ValueError, match="grad_out"):
        _C.spp_pool_backward(levels, False, out, R, argmax, grad_input[:, :2].copy())
    with pytest.raises(ValueError, match="boxes"):
        _C.spp_pool_backward(levels, False, out, np.array([[5, 1, 1, 5, 5]], np.float32), argmax, grad_input)
    with pytest.raises(ValueError, match="out"):
        _C.spp_pool_forward(levels, 1.0, X, R, out[:, :7].copy(), argmax[:, :7].copy())
    with pytest.raises(ValueError, match="argmax"):
        _C.spp_pool_forward(levels, 1.0, X, R, out, argmax[:, :7].copy())
    with pytest.raises(ValueError, match="levels"):
        _C.spp_pool_forward([], 1.0, X, R, out, argmax)
    with pytest.raises(ValueError, match="spatial_scale"):
        _C.spp_pool_forward(levels, -1.0, X, R, out, argmax)


@needs_torch
class TestTorch:
    def test_list_layout_and_module(self, rng):
        x = torch.from_numpy(rng.standard_normal((2, 3, 10, 11)))
        boxes = [torch.from_numpy(random_boxes(rng, n, size=40)) for n in (3, 4)]
        module = detcore.ops.SPPPool([4, 2, 1], 0.25)
        assert repr(module) == "SPPPool(levels=(4, 2, 1), spatial_scale=0.25)"
        assert module.output_channels(3) == 3 * 21
        rois = torch.cat([torch.cat([torch.full((len(b), 1), float(i), dtype=b.dtype), b], 1) for i, b in enumerate(boxes)])
        torch.testing.assert_close(module(x, boxes), spp_pool(x, rois, (4, 2, 1), 0.25), rtol=0, atol=0)

    def test_backward_matches_reference(self, rng):
        x = rng.standard_normal((2, 3, 12, 10))
        rois = random_rois(rng, 10, 2, 12, 10)
        leaf = torch.from_numpy(x).requires_grad_()
        out = spp_pool(leaf, torch.from_numpy(rois), (3, 2, 1))
        grad_out = rng.standard_normal(out.shape)
        out.backward(torch.from_numpy(grad_out))
        _, argmax = reference_spp_pool(x, rois, (3, 2, 1), 1.0)
        expected = reference_spp_pool_backward(grad_out, rois, argmax, (3, 2, 1), x.shape)
        np.testing.assert_allclose(leaf.grad.numpy(), expected, rtol=1e-12, atol=1e-12)

    def test_gradcheck_float64(self, rng):
        # Distinct values, 0.1 apart: the finite differences never flip an argmax.
        x = torch.from_numpy(rng.permutation(2 * 3 * 9 * 11).reshape(2, 3, 9, 11) * 0.1).requires_grad_()
        rois = torch.from_numpy(random_rois(rng, 5, 2, 18, 22))
        assert torch.autograd.gradcheck(lambda t: spp_pool(t, rois, (3, 2, 1), 0.5), (x,))

    def test_gradgradcheck_float64(self, rng):
        x = torch.from_numpy(rng.permutation(2 * 2 * 8 * 9).reshape(2, 2, 8, 9) * 0.1).requires_grad_()
        rois = torch.from_numpy(random_rois(rng, 4, 2, 8, 9))
        assert torch.autograd.gradgradcheck(lambda t: spp_pool(t, rois, (2, 1)), (x,))

    def test_bad_batch_index_and_mixed_frameworks_are_refused(self):
        with pytest.raises(ValueError, match="boxes"):
            spp_pool(torch.zeros(1, 1, 4, 4), torch.tensor([[1.0, 0, 0, 2, 2]]))
        with pytest.raises(TypeError, match="one framework"):
            spp_pool(torch.zeros(1, 1, 4, 4), R)

    @pytest.mark.cuda
    def test_cuda_matches_cpu(self, rng):
        x64 = rng.standard_normal((2, 5, 20, 23))
        # Corners on a quarter-pixel grid: scaled by 0.5 they are exact in every dtype.
        rois64 = np.round(random_rois(rng, 60, 2, 40, 46) * 4) / 4
        for dtype in (torch.float32, torch.float64, torch.float16, torch.bfloat16):
            x, rois = torch.from_numpy(x64).to(dtype), torch.from_numpy(rois64).to(dtype)
            # CUDA computes float16/bfloat16 in float32: the CPU float32 op on
            # the same (exactly widened) values is the reference.
            compute = torch.float64 if dtype == torch.float64 else torch.float32
            expected, expected_argmax = _spp_pool(NUMPY, x.to(compute).numpy(), rois.to(compute).numpy(), LEVELS, 0.5)
            out, argmax = torch.ops.detcore.spp_pool(x.cuda(), rois.cuda(), list(LEVELS), 0.5)
            assert out.dtype == dtype and argmax.dtype == torch.int32
            torch.testing.assert_close(out.cpu().to(compute), torch.from_numpy(expected), rtol=0, atol=0)
            np.testing.assert_array_equal(argmax.cpu().numpy(), expected_argmax)

    @pytest.mark.cuda
    def test_cuda_backward_matches_cpu_and_deterministic_mode(self, rng):
        x = torch.from_numpy(rng.permutation(2 * 4 * 16 * 15).reshape(2, 4, 16, 15) * 0.1)
        rois = torch.from_numpy(random_rois(rng, 40, 2, 16, 15))
        grad_out = torch.from_numpy(rng.standard_normal((40, 4 * 50)))
        results = []
        for device in ("cpu", "cuda"):
            leaf = x.to(device).requires_grad_()
            spp_pool(leaf, rois.to(device)).backward(grad_out.to(device))
            results.append(leaf.grad.cpu())
        torch.testing.assert_close(results[1], results[0], rtol=1e-12, atol=1e-12)
        _, argmax = torch.ops.detcore.spp_pool(x.cuda(), rois.cuda(), list(LEVELS), 1.0)
        args = (grad_out.cuda(), rois.cuda(), argmax, LEVELS, x.shape)
        runs = [_spp_pool_backward(TORCH, *args, deterministic=True) for _ in range(2)]
        assert torch.equal(runs[0], runs[1])
        torch.testing.assert_close(runs[0].cpu(), results[0], rtol=1e-12, atol=1e-12)

    @pytest.mark.cuda
    def test_cuda_edge_rois_and_invalid_batch_index(self, rng):
        x = torch.from_numpy(rng.standard_normal((2, 3, 12, 14)))
        boxes = torch.from_numpy(edge_case_boxes(np.float64))
        rois = torch.cat([torch.ones(len(boxes), 1, dtype=torch.float64), boxes], 1)
        expected = spp_pool(x, rois)
        torch.testing.assert_close(spp_pool(x.cuda(), rois.cuda()).cpu(), expected, rtol=0, atol=0)
        bad = torch.tensor([[2.0, 0, 0, 5, 5], [-1, 0, 0, 5, 5], [0.5, 0, 0, 5, 5], [float("nan"), 0, 0, 5, 5]])
        out, argmax = torch.ops.detcore.spp_pool(x.cuda(), bad.double().cuda(), [2, 1], 1.0)
        assert torch.all(out == 0) and torch.all(argmax == -1)
        grad = torch.ops.detcore.spp_pool_backward(torch.ones_like(out), bad.double().cuda(), argmax, [2, 1], 2, 3, 12, 14)
        assert torch.all(grad == 0)
