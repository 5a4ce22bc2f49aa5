import math
import os
import subprocess
import sys

import numpy as np
import pytest

import detcore
from detcore.ops import RoIAlign, roi_align
from helpers import HALF_DTYPES, DLPackArray, assert_half_result, to_half

try:
    import torch
except ImportError:
    torch = None

needs_torch = pytest.mark.skipif(torch is None, reason="needs torch")


# --- the float64 reference: torchvision's rule, written out plainly ---------------------------

def _geometry(roi, output_size, spatial_scale, sampling_ratio, aligned):
    offset = 0.5 if aligned else 0.0
    x1, y1, x2, y2 = (float(v) * spatial_scale - offset for v in roi[1:])
    roi_w, roi_h = x2 - x1, y2 - y1
    if not aligned:
        roi_w, roi_h = max(roi_w, 1.0), max(roi_h, 1.0)
    ph, pw = output_size
    grid_h = sampling_ratio if sampling_ratio > 0 else max(math.ceil(roi_h / ph), 0)
    grid_w = sampling_ratio if sampling_ratio > 0 else max(math.ceil(roi_w / pw), 0)
    return y1, x1, roi_h / ph, roi_w / pw, grid_h, grid_w, max(grid_h * grid_w, 1)


def _bin_samples(y1, x1, bin_h, bin_w, grid_h, grid_w, i, j, height, width):
    """Taps of every sample of bin (i, j): four (rows, cols, weights) arrays,
    one entry per sample, weight 0 for samples off the map."""
    iy, ix = np.meshgrid(np.arange(grid_h), np.arange(grid_w), indexing="ij")
    y = y1 + i * bin_h + (iy + 0.5) * bin_h / grid_h
    x = x1 + j * bin_w + (ix + 0.5) * bin_w / grid_w
    valid = (y >= -1) & (y <= height) & (x >= -1) & (x <= width)
    y = np.where(valid, np.maximum(y, 0), 0)
    x = np.where(valid, np.maximum(x, 0), 0)
    y_lo, x_lo = y.astype(np.int64), x.astype(np.int64)
    y_edge, x_edge = y_lo >= height - 1, x_lo >= width - 1
    y_lo = np.where(y_edge, height - 1, y_lo)
    x_lo = np.where(x_edge, width - 1, x_lo)
    y_hi = np.where(y_edge, height - 1, y_lo + 1)
    x_hi = np.where(x_edge, width - 1, x_lo + 1)
    y = np.where(y_edge, y_lo, y)
    x = np.where(x_edge, x_lo, x)
    ly, lx = y - y_lo, x - x_lo
    hy, hx = 1 - ly, 1 - lx
    taps = [(y_lo, x_lo, hy * hx), (y_lo, x_hi, hy * lx), (y_hi, x_lo, ly * hx), (y_hi, x_hi, ly * lx)]
    return [(r, c, np.where(valid, w, 0.0)) for r, c, w in taps]


def reference_roi_align(features, rois, output_size, spatial_scale=1.0, sampling_ratio=-1, aligned=False):
    features = np.asarray(features, dtype=np.float64)
    rois = np.asarray(rois, dtype=np.float64)
    _, channels, height, width = features.shape
    ph, pw = output_size
    out = np.zeros((len(rois), channels, ph, pw))
    for k, roi in enumerate(rois):
        y1, x1, bin_h, bin_w, grid_h, grid_w, count = _geometry(roi, output_size, spatial_scale, sampling_ratio,
                                                                aligned)
        plane = features[int(roi[0])]
        for i in range(ph):
            for j in range(pw):
                for r, c, w in _bin_samples(y1, x1, bin_h, bin_w, grid_h, grid_w, i, j, height, width):
                    out[k, :, i, j] += (plane[:, r, c] * w).sum(axis=(1, 2))
                out[k, :, i, j] /= count
    return out


def reference_roi_align_backward(grad, rois, input_shape, output_size, spatial_scale=1.0, sampling_ratio=-1,
                                 aligned=False):
    grad = np.asarray(grad, dtype=np.float64)
    rois = np.asarray(rois, dtype=np.float64)
    grad_input = np.zeros(input_shape)
    _, _, height, width = input_shape
    ph, pw = output_size
    for k, roi in enumerate(rois):
        y1, x1, bin_h, bin_w, grid_h, grid_w, count = _geometry(roi, output_size, spatial_scale, sampling_ratio,
                                                                aligned)
        plane = grad_input[int(roi[0])]
        for i in range(ph):
            for j in range(pw):
                for r, c, w in _bin_samples(y1, x1, bin_h, bin_w, grid_h, grid_w, i, j, height, width):
                    for rr, cc, ww in zip(r.ravel(), c.ravel(), w.ravel()):
                        plane[:, rr, cc] += grad[k, :, i, j] * ww / count
    return grad_input


# --- inputs ---------------------------------------------------------------------------------

def random_features(rng, shape, dtype=np.float64):
    return rng.standard_normal(shape).astype(dtype)


def random_rois(rng, k, batch_size, height, width, spatial_scale=1.0, dtype=np.float64):
    """RoIs in image coordinates, mostly on the map, some sticking out."""
    size_y, size_x = height / spatial_scale, width / spatial_scale
    x1 = rng.uniform(-0.2 * size_x, size_x, k)
    y1 = rng.uniform(-0.2 * size_y, size_y, k)
    x2 = x1 + rng.uniform(0.1, 0.8 * size_x, k)
    y2 = y1 + rng.uniform(0.1, 0.8 * size_y, k)
    batch = rng.integers(0, batch_size, k)
    return np.stack([batch, x1, y1, x2, y2], axis=1).astype(dtype)


def edge_case_rois(height, width, dtype=np.float64):
    """Degenerate, inverted, off-map, map-sized, larger-than-map RoIs, and
    RoIs whose samples land exactly on -1, 0, H - 1 and H."""
    return np.array(
        [
            [0, 3, 3, 3, 3],  # a point
            [0, 2, 4, 9, 4],  # zero height
            [1, 9, 9, 2, 2],  # inverted
            [0, -30, -30, -10, -10],  # off the map, top left
            [1, width + 5, height + 5, width + 40, height + 40],  # off the map, bottom right
            [1, -3, -2, width + 3, height + 4],  # larger than the map
            [0, 0, 0, width, height],  # the whole map
            [0, -1.5, -1.5, -0.5, -0.5],  # samples at -1 (not aligned) / just below
            [1, width - 1, height - 1, width + 1, height + 1],  # samples at H - 1 .. H
            [0, -2, -2, 10 * width, 10 * height],  # huge: big adaptive grids
        ],
        dtype=dtype,
    )


# --- forward --------------------------------------------------------------------------------

@pytest.mark.parametrize("dtype,atol", [(np.float32, 2e-5), (np.float64, 1e-12)])
@pytest.mark.parametrize("aligned", [False, True])
@pytest.mark.parametrize("sampling_ratio", [-1, 0, 2, 3])
def test_random_rois_match_reference(rng, dtype, atol, aligned, sampling_ratio):
    scale = float(rng.choice([1.0, 0.5, 0.25]))
    features = random_features(rng, (2, 3, 11, 14), dtype)
    rois = random_rois(rng, 9, 2, 11, 14, scale, dtype)
    output_size = (int(rng.integers(1, 5)), int(rng.integers(1, 5)))
    out = roi_align(features, rois, output_size, scale, sampling_ratio, aligned)
    assert isinstance(out, np.ndarray) and out.dtype == dtype and out.shape == (9, 3, *output_size)
    expected = reference_roi_align(features, rois, output_size, scale, sampling_ratio, aligned)
    np.testing.assert_allclose(out, expected, atol=atol, rtol=0)


@pytest.mark.parametrize("aligned", [False, True])
@pytest.mark.parametrize("sampling_ratio", [-1, 2])
def test_edge_case_rois_match_reference(rng, aligned, sampling_ratio):
    features = random_features(rng, (2, 2, 6, 9))
    rois = edge_case_rois(6, 9)
    out = roi_align(features, rois, (3, 2), 1.0, sampling_ratio, aligned)
    expected = reference_roi_align(features, rois, (3, 2), 1.0, sampling_ratio, aligned)
    np.testing.assert_allclose(out, expected, atol=1e-12, rtol=0)
    off_map = [3, 4]
    assert np.all(out[off_map] == 0)


def test_int_output_size_and_the_module_match_the_function(rng):
    features = random_features(rng, (1, 2, 8, 8))
    rois = random_rois(rng, 4, 1, 8, 8)
    np.testing.assert_array_equal(roi_align(features, rois, 3), roi_align(features, rois, (3, 3)))
    if torch is not None:
        module = RoIAlign((2, 3), 0.5, 2, aligned=True)
        t = torch.from_numpy(features)
        np.testing.assert_array_equal(module(t, torch.from_numpy(rois)).numpy(),
                                      roi_align(features, rois, (2, 3), 0.5, 2, True))
        assert "aligned=True" in repr(module)


def test_list_of_boxes_is_the_same_as_rois(rng):
    features = random_features(rng, (3, 2, 10, 10))
    per_image = [random_rois(rng, n, 1, 10, 10)[:, 1:] for n in (2, 0, 3)]
    rois = np.concatenate([np.concatenate([np.full((len(b), 1), i), b], 1) for i, b in enumerate(per_image)])
    expected = roi_align(features, rois, 2, 1.0, 2)
    np.testing.assert_array_equal(roi_align(features, per_image, 2, 1.0, 2), expected)
    if torch is not None:
        got = roi_align(torch.from_numpy(features), [torch.from_numpy(b) for b in per_image], 2, 1.0, 2)
        np.testing.assert_array_equal(got.numpy(), expected)


# --- huge, NaN and infinite RoIs --------------------------------------------------------------

def test_huge_roi_with_a_huge_adaptive_grid_matches_reference(rng):
    # 1,000 x 1,000 samples per bin, nearly all off the map; the kernel only
    # visits the samples that touch it, the average still counts them all.
    features = random_features(rng, (1, 2, 5, 6))
    rois = np.array([[0, -3, -2, 2000, 2000]], np.float64)
    out = roi_align(features, rois, 2, 1.0, -1, True)
    np.testing.assert_allclose(out, reference_roi_align(features, rois, (2, 2), 1.0, -1, True), atol=1e-15, rtol=0)
    assert out[0, :, 0, 0].any()


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("aligned", [False, True])
@pytest.mark.parametrize("sampling_ratio", [-1, 2])
def test_non_finite_and_enormous_rois_pool_to_zero(rng, dtype, aligned, sampling_ratio):
    """The documented rule: samples at NaN/infinite coordinates contribute 0,
    and a NaN/infinite adaptive grid has no samples."""
    features = random_features(rng, (2, 3, 7, 8), dtype)
    bad = np.array(
        [
            [0, np.nan, 1, 4, 4],
            [1, 1, np.nan, 4, 4],
            [0, 1, 1, np.nan, 4],
            [1, 1, 1, 4, np.nan],
            [0, 0, 0, np.inf, 5],
            [1, -np.inf, 0, 5, 5],
            [0, 0, -np.inf, 5, np.inf],
            [1, 0, 0, 1e30, 1e30],  # every sample off the map
        ],
        dtype=dtype,
    )
    # Samples 1e22 apart: one may cancel to exactly 0, weighted by 1 / 2**48.
    enormous = np.array([[0, -1e30, -1e30, 1e30, 1e30]], dtype=dtype)
    good = random_rois(rng, 3, 2, 7, 8, dtype=dtype)
    with np.errstate(all="ignore"):
        out = roi_align(features, np.concatenate([bad, enormous, good]), (2, 3), 1.0, sampling_ratio, aligned)
    assert np.all(np.isfinite(out))
    np.testing.assert_array_equal(out[: len(bad)], 0)
    assert np.all(np.abs(out[len(bad)]) < 1e-12)
    out = out[len(bad) + 1:]
    expected = reference_roi_align(features, good, (2, 3), 1.0, sampling_ratio, aligned)
    np.testing.assert_allclose(out, expected, atol=2e-5 if dtype == np.float32 else 1e-12, rtol=0)


def test_nan_roi_does_not_crash_the_process():
    # torchvision 0.29's CPU kernel segfaults on this input; run it in a child
    # process so a crash fails this test instead of the whole session.
    code = (
        "import numpy as np\n"
        "from detcore.ops import roi_align\n"
        "x = np.ones((1, 4, 32, 32), np.float32)\n"
        "r = np.array([[0, np.nan, np.nan, np.nan, np.nan], [0, 0, 0, np.nan, 8]], np.float32)\n"
        "print(float(np.abs(roi_align(x, r, 7, 0.5, -1, False)).sum()))\n"
    )
    env = dict(os.environ, PYTHONPATH=os.path.dirname(os.path.dirname(os.path.abspath(detcore.__file__))))
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, env=env)
    assert done.returncode == 0, done.stderr
    assert float(done.stdout) == 0.0


# --- empty inputs -----------------------------------------------------------------------------

@pytest.mark.parametrize("shape,k", [((2, 3, 5, 5), 0), ((0, 3, 5, 5), 0), ((1, 0, 5, 5), 2), ((1, 2, 0, 5), 2),
                                     ((1, 2, 5, 0), 1)])
def test_empty_inputs(rng, shape, k):
    features = np.zeros(shape, np.float32)
    rois = random_rois(rng, k, max(shape[0], 1), 5, 5, dtype=np.float32)
    out = roi_align(features, rois, (2, 3), 1.0, -1, True)
    assert out.shape == (k, shape[1], 2, 3) and out.dtype == np.float32
    np.testing.assert_array_equal(out, 0)  # an empty map has nothing to sample


# --- bad input --------------------------------------------------------------------------------

def _good():
    return np.zeros((2, 3, 8, 8), np.float32), np.array([[0, 0, 0, 4, 4], [1, 1, 1, 5, 5]], np.float32)


@pytest.mark.parametrize(
    "change,error,words",
    [
        (dict(input=np.zeros((3, 8, 8), np.float32)), ValueError, "input"),
        (dict(input=np.zeros((2, 3, 8, 8), np.int64)), TypeError, "input"),
        (dict(input=np.zeros((2, 3, 8, 8), np.float16)), TypeError, "boxes"),  # float32 RoIs
        (dict(input=[[1.0]]), TypeError, "input"),
        (dict(boxes=np.zeros((2, 4), np.float32)), ValueError, "boxes"),
        (dict(boxes=np.zeros((5,), np.float32)), ValueError, "boxes"),
        (dict(boxes=np.zeros((2, 5), np.float64)), TypeError, "boxes"),
        (dict(boxes=[]), ValueError, "boxes"),
        (dict(boxes=[np.zeros((2, 5), np.float32)]), ValueError, r"boxes\[0\]"),
        (dict(boxes=np.array([[2, 0, 0, 4, 4]], np.float32)), ValueError, "boxes"),
        (dict(boxes=np.array([[-1, 0, 0, 4, 4]], np.float32)), ValueError, "boxes"),
        (dict(boxes=np.array([[0.5, 0, 0, 4, 4]], np.float32)), ValueError, "boxes"),
        (dict(boxes=np.array([[np.nan, 0, 0, 4, 4]], np.float32)), ValueError, "boxes"),
        (dict(boxes=np.array([[np.inf, 0, 0, 4, 4]], np.float32)), ValueError, "boxes"),
        (dict(output_size=0), ValueError, "output_size"),
        (dict(output_size=(2, -1)), ValueError, "output_size"),
        (dict(output_size=(2,)), ValueError, "output_size"),
        (dict(output_size=2.0), TypeError, "output_size"),
        (dict(output_size=(2, 1.5)), TypeError, "output_size"),
        (dict(spatial_scale=0.0), ValueError, "spatial_scale"),
        (dict(spatial_scale=-0.5), ValueError, "spatial_scale"),
        (dict(spatial_scale=float("nan")), ValueError, "spatial_scale"),
        (dict(spatial_scale=float("inf")), ValueError, "spatial_scale"),
        (dict(spatial_scale="1"), TypeError, "spatial_scale"),
        (dict(sampling_ratio=2.0), TypeError, "sampling_ratio"),
        (dict(sampling_ratio=True), TypeError, "sampling_ratio"),
        (dict(sampling_ratio=2**40), ValueError, "sampling_ratio"),
        (dict(aligned=1), TypeError, "aligned"),
    ],
)
def test_bad_input_is_refused_with_the_argument_named(change, error, words):
    features, rois = _good()
    kwargs = dict(input=features, boxes=rois, output_size=2, spatial_scale=1.0, sampling_ratio=-1, aligned=False)
    kwargs.update(change)
    with pytest.raises(error, match=words):
        roi_align(**kwargs)


def test_native_entry_checks_what_the_python_layer_does_not():
    features, rois = _good()
    out = np.empty((2, 3, 2, 2), np.float32)
    with pytest.raises(ValueError, match="out"):
        detcore._C.roi_align_forward(2, 2, 1.0, -1, False, features, rois, np.empty((2, 3, 2, 3), np.float32))
    with pytest.raises(ValueError, match="spatial_scale"):
        detcore._C.roi_align_forward(2, 2, float("nan"), -1, False, features, rois, out)
    with pytest.raises(ValueError, match="output_size"):
        detcore._C.roi_align_forward(0, 2, 1.0, -1, False, features, rois, out)
    with pytest.raises(ValueError, match="grad_output"):
        detcore._C.roi_align_backward(2, 2, 1.0, -1, False, False, np.zeros((2, 3, 2, 3), np.float32), rois,
                                      np.empty_like(features), np.empty(0, np.uint8))
    with pytest.raises(TypeError, match="workspace"):
        detcore._C.roi_align_backward(2, 2, 1.0, -1, False, False, out, rois, np.empty_like(features),
                                      np.empty(0, np.float32))
    misaligned = np.empty(17, np.uint8)[1:]
    with pytest.raises(ValueError, match="workspace: expected memory aligned"):
        detcore._C.roi_align_backward(2, 2, 1.0, -1, False, False, out, rois, np.empty_like(features), misaligned)


# --- autograd, torch, torch.compile, DLPack ---------------------------------------------------

@needs_torch
@pytest.mark.parametrize("aligned", [False, True])
@pytest.mark.parametrize("sampling_ratio", [-1, 2])
def test_backward_matches_reference(rng, aligned, sampling_ratio):
    scale = 0.5
    features = random_features(rng, (2, 3, 9, 10))
    rois = np.concatenate([random_rois(rng, 8, 2, 9, 10, scale), edge_case_rois(9, 10) / [1, 2, 2, 2, 2]])
    x = torch.from_numpy(features).requires_grad_()
    out = roi_align(x, torch.from_numpy(rois), (3, 2), scale, sampling_ratio, aligned)
    grad = rng.standard_normal(out.shape)
    out.backward(torch.from_numpy(grad))
    expected = reference_roi_align_backward(grad, rois, features.shape, (3, 2), scale, sampling_ratio, aligned)
    np.testing.assert_allclose(x.grad.numpy(), expected, atol=1e-12, rtol=0)


@needs_torch
@pytest.mark.parametrize("aligned", [False, True])
def test_gradcheck_float64(rng, aligned):
    x = torch.from_numpy(random_features(rng, (2, 2, 6, 7))).requires_grad_()
    rois = torch.from_numpy(random_rois(rng, 5, 2, 6, 7, 0.5))
    for sampling_ratio in (-1, 2):
        fn = lambda t, s=sampling_ratio: roi_align(t, rois, (2, 3), 0.5, s, aligned)  # noqa: E731
        assert torch.autograd.gradcheck(fn, (x,))


@needs_torch
def test_backward_is_deterministic_and_independent_of_thread_count(rng):
    x = torch.from_numpy(random_features(rng, (2, 4, 20, 20), np.float32)).requires_grad_()
    rois = torch.from_numpy(random_rois(rng, 200, 2, 20, 20, dtype=np.float32))  # heavily overlapping
    grad = torch.from_numpy(rng.standard_normal((200, 4, 5, 5)).astype(np.float32))
    results = []
    before = detcore.num_threads()
    try:
        for threads in (1, 2, 3, 2):
            detcore.set_num_threads(threads)
            x.grad = None
            roi_align(x, rois, 5, 1.0, -1, True).backward(grad)
            results.append(x.grad.clone())
    finally:
        detcore.set_num_threads(before)
    for r in results[1:]:
        assert torch.equal(r, results[0])


@needs_torch
class TestTorch:
    def test_no_gradient_for_boxes(self, rng):
        x = torch.from_numpy(random_features(rng, (1, 2, 6, 6))).requires_grad_()
        rois = torch.from_numpy(random_rois(rng, 3, 1, 6, 6)).requires_grad_()
        roi_align(x, rois, 2).sum().backward()
        assert rois.grad is None and x.grad is not None

    def test_torch_compile_fullgraph_forward_and_backward(self, rng):
        features = torch.from_numpy(random_features(rng, (2, 3, 10, 11), np.float32))
        rois = torch.from_numpy(random_rois(rng, 7, 2, 10, 11, 0.5, np.float32))

        def loss(x, r):
            return (roi_align(x, r, (3, 2), 0.5, -1, True) ** 2).sum()

        compiled = torch.compile(loss, fullgraph=True)
        x1 = features.clone().requires_grad_()
        x2 = features.clone().requires_grad_()
        value = compiled(x1, rois)
        value.backward()
        expected = loss(x2, rois)
        expected.backward()
        torch.testing.assert_close(value, expected)
        torch.testing.assert_close(x1.grad, x2.grad)

    def test_mixed_frameworks_are_refused(self, rng):
        features, rois = _good()
        with pytest.raises(TypeError, match="one framework"):
            roi_align(torch.from_numpy(features), rois, 2)

    def test_deterministic_argument_is_accepted_on_cpu(self, rng):
        x = torch.from_numpy(random_features(rng, (1, 2, 6, 6))).requires_grad_()
        rois = torch.from_numpy(random_rois(rng, 4, 1, 6, 6))
        roi_align(x, rois, 2, deterministic=True).sum().backward()
        g1 = x.grad.clone()
        x.grad = None
        roi_align(x, rois, 2).sum().backward()
        assert torch.equal(g1, x.grad)


# --- CUDA (compared with the CPU kernel) ------------------------------------------------------

def _cuda_case(rng, k=300, shape=(2, 16, 40, 50), scale=0.5):
    features = random_features(rng, shape)
    rois = np.concatenate([random_rois(rng, k, shape[0], shape[2], shape[3], scale),
                           edge_case_rois(shape[2], shape[3]) / [1, *(4 * [scale])]])
    return torch.from_numpy(features), torch.from_numpy(rois)


@needs_torch
@pytest.mark.cuda
class TestCuda:
    @pytest.mark.parametrize("aligned", [False, True])
    @pytest.mark.parametrize("sampling_ratio", [-1, 2])
    def test_forward_and_backward_match_cpu(self, rng, aligned, sampling_ratio):
        features, rois = _cuda_case(rng)
        grad = torch.from_numpy(rng.standard_normal((len(rois), 16, 3, 4)))
        args = ((3, 4), 0.5, sampling_ratio, aligned)
        for dtype, tol in [(torch.float32, 1e-5), (torch.float64, 1e-12), (torch.float16, 1e-2),
                           (torch.bfloat16, 5e-2)]:
            # The CPU reference in float64 on the same (rounded) inputs.
            x = features.to(dtype).double().requires_grad_()
            expected = roi_align(x, rois.to(dtype).double(), *args)
            expected.backward(grad.to(dtype).double())
            grad_scale = float(x.grad.abs().max())
            for deterministic in (False, True):
                xc = features.to("cuda", dtype).requires_grad_()
                out = roi_align(xc, rois.to("cuda", dtype), *args, deterministic=deterministic)
                out.backward(grad.to("cuda", dtype))
                assert out.dtype == dtype and xc.grad.dtype == dtype
                torch.testing.assert_close(out.cpu().double(), expected.detach(), atol=tol, rtol=tol)
                torch.testing.assert_close(xc.grad.cpu().double(), x.grad, atol=10 * tol * grad_scale, rtol=tol)

    def test_deterministic_backward_is_bitwise_reproducible(self, rng):
        features, rois = _cuda_case(rng, k=2000, shape=(2, 8, 30, 30), scale=1.0)
        grad = torch.from_numpy(rng.standard_normal((len(rois), 8, 7, 7))).float().cuda()
        x = features.float().cuda().requires_grad_()
        rois = rois.float().cuda()
        grads = []
        for _ in range(3):
            x.grad = None
            roi_align(x, rois, 7, 1.0, -1, True, deterministic=True).backward(grad)
            grads.append(x.grad.clone())
        for g in grads[1:]:
            assert torch.equal(g, grads[0])
        torch.use_deterministic_algorithms(True)
        try:
            x.grad = None
            roi_align(x, rois, 7, 1.0, -1, True).backward(grad)
            assert torch.equal(x.grad, grads[0])
        finally:
            torch.use_deterministic_algorithms(False)

    def test_runs_on_the_current_stream(self, rng):
        features, rois = _cuda_case(rng)
        expected = roi_align(features, rois, 4, 0.5, 2, True)
        stream = torch.cuda.Stream()
        with torch.cuda.stream(stream):
            x = features.cuda().requires_grad_()
            out = roi_align(x, rois.cuda(), 4, 0.5, 2, True)
            out.sum().backward()
        stream.synchronize()
        torch.testing.assert_close(out.cpu(), expected, atol=1e-12, rtol=0)

    def test_bad_batch_index_and_nan_rois_pool_to_zero(self, rng):
        features = torch.from_numpy(random_features(rng, (2, 3, 8, 8))).cuda().requires_grad_()
        rois = torch.tensor([[2, 0, 0, 4, 4], [-1, 0, 0, 4, 4], [0.5, 0, 0, 4, 4], [float("nan"), 0, 0, 4, 4],
                             [0, float("nan"), 0, 4, 4], [1, 1, 1, 5, 5]], dtype=torch.float64).cuda()
        out = roi_align(features, rois, 2, 1.0, -1, False)
        assert torch.all(out[:5] == 0) and torch.any(out[5] != 0)
        out.sum().backward()
        assert torch.all(features.grad[0] == 0)

    def test_cuda_dlpack_inputs_go_through_torch(self, rng):
        features, rois = _cuda_case(rng, k=10)
        out = roi_align(DLPackArray(features.cuda()), DLPackArray(rois.cuda()), 3, 0.5, 2, True)
        torch.testing.assert_close(torch.from_dlpack(out).cpu(), roi_align(features, rois, 3, 0.5, 2, True),
                                   atol=1e-12, rtol=0)

    def test_compile_on_cuda(self, rng):
        features, rois = _cuda_case(rng, k=20)
        x = features.float().cuda().requires_grad_()
        compiled = torch.compile(lambda t, r: roi_align(t, r, 3, 0.5, 2, True).sum(), fullgraph=True)
        compiled(x, rois.float().cuda()).backward()
        assert x.grad is not None and torch.isfinite(x.grad).all()


@pytest.mark.skipif(torch is None, reason="needs torch for bfloat16")
@pytest.mark.parametrize("dtype", HALF_DTYPES)
@pytest.mark.parametrize("aligned", [False, True])
def test_half_precision_forward_and_backward_compute_in_float(rng, dtype, aligned):
    shape, output_size, scale = (2, 5, 12, 14), (3, 4), 0.5
    x = to_half(random_features(rng, shape), dtype).requires_grad_()
    rois = to_half(random_rois(rng, 9, 2, 12, 14, scale), dtype)
    out = roi_align(x, rois, output_size, scale, -1, aligned)
    x32 = x.detach().float().requires_grad_()
    out32 = roi_align(x32, rois.float(), output_size, scale, -1, aligned)
    x64, rois64 = x.detach().double().numpy(), rois.double().numpy()
    reference = reference_roi_align(x64, rois64, output_size, scale, -1, aligned)
    assert_half_result(out.detach(), out32.detach(), reference, dtype, scale=np.abs(reference).max())

    grad = to_half(rng.standard_normal(out.shape), dtype)
    out.backward(grad)
    out32.backward(grad.float())
    reference = reference_roi_align_backward(grad.double().numpy(), rois64, shape, output_size, scale, -1, aligned)
    assert_half_result(x.grad, x32.grad, reference, dtype, scale=np.abs(reference).max())
    if dtype == "float16":  # the numpy path
        np.testing.assert_array_equal(roi_align(x.detach().numpy(), rois.numpy(), output_size, scale, -1, aligned),
                                      out.detach().numpy())


def test_backward_workspace_query():
    # A float accumulation buffer for the atomics of CUDA's half types only.
    query = detcore._C.roi_align_backward_workspace_bytes
    assert query("cpu", "float16", 7, 7, 0.25, 2, True, False, 1000) == 0
    assert query("cuda:1", "float32", 7, 7, 0.25, 2, True, False, 1000) == 0
    assert query("cuda:1", "bfloat16", 7, 7, 0.25, 2, True, False, 1000) == 4000
    assert query("cuda", "float16", 7, 7, 0.25, 2, True, True, 1000) == 0  # deterministic: no atomics
    with pytest.raises(ValueError, match="grad_input_numel"):
        query("cpu", "float32", 7, 7, 0.25, 2, True, False, -1)
