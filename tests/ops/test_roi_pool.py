import math

import numpy as np
import pytest

import detcore
from detcore import _C
from detcore.ops import roi_pool
from detcore.ops._interop import NUMPY, TORCH
from detcore.ops.roi_pool import _roi_pool, _roi_pool_backward
from helpers import HALF_DTYPES, assert_half_result, edge_case_boxes, random_boxes, to_half

try:
    import torch
except ImportError:
    torch = None

needs_torch = pytest.mark.skipif(torch is None, reason="needs torch")
COORD_LIMIT = 2.0**40  # where the op clamps scaled coordinates


def _cell(scaled):
    """A scaled corner as a cell index: clamped, rounded half away from zero."""
    v = min(max(float(scaled), -COORD_LIMIT), COORD_LIMIT)
    return int(math.copysign(math.floor(abs(v) + 0.5), v))


def reference_roi_pool(x, rois, pooled_height, pooled_width, spatial_scale):
    """Plain loops, torchvision's rules, with the scale and bin arithmetic in
    the input's precision as torchvision does it. Returns (out, argmax)."""
    ftype = x.dtype.type
    n_images, channels, height, width = x.shape
    num_rois = len(rois)
    out = np.zeros((num_rois, channels, pooled_height, pooled_width))
    argmax = np.full(out.shape, -1, dtype=np.int64)
    lowest = float(np.finfo(x.dtype).min)
    with np.errstate(over="ignore", invalid="ignore"):
        for k in range(num_rois):
            corners = rois[k, 1:]
            if np.isnan(corners).any():
                continue  # NaN RoIs pool nothing
            x1, y1, x2, y2 = (_cell(ftype(v) * ftype(spatial_scale)) for v in corners)
            bin_h = ftype(max(y2 - y1 + 1, 1)) / ftype(pooled_height)
            bin_w = ftype(max(x2 - x1 + 1, 1)) / ftype(pooled_width)
            image = int(rois[k, 0])
            for i in range(pooled_height):
                h0 = min(max(y1 + math.floor(ftype(i) * bin_h), 0), height)
                h1 = min(max(y1 + math.ceil(ftype(i + 1) * bin_h), 0), height)
                for j in range(pooled_width):
                    w0 = min(max(x1 + math.floor(ftype(j) * bin_w), 0), width)
                    w1 = min(max(x1 + math.ceil(ftype(j + 1) * bin_w), 0), width)
                    if h1 <= h0 or w1 <= w0:
                        continue
                    for c in range(channels):
                        best, best_index = lowest, -1
                        for h in range(h0, h1):
                            for w in range(w0, w1):
                                if x[image, c, h, w] > best:  # NaN never wins
                                    best, best_index = float(x[image, c, h, w]), h * width + w
                        out[k, c, i, j], argmax[k, c, i, j] = best, best_index
    return out, argmax


def reference_roi_pool_backward(grad_out, rois, argmax, input_shape):
    grad_input = np.zeros(input_shape)
    width = input_shape[3]
    for k, c, i, j in np.ndindex(*grad_out.shape):
        index = argmax[k, c, i, j]
        if index >= 0:
            grad_input[int(rois[k, 0]), c, index // width, index % width] += grad_out[k, c, i, j]
    return grad_input


def random_rois(rng, num_rois, n_images, image_height, image_width, dtype=np.float64):
    """RoIs in image coordinates, some reaching past the image borders."""
    boxes = random_boxes(rng, num_rois, size=100.0, max_wh=60.0) / 100.0
    boxes = (boxes * 1.2 - 0.1) * np.array([image_width, image_height] * 2)
    index = rng.integers(0, n_images, (num_rois, 1))
    return np.concatenate([index, boxes], axis=1).astype(dtype)


def check_against_reference(x, rois, output_size, scale):
    out, argmax = _roi_pool(NUMPY, x, rois, scale, *output_size)
    expected, expected_argmax = reference_roi_pool(x, rois, *output_size, scale)
    assert out.dtype == x.dtype and argmax.dtype == np.int32
    assert out.shape == (len(rois), x.shape[1], *output_size)
    np.testing.assert_array_equal(out, expected.astype(x.dtype))
    np.testing.assert_array_equal(argmax, expected_argmax)
    np.testing.assert_array_equal(roi_pool(x, rois, output_size, scale), out)
    return out, argmax


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize(
    "output_size,scale", [((7, 7), 0.25), ((2, 5), 0.5), ((3, 1), 1.0), ((4, 3), 1 / 16), ((1, 1), 0.3)]
)
def test_random_inputs_match_reference(rng, dtype, output_size, scale):
    x = rng.standard_normal((2, 3, 15, 19)).astype(dtype)
    rois = random_rois(rng, 30, 2, 15 / scale, 19 / scale, dtype)
    check_against_reference(x, rois, output_size, scale)


def test_int_output_size_means_square(rng):
    x = rng.standard_normal((1, 2, 9, 9))
    rois = random_rois(rng, 5, 1, 9, 9)
    np.testing.assert_array_equal(roi_pool(x, rois, 3), roi_pool(x, rois, (3, 3)))
    np.testing.assert_array_equal(roi_pool(x, rois, [2, 4]), roi_pool(x, rois, (2, 4)))


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
                [3, 3, 3, 3],  # one cell
                [13.6, 11.6, 40, 40],  # starts at the border, rounds past it
                [-40, -40, -0.6, -0.6],  # ends just outside
                [-40, -40, -0.4, -0.4],  # rounds onto cell 0
                [2.5, 2.5, 5.5, 5.5],  # halves round away from zero
                [-2.5, -2.5, 1.5, 1.5],
            ],
        ]
    )
    index = rng.integers(0, 2, (len(boxes), 1))
    rois = np.concatenate([index, boxes], axis=1).astype(dtype)
    with np.errstate(over="ignore"):
        for output_size, scale in [((3, 4), 1.0), ((7, 7), 0.5), ((2, 2), 2.0)]:
            out, argmax = check_against_reference(x, rois, output_size, scale)
            assert np.all(out[6] == 0) and np.all(argmax[6] == -1)  # the NaN RoI


@pytest.mark.parametrize("scale", [1e-300, 1e300])
def test_extreme_spatial_scale_never_crashes(rng, scale):
    # In float32 the scale becomes 0 or inf, and 0 * inf is NaN.
    x = rng.standard_normal((1, 2, 6, 7)).astype(np.float32)
    rois = np.concatenate([random_rois(rng, 6, 1, 6, 7, np.float32), [[0, 0, 0, 0, 0], [0, -1, -1, 3, 3]]])
    out, argmax = _roi_pool(NUMPY, x, rois.astype(np.float32), scale, 3, 2)
    assert np.isin(out, np.append(x, 0)).all() and np.all((argmax >= -1) & (argmax < 6 * 7))
    out64, _ = _roi_pool(NUMPY, x.astype(np.float64), rois.astype(np.float64), scale, 3, 2)
    assert np.isin(out64, np.append(x, 0)).all()


def test_point_roi_pools_one_cell(rng):
    x = rng.standard_normal((1, 2, 6, 6))
    out, argmax = _roi_pool(NUMPY, x, np.array([[0, 2.0, 3.0, 2.0, 3.0]]), 1.0, 2, 2)
    # A point covers one cell (size max(0 + 1, 1)); every bin sees that cell.
    np.testing.assert_array_equal(out[0], np.broadcast_to(x[0, :, 3, 2][:, None, None], (2, 2, 2)))
    np.testing.assert_array_equal(argmax, 3 * 6 + 2)


def test_ties_pick_the_first_maximum_in_scan_order(rng):
    x = rng.integers(0, 3, (2, 4, 11, 13)).astype(np.float32)  # many equal values
    x[0, 0] = 1.0  # a constant plane
    rois = random_rois(rng, 25, 2, 11, 13, np.float32)
    rois[0] = [0, 0, 0, 12, 10]
    check_against_reference(x, rois, (3, 4), 1.0)
    check_against_reference(x, rois, (2, 2), 1.0)


def test_nan_and_inf_features_never_win(rng):
    x = rng.standard_normal((1, 3, 10, 10))
    x[rng.random(x.shape) < 0.3] = np.nan
    x[0, 1, :5] = np.nan  # whole bins of NaN
    x[0, 2, :5] = -np.inf
    x[0, 2, 7, 7] = np.inf
    rois = np.concatenate([random_rois(rng, 20, 1, 10, 10), [[0, 0, 0, 9, 9]]])
    out, argmax = check_against_reference(x, rois, (4, 4), 1.0)
    lowest = np.finfo(np.float64).min
    assert np.all(out[-1, 1, :2] == lowest) and np.all(argmax[-1, 1, :2] == -1)


@pytest.mark.parametrize("shape", [(2, 3, 8, 8), (2, 0, 8, 8), (2, 3, 0, 8), (2, 3, 8, 0)])
def test_empty_inputs_give_empty_or_zero_outputs(rng, shape):
    x = rng.standard_normal(shape).astype(np.float32)
    rois = random_rois(rng, 4, 2, 8, 8, np.float32)
    for r in (rois, rois[:0]):
        out, argmax = _roi_pool(NUMPY, x, r, 1.0, 2, 3)
        assert out.shape == (len(r), shape[1], 2, 3) and out.dtype == np.float32
        if 0 in shape[2:]:
            assert np.all(out == 0) and np.all(argmax == -1)
        grad = _roi_pool_backward(NUMPY, np.ones_like(out), r, argmax, shape)
        assert grad.shape == shape and np.all(grad == (0 if len(r) == 0 else grad))


def test_list_layout_matches_k5_layout(rng):
    x = rng.standard_normal((3, 2, 10, 12)).astype(np.float32)
    per_image = [random_boxes(rng, n, size=40, dtype=np.float32) for n in (4, 0, 3)]
    rois = np.concatenate(
        [np.concatenate([np.full((len(b), 1), i, np.float32), b], axis=1) for i, b in enumerate(per_image)]
    )
    np.testing.assert_array_equal(roi_pool(x, per_image, (2, 3), 0.25), roi_pool(x, rois, (2, 3), 0.25))


def test_backward_matches_reference(rng):
    x = rng.standard_normal((2, 3, 12, 10))
    rois = random_rois(rng, 20, 2, 24, 20)
    out, argmax = _roi_pool(NUMPY, x, rois, 0.5, 3, 2)
    grad_out = rng.standard_normal(out.shape)
    grad = _roi_pool_backward(NUMPY, grad_out, rois, argmax, x.shape)
    np.testing.assert_allclose(grad, reference_roi_pool_backward(grad_out, rois, argmax, x.shape), rtol=1e-12, atol=1e-12)


def test_deterministic_flag_is_accepted_on_the_cpu(rng):
    x = rng.standard_normal((1, 2, 9, 9))
    rois = random_rois(rng, 30, 1, 9, 9)
    out, argmax = _roi_pool(NUMPY, x, rois, 1.0, 3, 3)
    grad_out = rng.standard_normal(out.shape)
    np.testing.assert_array_equal(
        _roi_pool_backward(NUMPY, grad_out, rois, argmax, x.shape, deterministic=True),
        _roi_pool_backward(NUMPY, grad_out, rois, argmax, x.shape),
    )


def test_backward_ignores_out_of_range_argmax(rng):
    grad_out = np.ones((1, 1, 2, 2))
    argmax = np.array([[[[-5, 3], [100, 2**31 - 1]]]], np.int32)
    grad = _roi_pool_backward(NUMPY, grad_out, np.zeros((1, 5)), argmax, (1, 1, 2, 3))
    expected = np.zeros((1, 1, 2, 3))
    expected[0, 0, 1, 0] = 1.0
    np.testing.assert_array_equal(grad, expected)


def test_backward_is_deterministic_for_any_thread_count(rng):
    x = rng.standard_normal((1, 64, 20, 20)).astype(np.float32)
    rois = random_rois(rng, 300, 1, 20, 20, np.float32)  # heavily overlapping RoIs
    out, argmax = _roi_pool(NUMPY, x, rois, 1.0, 7, 7)
    grad_out = rng.standard_normal(out.shape).astype(np.float32)
    threads = detcore.num_threads()
    try:
        results = []
        for n in (1, 2, 3):
            detcore.set_num_threads(n)
            results.append(_roi_pool_backward(NUMPY, grad_out, rois, argmax, x.shape))
            np.testing.assert_array_equal(_roi_pool(NUMPY, x, rois, 1.0, 7, 7)[0], out)
    finally:
        detcore.set_num_threads(threads)
    for r in results[1:]:
        np.testing.assert_array_equal(r, results[0])


def test_inputs_are_not_mutated(rng):
    x = rng.standard_normal((1, 2, 8, 8)).astype(np.float32)
    rois = random_rois(rng, 6, 1, 8, 8, np.float32)
    x_copy, rois_copy = x.copy(), rois.copy()
    roi_pool(x, rois, 3)
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
        (dict(boxes=R[:, :4]), ValueError, "boxes"),
        (dict(boxes=R.astype(np.float64)), TypeError, "boxes"),
        (dict(boxes=[]), ValueError, "boxes"),
        (dict(boxes=[[0, 1, 1, 5, 5]]), TypeError, "boxes"),
        (dict(boxes=np.array([[2, 1, 1, 5, 5]], np.float32)), ValueError, "boxes"),
        (dict(boxes=np.array([[-1, 1, 1, 5, 5]], np.float32)), ValueError, "boxes"),
        (dict(boxes=np.array([[0.5, 1, 1, 5, 5]], np.float32)), ValueError, "boxes"),
        (dict(boxes=np.array([[np.nan, 1, 1, 5, 5]], np.float32)), ValueError, "boxes"),
        (dict(boxes=np.array([[np.inf, 1, 1, 5, 5]], np.float32)), ValueError, "boxes"),
        (dict(output_size=0), ValueError, "output_size"),
        (dict(output_size=(3, -1)), ValueError, "output_size"),
        (dict(output_size=(1, 2, 3)), ValueError, "output_size"),
        (dict(output_size=1.5), TypeError, "output_size"),
        (dict(spatial_scale=0.0), ValueError, "spatial_scale"),
        (dict(spatial_scale=-1.0), ValueError, "spatial_scale"),
        (dict(spatial_scale=float("nan")), ValueError, "spatial_scale"),
        (dict(spatial_scale=float("inf")), ValueError, "spatial_scale"),
        (dict(spatial_scale="1"), TypeError, "spatial_scale"),
    ],
)
def test_bad_input_is_refused_with_the_argument_named(kwargs, error, words):
    args = dict(input=X, boxes=R, output_size=2, spatial_scale=1.0)
    args.update(kwargs)
    with pytest.raises(error, match=words):
        roi_pool(**args)


def test_huge_feature_plane_is_refused_for_the_int32_argmax():
    x = np.zeros((1, 0, 50000, 50000), np.float32)  # no data, but H * W > 2**31 - 1
    with pytest.raises(ValueError, match="input"):
        roi_pool(x, R, 2)


def test_core_checks_the_backward_arguments():
    grad_out = np.zeros((1, 3, 2, 2), np.float32)
    argmax = np.zeros((1, 3, 2, 2), np.int32)
    grad_input = np.zeros((2, 3, 8, 8), np.float32)
    with pytest.raises(TypeError, match="argmax"):
        _C.roi_pool_backward(2, 2, False, grad_out, R, argmax.astype(np.int64), grad_input)
    with pytest.raises(ValueError, match="argmax"):
        _C.roi_pool_backward(2, 2, False, grad_out, R, argmax[:, :2], grad_input)
    with pytest.raises(ValueError, match="grad_input"):
        _C.roi_pool_backward(2, 2, False, grad_out, R, argmax, grad_input[:, :2].copy())
    with pytest.raises(ValueError, match="boxes"):
        _C.roi_pool_backward(2, 2, False, grad_out, np.array([[5, 1, 1, 5, 5]], np.float32), argmax, grad_input)
    with pytest.raises(ValueError, match="argmax"):
        _C.roi_pool_forward(2, 2, 1.0, X, R, np.zeros((1, 3, 2, 2), np.float32), argmax[:, :, :1].copy())
    with pytest.raises(ValueError, match="out"):
        _C.roi_pool_forward(2, 2, 1.0, X, R, np.zeros((1, 2, 2, 2), np.float32), argmax[:, :2].copy())


@needs_torch
class TestTorch:
    def test_list_layout_and_module(self, rng):
        x = torch.from_numpy(rng.standard_normal((2, 3, 10, 11)))
        boxes = [torch.from_numpy(random_boxes(rng, n, size=40)) for n in (3, 4)]
        module = detcore.ops.RoIPool((2, 3), 0.25)
        assert repr(module) == "RoIPool(output_size=(2, 3), spatial_scale=0.25)"
        rois = torch.cat([torch.cat([torch.full((len(b), 1), float(i), dtype=b.dtype), b], 1) for i, b in enumerate(boxes)])
        torch.testing.assert_close(module(x, boxes), roi_pool(x, rois, (2, 3), 0.25), rtol=0, atol=0)

    def test_backward_matches_reference(self, rng):
        x = rng.standard_normal((2, 3, 12, 10))
        rois = random_rois(rng, 15, 2, 12, 10)
        leaf = torch.from_numpy(x).requires_grad_()
        out = roi_pool(leaf, torch.from_numpy(rois), (3, 3))
        grad_out = rng.standard_normal(out.shape)
        out.backward(torch.from_numpy(grad_out))
        _, argmax = reference_roi_pool(x, rois, 3, 3, 1.0)
        expected = reference_roi_pool_backward(grad_out, rois, argmax, x.shape)
        np.testing.assert_allclose(leaf.grad.numpy(), expected, rtol=1e-12, atol=1e-12)

    def test_gradcheck_float64(self, rng):
        # Distinct values, 0.1 apart: the finite differences never flip an argmax.
        x = torch.from_numpy(rng.permutation(2 * 3 * 9 * 11).reshape(2, 3, 9, 11) * 0.1).requires_grad_()
        rois = torch.from_numpy(random_rois(rng, 6, 2, 18, 22))
        assert torch.autograd.gradcheck(lambda t: roi_pool(t, rois, (3, 2), 0.5), (x,))

    def test_gradgradcheck_float64(self, rng):
        x = torch.from_numpy(rng.permutation(2 * 2 * 8 * 9).reshape(2, 2, 8, 9) * 0.1).requires_grad_()
        rois = torch.from_numpy(random_rois(rng, 5, 2, 8, 9))
        assert torch.autograd.gradgradcheck(lambda t: roi_pool(t, rois, (2, 3)), (x,))

    def test_torch_compile_fullgraph_forward_and_backward(self, rng):
        x = torch.from_numpy(rng.standard_normal((2, 3, 10, 11)).astype(np.float32))
        boxes = [torch.from_numpy(random_boxes(rng, n, size=10, dtype=np.float32)) for n in (3, 2)]

        def f(t):
            return roi_pool(t, boxes, (2, 3), 1.0).square().sum()

        compiled = torch.compile(f, fullgraph=True)
        eager_leaf, compiled_leaf = x.clone().requires_grad_(), x.clone().requires_grad_()
        eager, got = f(eager_leaf), compiled(compiled_leaf)
        torch.testing.assert_close(got, eager)
        eager.backward()
        got.backward()
        torch.testing.assert_close(compiled_leaf.grad, eager_leaf.grad)

    def test_bad_batch_index_is_refused(self):
        with pytest.raises(ValueError, match="boxes"):
            roi_pool(torch.zeros(1, 1, 4, 4), torch.tensor([[1.0, 0, 0, 2, 2]]), 2)

    def test_mixed_frameworks_are_refused(self):
        with pytest.raises(TypeError, match="one framework"):
            roi_pool(torch.zeros(1, 1, 4, 4), R, 2)

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
            expected, expected_argmax = _roi_pool(NUMPY, x.to(compute).numpy(), rois.to(compute).numpy(), 0.5, 7, 6)
            out, argmax = torch.ops.detcore.roi_pool(x.cuda(), rois.cuda(), 0.5, 7, 6)
            assert out.dtype == dtype and argmax.dtype == torch.int32
            torch.testing.assert_close(out.cpu().to(compute), torch.from_numpy(expected), rtol=0, atol=0)
            np.testing.assert_array_equal(argmax.cpu().numpy(), expected_argmax)

    @pytest.mark.cuda
    def test_cuda_backward_matches_cpu(self, rng):
        x = torch.from_numpy(rng.permutation(2 * 4 * 16 * 15).reshape(2, 4, 16, 15) * 0.1)
        rois = torch.from_numpy(random_rois(rng, 40, 2, 16, 15))
        grad_out = torch.from_numpy(rng.standard_normal((40, 4, 3, 3)))
        results = []
        for device in ("cpu", "cuda"):
            leaf = x.to(device).requires_grad_()
            roi_pool(leaf, rois.to(device), 3).backward(grad_out.to(device))
            results.append(leaf.grad.cpu())
        torch.testing.assert_close(results[1], results[0], rtol=1e-12, atol=1e-12)
        leaf = x.cuda().requires_grad_()
        # atomicAdd may sum shared cells in any order: allow last-bit differences.
        assert torch.autograd.gradcheck(lambda t: roi_pool(t, rois.cuda(), (3, 2)), (leaf,), nondet_tol=1e-12)

    @pytest.mark.cuda
    def test_cuda_deterministic_backward(self, rng):
        x = torch.from_numpy(rng.standard_normal((2, 8, 20, 20)).astype(np.float32))
        rois = torch.from_numpy(random_rois(rng, 500, 2, 20, 20, np.float32))  # heavy overlap
        out, argmax = _roi_pool(NUMPY, x.numpy(), rois.numpy(), 1.0, 7, 7)
        grad_out = rng.standard_normal(out.shape).astype(np.float32)
        expected = reference_roi_pool_backward(grad_out, rois.numpy(), argmax, x.shape)
        args = [torch.from_numpy(a).cuda() for a in (grad_out, rois.numpy(), argmax)]
        for dtype in (torch.float32, torch.float64, torch.float16, torch.bfloat16):
            typed = [args[0].to(dtype), args[1].to(dtype), args[2]]
            runs = [_roi_pool_backward(TORCH, *typed, x.shape, deterministic=True) for _ in range(3)]
            for r in runs[1:]:
                assert torch.equal(r, runs[0])
            atomic = _roi_pool_backward(TORCH, *typed, x.shape, deterministic=False)
            # ~100 gradients meet in a cell; half types round at every addition.
            tol = {torch.float32: 1e-4, torch.float64: 1e-4, torch.float16: 0.25, torch.bfloat16: 1.0}[dtype]
            for got in (runs[0], atomic):
                torch.testing.assert_close(got.cpu().double(), torch.from_numpy(expected), rtol=0, atol=tol)
        torch.use_deterministic_algorithms(True)
        try:
            leaf = x.cuda().requires_grad_()
            roi_pool(leaf, rois.cuda(), 7).backward(args[0])
            torch.testing.assert_close(leaf.grad.cpu().double(), torch.from_numpy(expected), rtol=0, atol=1e-4)
        finally:
            torch.use_deterministic_algorithms(False)

    @pytest.mark.cuda
    def test_cuda_edge_rois_and_invalid_batch_index(self, rng):
        x = torch.from_numpy(rng.standard_normal((2, 3, 12, 14)))
        boxes = torch.from_numpy(edge_case_boxes(np.float64))
        rois = torch.cat([torch.ones(len(boxes), 1), boxes], 1)
        expected = roi_pool(x, rois, (3, 4))
        torch.testing.assert_close(roi_pool(x.cuda(), rois.cuda(), (3, 4)).cpu(), expected, rtol=0, atol=0)
        bad = torch.tensor([[2.0, 0, 0, 5, 5], [-1, 0, 0, 5, 5], [0.5, 0, 0, 5, 5], [float("nan"), 0, 0, 5, 5]])
        out, argmax = torch.ops.detcore.roi_pool(x.cuda(), bad.double().cuda(), 1.0, 2, 2)
        assert torch.all(out == 0) and torch.all(argmax == -1)
        grad = torch.ops.detcore.roi_pool_backward(torch.ones_like(out), bad.double().cuda(), argmax, 2, 3, 12, 14)
        assert torch.all(grad == 0)

    @pytest.mark.cuda
    def test_cuda_torch_compile(self, rng):
        x = torch.from_numpy(rng.standard_normal((2, 3, 10, 11)).astype(np.float32)).cuda()
        rois = torch.from_numpy(random_rois(rng, 7, 2, 10, 11, np.float32)).cuda()
        compiled = torch.compile(lambda t: roi_pool(t, rois, 2), fullgraph=True)
        torch.testing.assert_close(compiled(x), roi_pool(x, rois, 2))


@pytest.mark.skipif(torch is None, reason="needs torch for bfloat16")
@pytest.mark.parametrize("dtype", HALF_DTYPES)
def test_half_precision_forward_and_backward_compute_in_float(rng, dtype):
    shape, output_size, scale = (2, 4, 10, 12), (3, 2), 0.5
    x = to_half(rng.standard_normal(shape), dtype).requires_grad_()
    rois = to_half(random_rois(rng, 8, 2, 20, 24), dtype)
    out = roi_pool(x, rois, output_size, scale)
    x32 = x.detach().float().requires_grad_()
    out32 = roi_pool(x32, rois.float(), output_size, scale)
    x64, rois64 = x.detach().double().numpy(), rois.double().numpy()
    reference, argmax = reference_roi_pool(x64, rois64, *output_size, scale)
    assert_half_result(out.detach(), out32.detach(), reference, dtype, scale=np.abs(reference).max())

    grad = to_half(rng.standard_normal(out.shape), dtype)
    out.backward(grad)
    out32.backward(grad.float())
    reference = reference_roi_pool_backward(grad.double().numpy(), rois64, argmax, shape)
    assert_half_result(x.grad, x32.grad, reference, dtype, scale=np.abs(reference).max())
