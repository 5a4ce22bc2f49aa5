import math

import numpy as np
import pytest

from detcore.ops import cell_anchors, make_anchors

try:
    import torch
except ImportError:
    torch = None

try:  # only where torchvision is installed (not a detcore dependency)
    from torchvision.models.detection.anchor_utils import AnchorGenerator
    from torchvision.models.detection.image_list import ImageList
except Exception:
    AnchorGenerator = None

FPN_SIZES = ((32,), (64,), (128,), (256,), (512,))
RATIOS = (0.5, 1.0, 2.0)


def reference_cell_anchors(sizes, ratios):
    """torchvision's convention, spelled out: float32 arithmetic (as
    AnchorGenerator computes its cell anchors), ratio-major order, numpy's
    round (half to even, like torch.round)."""
    f32 = np.float32
    rows = []
    for ratio in ratios:
        h_ratio = np.sqrt(f32(ratio))
        w_ratio = f32(1) / h_ratio
        for size in sizes:
            ws, hs = w_ratio * f32(size), h_ratio * f32(size)
            rows.append([np.round(-ws / f32(2)), np.round(-hs / f32(2)), np.round(ws / f32(2)), np.round(hs / f32(2))])
    return np.array(rows, dtype=np.float32).reshape(-1, 4)


def reference_anchors(height, width, stride_h, stride_w, sizes, ratios, dtype=np.float64):
    """Loops in the documented order: y, then x, then the cell anchors; the
    integer shift and the cell coordinate each in `dtype`, then added."""
    cells = reference_cell_anchors(sizes, ratios).astype(dtype)
    rows = []
    for y in range(height):
        for x in range(width):
            shift = np.array([x * stride_w, y * stride_h, x * stride_w, y * stride_h], dtype=dtype)
            for cell in cells:
                rows.append(shift + cell)
    return np.array(rows, dtype=dtype).reshape(-1, 4)


def fpn_feature_sizes(image_h, image_w, strides=(4, 8, 16, 32, 64)):
    return [(math.ceil(image_h / s), math.ceil(image_w / s)) for s in strides]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_fpn_config_matches_reference(dtype):
    feature_sizes = fpn_feature_sizes(96, 136)
    strides = [(96 // h, 136 // w) for h, w in feature_sizes]  # as torchvision derives them
    out = make_anchors(feature_sizes, strides, FPN_SIZES, RATIOS, dtype=dtype)
    assert len(out) == 5
    for (h, w), (sh, sw), sizes, level in zip(feature_sizes, strides, FPN_SIZES, out):
        assert level.dtype == dtype and level.shape == (h * w * 3, 4)
        np.testing.assert_array_equal(level, reference_anchors(h, w, sh, sw, sizes, RATIOS, dtype))


def test_c4_config_nine_anchors_per_location_stride_16():
    sizes = (128, 256, 512)
    (out,) = make_anchors([(25, 38)], [16], (sizes,), (RATIOS,))
    assert out.shape == (25 * 38 * 9, 4)
    np.testing.assert_array_equal(out, reference_anchors(25, 38, 16, 16, sizes, RATIOS, np.float32))
    # The 9 anchors of a location are contiguous, then the next x.
    np.testing.assert_array_equal(out[9:18] - out[:9], np.tile([16, 0, 16, 0], (9, 1)))


@pytest.mark.parametrize("stride", [1, 3, 7, (5, 11), (13, 2)])
def test_odd_and_unequal_strides(stride):
    sh, sw = stride if isinstance(stride, tuple) else (stride, stride)
    (out,) = make_anchors([(7, 9)], [stride], (24, 40), (0.25, 1.0, 3.0))
    np.testing.assert_array_equal(out, reference_anchors(7, 9, sh, sw, (24, 40), (0.25, 1.0, 3.0), np.float32))


def test_non_integer_sizes_and_ratios_like_retinanet():
    sizes = tuple(x * 2 ** (k / 3) for x in (32, 64) for k in range(3))
    ratios = (0.5, 1.0, 2.0, 1 / 3)
    (out,) = make_anchors([(5, 6)], [8], sizes, ratios, dtype=np.float64)
    np.testing.assert_array_equal(out, reference_anchors(5, 6, 8, 8, sizes, ratios))


def test_cell_anchors_round_half_to_even():
    # Size 33 at ratio 1 has half-width 16.5 exactly: half to even gives 16, half up 17.
    sizes = (1, 3, 33, 35, 37)
    cells = cell_anchors(sizes, (1.0,))
    half = np.array(sizes, dtype=np.float32) / 2
    np.testing.assert_array_equal(cells[:, 2], np.round(half))
    assert (np.round(half) != np.floor(half + 0.5)).any()  # the cases do tell the two roundings apart
    np.testing.assert_array_equal(cells[:, 0], -cells[:, 2])


def test_cell_anchors_match_reference_and_first_grid_cell(rng):
    sizes = tuple(rng.uniform(4, 600, 4))
    ratios = tuple(rng.uniform(0.1, 5, 3))
    cells = cell_anchors(sizes, ratios)
    assert cells.dtype == np.float32 and cells.shape == (12, 4)
    np.testing.assert_array_equal(cells, reference_cell_anchors(sizes, ratios))
    # Within rounding of the exact float64 geometry, and centred.
    for r, ratio in enumerate(ratios):
        for s, size in enumerate(sizes):
            a = cells[r * len(sizes) + s].astype(np.float64)
            half_w, half_h = size / math.sqrt(ratio) / 2, size * math.sqrt(ratio) / 2
            exact = np.array([-half_w, -half_h, half_w, half_h])
            np.testing.assert_allclose(a, exact, atol=0.5 + 1e-3)
    (grid,) = make_anchors([(1, 1)], [8], sizes, ratios)
    np.testing.assert_array_equal(grid, cells)


def test_more_anchors_than_one_kernel_chunk():
    sizes = tuple(range(10, 100, 10))  # 9 sizes
    ratios = tuple(0.25 * k for k in range(1, 9))  # 8 ratios: 72 anchors per location
    (out,) = make_anchors([(3, 4)], [(16, 8)], sizes, ratios)
    np.testing.assert_array_equal(out, reference_anchors(3, 4, 16, 8, sizes, ratios, np.float32))


def test_flat_sizes_are_used_for_every_level():
    feature_sizes = [(4, 5), (2, 3)]
    flat = make_anchors(feature_sizes, [8, 16], (16, 32), RATIOS)
    per_level = make_anchors(feature_sizes, [8, 16], ((16, 32), (16, 32)), (RATIOS, RATIOS))
    for a, b in zip(flat, per_level):
        np.testing.assert_array_equal(a, b)
    assert flat[0].shape == (4 * 5 * 6, 4)


def test_large_shifts_round_like_float32_sums():
    (out,) = make_anchors([(1, 20)], [(1, 1_000_003)], (32,), (1.0,))
    np.testing.assert_array_equal(out, reference_anchors(1, 20, 1, 1_000_003, (32,), (1.0,), np.float32))


@pytest.mark.parametrize("feature_sizes", [[(0, 5)], [(5, 0)], [(0, 0), (3, 2)]])
def test_empty_grids_give_empty_levels(feature_sizes):
    out = make_anchors(feature_sizes, [4] * len(feature_sizes), (32,), RATIOS)
    for (h, w), level in zip(feature_sizes, out):
        assert level.shape == (h * w * 3, 4) and level.dtype == np.float32


def test_no_levels_give_an_empty_list():
    assert make_anchors([], [], (32,), RATIOS) == []


@pytest.mark.parametrize(
    "kwargs,error,words",
    [
        (dict(feature_sizes=[(4, -1)]), ValueError, r"feature_sizes\[0\]\[1\]"),
        (dict(feature_sizes=[(4.0, 4)]), TypeError, r"feature_sizes\[0\]\[0\]"),
        (dict(feature_sizes=[(4, 4, 4)]), ValueError, r"feature_sizes\[0\]"),
        (dict(feature_sizes=(4, 4)), ValueError, r"feature_sizes\[0\]"),
        (dict(feature_sizes=None), TypeError, "feature_sizes"),
        (dict(strides=[0]), ValueError, r"strides\[0\]"),
        (dict(strides=[(4, -2)]), ValueError, r"strides\[0\]\[1\]"),
        (dict(strides=[4.5]), TypeError, r"strides\[0\]"),
        (dict(strides=[4, 8]), ValueError, "strides"),
        (dict(strides=[(4, 4, 4)]), ValueError, r"strides\[0\]"),
        (dict(sizes=(32, -1)), ValueError, r"sizes\[1\]"),
        (dict(sizes=(0,)), ValueError, r"sizes\[0\]"),
        (dict(sizes=(math.inf,)), ValueError, r"sizes\[0\]"),
        (dict(sizes=(math.nan,)), ValueError, r"sizes\[0\]"),
        (dict(sizes=("32",)), TypeError, r"sizes\[0\]"),
        (dict(sizes=32), TypeError, "sizes"),
        (dict(sizes=()), ValueError, "sizes"),
        (dict(sizes=((32,), (64,))), ValueError, "sizes"),
        (dict(aspect_ratios=(0.5, 0.0)), ValueError, r"aspect_ratios\[1\]"),
        (dict(aspect_ratios=((-1.0,),)), ValueError, r"aspect_ratios\[0\]\[0\]"),
        (dict(aspect_ratios=(True,)), TypeError, r"aspect_ratios\[0\]"),
        (dict(dtype=np.int32), TypeError, "dtype"),
        (dict(dtype=np.float16), TypeError, "dtype"),
        (dict(dtype="not a dtype"), TypeError, "dtype"),
    ],
)
def test_bad_input_is_refused_with_the_argument_named(kwargs, error, words):
    args = dict(feature_sizes=[(4, 4)], strides=[4], sizes=(32,), aspect_ratios=RATIOS)
    args.update(kwargs)
    with pytest.raises(error, match=words):
        make_anchors(**args)


def test_float32_underflowing_size_is_refused_by_the_core():
    # Positive in float64 but 0 in float32, where the math runs.
    with pytest.raises(ValueError, match="sizes"):
        make_anchors([(2, 2)], [4], (1e-60,), RATIOS)


@pytest.mark.skipif(torch is None, reason="needs torch")
class TestTorch:
    def test_device_or_torch_dtype_gives_tensors(self):
        feature_sizes = fpn_feature_sizes(64, 96)
        strides = [4, 8, 16, 32, 64]
        expected = make_anchors(feature_sizes, strides, FPN_SIZES, RATIOS, dtype=np.float64)
        by_device = make_anchors(feature_sizes, strides, FPN_SIZES, RATIOS, device="cpu")
        by_dtype = make_anchors(feature_sizes, strides, FPN_SIZES, RATIOS, dtype=torch.float64)
        for e, a, b in zip(expected, by_device, by_dtype):
            assert isinstance(a, torch.Tensor) and a.dtype == torch.float32 and a.device.type == "cpu"
            assert isinstance(b, torch.Tensor) and b.dtype == torch.float64
            np.testing.assert_array_equal(a.numpy(), e)
            np.testing.assert_array_equal(b.numpy(), e)

    def test_cell_anchors_as_tensor(self):
        cells = cell_anchors((32, 64), RATIOS, dtype=torch.float64, device=torch.device("cpu"))
        assert cells.dtype == torch.float64
        np.testing.assert_array_equal(cells.numpy(), reference_cell_anchors((32, 64), RATIOS))

    def test_half_precision_needs_cuda(self):
        with pytest.raises(TypeError, match="dtype"):
            make_anchors([(2, 2)], [4], (32,), RATIOS, dtype=torch.float16)

    @pytest.mark.parametrize("dynamic", [False, True])
    def test_torch_compile_fullgraph_with_feature_map_shapes(self, dynamic):
        def anchors_of(features, size):
            sizes = [f.shape[-2:] for f in features]
            return torch.cat(make_anchors(sizes, [8, 16], ((size,), (2 * size,)), RATIOS, dtype=features[0].dtype,
                                          device=features[0].device))

        compiled = torch.compile(anchors_of, fullgraph=True, dynamic=dynamic)
        for (h, w), size in [((6, 8), 32.0), ((5, 9), 24.0)]:
            features = [torch.zeros(1, 2, h, w), torch.zeros(1, 2, (h + 1) // 2, (w + 1) // 2)]
            torch.testing.assert_close(compiled(features, size), anchors_of(features, size), rtol=0, atol=0)

    @pytest.mark.skipif(AnchorGenerator is None, reason="needs torchvision")
    @pytest.mark.parametrize(
        "sizes,ratios,image_hw,feature_hws",
        [
            (FPN_SIZES, (RATIOS,) * 5, (800, 1216), [(200, 304), (100, 152), (50, 76), (25, 38), (13, 19)]),
            (((128, 256, 512),), (RATIOS,), (800, 1216), [(50, 76)]),
            (((33, 35, 17.5),), ((0.3, 1.0, 2.7),), (99, 121), [(9, 11)]),  # odd strides, half-way roundings
        ],
    )
    @pytest.mark.parametrize("dtype", [torch.float32, torch.float64] if torch is not None else [])
    def test_equal_to_torchvision_anchor_generator(self, sizes, ratios, image_hw, feature_hws, dtype):
        image = torch.zeros(1, 3, *image_hw, dtype=dtype)
        features = [torch.zeros(1, 1, h, w, dtype=dtype) for h, w in feature_hws]
        expected = AnchorGenerator(sizes, ratios)(ImageList(image, [image_hw]), features)[0]
        strides = [(image_hw[0] // h, image_hw[1] // w) for h, w in feature_hws]
        got = torch.cat(make_anchors(feature_hws, strides, sizes, ratios, dtype=dtype))
        assert got.dtype == expected.dtype and torch.equal(got, expected)

    @pytest.mark.cuda
    def test_cuda_matches_cpu(self):
        feature_sizes = fpn_feature_sizes(256, 320)
        strides = [4, 8, 16, 32, 64]
        sizes = tuple((s, s * 1.26) for s in (32, 64, 128, 256, 512))
        for dtype in (torch.float32, torch.float64, torch.float16, torch.bfloat16):
            cpu = make_anchors(feature_sizes, strides, sizes, RATIOS, dtype=torch.float64)
            gpu = make_anchors(feature_sizes, strides, sizes, RATIOS, dtype=dtype, device="cuda")
            for c, g in zip(cpu, gpu):
                assert g.device.type == "cuda" and g.dtype == dtype
                if dtype in (torch.float32, torch.float64):
                    torch.testing.assert_close(g.cpu(), c.to(dtype), rtol=0, atol=0)
                else:  # shift and cell coordinate are each rounded to the half type before the sum
                    atol = 2 * torch.finfo(dtype).eps * max(c.abs().max().item(), 1.0)
                    torch.testing.assert_close(g.cpu().double(), c, rtol=0, atol=atol)

    @pytest.mark.cuda
    def test_cuda_many_anchors_and_empty_levels(self):
        sizes, ratios = tuple(range(10, 100, 10)), tuple(0.25 * k for k in range(1, 9))
        cpu = make_anchors([(3, 4), (0, 7)], [(16, 8), 4], sizes, ratios)
        gpu = make_anchors([(3, 4), (0, 7)], [(16, 8), 4], sizes, ratios, device="cuda")
        for c, g in zip(cpu, gpu):
            np.testing.assert_array_equal(g.cpu().numpy(), c)


def test_dtype_none_means_float32():
    (out,) = make_anchors([(2, 3)], [4], (32,), RATIOS, dtype=None)
    assert out.dtype == np.float32
    np.testing.assert_array_equal(out, reference_anchors(2, 3, 4, 4, (32,), RATIOS, np.float32))
