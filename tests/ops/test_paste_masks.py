import math

import numpy as np
import pytest

from detcore.ops import paste_masks
from helpers import HALF_DTYPES, DLPackArray, assert_half_result, edge_case_boxes, to_half

try:
    import torch
except ImportError:
    torch = None

try:
    from torchvision.models.detection.roi_heads import paste_masks_in_image as tv_paste_masks_in_image
except Exception:  # not installed, or built against another torch
    tv_paste_masks_in_image = None

COORDINATE_LIMIT = 2.0**40


def expanded_int_box(box, mask_h, mask_w):
    """torchvision's expand_boxes + .to(int64), in the boxes' dtype (so the
    truncation sees the same rounding), with the documented clamp; None when
    a coordinate is NaN."""
    t = box.dtype.type
    x1, y1, x2, y2 = box
    with np.errstate(invalid="ignore", over="ignore"):
        w_half = (x2 - x1) * t(0.5) * t((mask_w + 2) / mask_w)
        h_half = (y2 - y1) * t(0.5) * t((mask_h + 2) / mask_h)
        x_c = (x2 + x1) * t(0.5)
        y_c = (y2 + y1) * t(0.5)
        expanded = [x_c - w_half, y_c - h_half, x_c + w_half, y_c + h_half]
    if any(math.isnan(v) for v in expanded):
        return None
    return [int(min(max(float(v), -COORDINATE_LIMIT), COORDINATE_LIMIT)) for v in expanded]


def linear_source(dst, in_size, out_size):
    """align_corners=False source pixels and weights of one output index."""
    src = max((dst + 0.5) * in_size / out_size - 0.5, 0.0)
    i0 = min(int(math.floor(src)), in_size - 1)
    i1 = i0 + 1 if i0 < in_size - 1 else i0
    lam = min(max(src - i0, 0.0), 1.0)
    return i0, i1, 1.0 - lam, lam


CUBIC_A = -0.75  # Keys' kernel as torch and OpenCV use it


def cubic_kernel(x):
    """Keys' cubic convolution kernel at distance |x|."""
    x = abs(x)
    if x <= 1:
        return (CUBIC_A + 2) * x**3 - (CUBIC_A + 3) * x**2 + 1
    if x < 2:
        return CUBIC_A * x**3 - 5 * CUBIC_A * x**2 + 8 * CUBIC_A * x - 4 * CUBIC_A
    return 0.0


def cubic_source(dst, in_size, out_size):
    """align_corners=False source pixels (clamped to the input) and weights
    of one output index of a cubic resize: the four pixels around the source
    coordinate, which is not clamped."""
    src = (dst + 0.5) * in_size / out_size - 0.5
    base = math.floor(src)
    pixels = [min(max(base + k, 0), in_size - 1) for k in (-1, 0, 1, 2)]
    weights = [cubic_kernel(src - (base + k)) for k in (-1, 0, 1, 2)]
    return pixels, weights


def reference_paste_masks(masks, boxes, image_size, mode="bilinear"):
    """Plain float64 loops: pad, expand, truncate, resize bilinearly (or
    bicubically), paste."""
    masks = np.asarray(masks)
    masks = masks.reshape(masks.shape[0], masks.shape[-2], masks.shape[-1])
    height, width = image_size
    n, mh, mw = masks.shape
    out = np.zeros((n, height, width))
    for i in range(n):
        padded = np.zeros((mh + 2, mw + 2))
        padded[1:-1, 1:-1] = masks[i]
        box = expanded_int_box(np.asarray(boxes[i]), mh, mw)
        if box is None:
            continue
        x0, y0, x1, y1 = box
        w, h = max(x1 - x0 + 1, 1), max(y1 - y0 + 1, 1)
        for y in range(max(y0, 0), min(y1 + 1, height)):
            r0, r1, wr0, wr1 = linear_source(y - y0, mh + 2, h)
            rows, row_weights = cubic_source(y - y0, mh + 2, h)
            for x in range(max(x0, 0), min(x1 + 1, width)):
                if mode == "bicubic":
                    cols, col_weights = cubic_source(x - x0, mw + 2, w)
                    out[i, y, x] = sum(wr * wc * padded[r, c] for r, wr in zip(rows, row_weights)
                                       for c, wc in zip(cols, col_weights))
                    continue
                c0, c1, wc0, wc1 = linear_source(x - x0, mw + 2, w)
                out[i, y, x] = (
                    wr0 * (wc0 * padded[r0, c0] + wc1 * padded[r0, c1])
                    + wr1 * (wc0 * padded[r1, c0] + wc1 * padded[r1, c1])
                )
    return out


MODES = ["bilinear", "bicubic"]


def tolerance(dtype, mode):
    """float32 computes the taps in float: the bicubic taps, 16 products of
    weights up to 1.07, move further from the float64 reference."""
    if dtype == np.float64:
        return 1e-12
    return 5e-6 if mode == "bilinear" else 2e-5


def random_masks(rng, n, mh=28, mw=None, dtype=np.float32):
    return rng.uniform(0, 1, (n, mh, mw or mh)).astype(dtype)


def random_boxes(rng, n, image_size, min_side=1.0, max_side=60.0, dtype=np.float32):
    """Boxes of every size centred anywhere around the image, many sticking out
    of it or lying wholly outside."""
    height, width = image_size
    centre = rng.uniform(-0.3, 1.3, (n, 2)) * [width, height]
    wh = rng.uniform(min_side, max_side, (n, 2))
    return np.concatenate([centre - wh / 2, centre + wh / 2], axis=1).astype(dtype)


def tricky_boxes(dtype):
    """Boxes around the image borders, tiny, integer-aligned and degenerate,
    plus the shared edge cases (huge, NaN, inf); image 40 x 50."""
    boxes = np.array(
        [
            [-20, -20, 10, 10],  # top-left corner outside
            [40, 30, 70, 60],  # bottom-right corner outside
            [-30, 5, -2, 20],  # wholly left
            [55, 5, 80, 20],  # wholly right
            [5, -40, 20, -3],  # wholly above
            [5, 45, 20, 70],  # wholly below
            [49.2, 39.4, 49.9, 39.9],  # tiny, at the last pixel
            [10, 10, 10.5, 10.4],  # tiny (w, h < 1)
            [0, 0, 28, 28],  # integer box: the expansion lands on integers
            [3, 4, 31, 32],
            [-1e6, 10, 1e6, 20],  # huge in x only
        ],
        dtype=dtype,
    )
    return np.concatenate([boxes, edge_case_boxes(dtype)])


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_random_masks_match_reference(rng, dtype, mode):
    image_size = (45, 61)
    masks = random_masks(rng, 12, 14, dtype=dtype)
    boxes = random_boxes(rng, 12, image_size, dtype=dtype)
    out = paste_masks(masks, boxes, image_size, mode=mode)
    assert out.dtype == dtype and out.shape == (12, 45, 61)
    np.testing.assert_allclose(out, reference_paste_masks(masks, boxes, image_size, mode),
                               atol=tolerance(dtype, mode), rtol=0)


@pytest.mark.parametrize("mode", MODES)
def test_large_boxes_match_reference(rng, mode):
    # Resized masks with h + w > 128 (ATen's separable bilinear kernel).
    image_size = (120, 150)
    masks = random_masks(rng, 4, 28)
    boxes = random_boxes(rng, 4, image_size, min_side=60, max_side=140)
    np.testing.assert_allclose(paste_masks(masks, boxes, image_size, mode=mode),
                               reference_paste_masks(masks, boxes, image_size, mode),
                               atol=tolerance(np.float32, mode), rtol=0)


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_border_tiny_huge_and_nan_boxes_match_reference(rng, dtype, mode):
    image_size = (40, 50)
    boxes = tricky_boxes(dtype)
    masks = random_masks(rng, len(boxes), 6, dtype=dtype)
    with np.errstate(all="ignore"):
        out = paste_masks(masks, boxes, image_size, mode=mode)
    np.testing.assert_allclose(out, reference_paste_masks(masks, boxes, image_size, mode),
                               atol=tolerance(dtype, mode), rtol=0)


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_random_special_coordinates_match_reference(rng, dtype, mode):
    specials = np.array([np.nan, np.inf, -np.inf, 3e38, -3e38, 1e15, -1e15, 2.0**41, 0.0, -0.5, 1e-45])
    image_size = (int(rng.integers(1, 30)), int(rng.integers(1, 30)))
    boxes = random_boxes(rng, 40, image_size, max_side=40, dtype=np.float64)
    replace = rng.random(boxes.shape) < 0.3
    boxes[replace] = rng.choice(specials, int(replace.sum()))
    boxes = boxes.astype(dtype)
    masks = random_masks(rng, 40, int(rng.integers(1, 9)), int(rng.integers(1, 9)), dtype=dtype)
    with np.errstate(all="ignore"):
        out = paste_masks(masks, boxes, image_size, mode=mode)
        expected = reference_paste_masks(masks, boxes, image_size, mode)
    np.testing.assert_allclose(out, expected, atol=tolerance(dtype, mode), rtol=0)


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_nan_and_inf_boxes_paste_nothing(rng, dtype, mode):
    boxes = np.array(
        [[np.nan, 0, 10, 10], [0, 0, 10, np.nan], [0, 0, np.inf, 10], [-np.inf, 0, 10, 10],
         [0, -np.inf, 10, np.inf], [np.inf, np.inf, np.inf, np.inf]],
        dtype=dtype,
    )
    masks = np.ones((len(boxes), 5, 5), dtype)
    with np.errstate(all="ignore"):
        out = paste_masks(masks, boxes, (20, 20), mode=mode)
    assert not out.any()


@pytest.mark.parametrize("mode", MODES)
def test_huge_box_covers_the_image_with_the_mask_centre(mode):
    # A box far larger than the image: every pixel samples near the mask's
    # centre, a constant 0.7 there (all four cubic taps too).
    masks = np.full((1, 8, 8), 0.7, np.float64)
    out = paste_masks(masks, np.array([[-1e30, -1e30, 1e30, 1e30]]), (6, 7), mode=mode)
    np.testing.assert_allclose(out, 0.7, rtol=1e-12)


@pytest.mark.parametrize("mode", MODES)
def test_non_square_masks_scale_each_axis_by_its_own_padding(rng, mode):
    image_size = (50, 60)
    masks = random_masks(rng, 6, 10, 21, dtype=np.float64)
    boxes = random_boxes(rng, 6, image_size, min_side=5, max_side=50, dtype=np.float64)
    np.testing.assert_allclose(paste_masks(masks, boxes, image_size, mode=mode),
                               reference_paste_masks(masks, boxes, image_size, mode), atol=1e-12, rtol=0)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_bicubic_is_not_bilinear_and_rings_at_sharp_edges(dtype):
    # A hard-edged mask blown up: bilinear stays within [0, 1], the cubic
    # kernel's negative lobes under- and overshoot beside the edge.
    masks = np.zeros((1, 8, 8), dtype)
    masks[0, 2:6, 2:6] = 1
    boxes = np.array([[0, 0, 80, 80]], dtype)
    bilinear = paste_masks(masks, boxes, (90, 90))
    bicubic = paste_masks(masks, boxes, (90, 90), mode="bicubic")
    assert 0 <= bilinear.min() and bilinear.max() <= 1
    assert bicubic.min() < -0.01 and bicubic.max() > 1.01
    np.testing.assert_allclose(bicubic, reference_paste_masks(masks, boxes, (90, 90), "bicubic"),
                               atol=tolerance(dtype, "bicubic"), rtol=0)


@pytest.mark.skipif(torch is None, reason="needs torch")
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_bicubic_agrees_with_torch_bicubic_interpolate_of_the_padded_mask(rng, dtype):
    """The same resize as F.interpolate(mode="bicubic", align_corners=False)
    of the zero-padded mask to the truncated expanded box, pasted as
    torchvision pastes (boxes inside the image)."""
    import torch.nn.functional as F

    dtype = getattr(torch, dtype)
    height, width = 90, 110
    boxes = random_boxes(rng, 20, (height, width), min_side=0.5, max_side=80, dtype=np.float64)
    boxes = np.clip(boxes, 2, [width - 3, height - 3, width - 3, height - 3])
    masks = random_masks(rng, 20, 12, dtype=np.float64)
    masks_t, boxes_t = torch.from_numpy(masks).to(dtype), torch.from_numpy(boxes).to(dtype)
    expected = torch.zeros(20, height, width, dtype=dtype)
    for i in range(20):
        x0, y0, x1, y1 = expanded_int_box(boxes_t[i].numpy(), 12, 12)
        h, w = max(y1 - y0 + 1, 1), max(x1 - x0 + 1, 1)
        padded = F.pad(masks_t[i], (1, 1, 1, 1))[None, None]
        resized = F.interpolate(padded, size=(h, w), mode="bicubic", align_corners=False)[0, 0]
        ya, yb, xa, xb = max(y0, 0), min(y1 + 1, height), max(x0, 0), min(x1 + 1, width)
        expected[i, ya:yb, xa:xb] = resized[ya - y0 : yb - y0, xa - x0 : xb - x0]
    got = paste_masks(masks_t, boxes_t, (height, width), mode="bicubic")
    torch.testing.assert_close(got, expected, atol=5e-6 if dtype == torch.float32 else 1e-12, rtol=0)


def test_mask_head_layout_n1mm_is_accepted(rng):
    masks = random_masks(rng, 5, 28)
    boxes = random_boxes(rng, 5, (30, 30))
    np.testing.assert_array_equal(paste_masks(masks[:, None], boxes, (30, 30)), paste_masks(masks, boxes, (30, 30)))


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("threshold", [0.5, 0.0, -0.25, 1.0, 0.123456789])
def test_threshold_equals_thresholding_the_pasted_masks(rng, dtype, threshold, mode):
    image_size = (40, 50)
    boxes = np.concatenate([random_boxes(rng, 10, image_size, dtype=dtype), tricky_boxes(dtype)])
    masks = random_masks(rng, len(boxes), 9, dtype=dtype)
    masks[0, :3] = 0.5  # values sitting exactly at a threshold
    with np.errstate(all="ignore"):
        pasted = paste_masks(masks, boxes, image_size, mode=mode)
        out = paste_masks(masks, boxes, image_size, threshold=threshold, mode=mode)
    assert out.dtype == np.bool_ and out.shape == pasted.shape
    np.testing.assert_array_equal(out, pasted > dtype(threshold))
    # A mask that pastes nothing (NaN box) compares 0 > threshold everywhere.
    nothing = np.isnan(boxes).any(axis=1)
    assert nothing.any() and (out[nothing] == (threshold < 0)).all()


def test_threshold_is_compared_in_the_mask_dtype(rng):
    masks = random_masks(rng, 3, 10)
    boxes = np.array([[2, 3, 20, 25], [5, 5, 28, 22], [0, 0, 15, 15]], np.float32)
    pasted = paste_masks(masks, boxes, (30, 30))
    peak = pasted.max()
    # Just below the float32 peak in double, equal to it in float32.
    threshold = float(peak) - 1e-12
    out = paste_masks(masks, boxes, (30, 30), threshold=threshold)
    assert not out[pasted == peak].any()
    np.testing.assert_array_equal(out, pasted > np.float32(threshold))


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("threshold", [None, 0.5, -0.5])
def test_core_writes_every_pixel_unless_told_out_holds_zeros(rng, threshold, mode):
    from detcore import _C

    masks = random_masks(rng, 6, 7)
    boxes = np.concatenate([random_boxes(rng, 5, (20, 30)), [[np.nan, 0, 1, 1]]]).astype(np.float32)
    expected = paste_masks(masks, boxes, (20, 30), threshold=threshold, mode=mode)
    dtype = np.float32 if threshold is None else np.bool_
    garbage = np.full(expected.shape, 7, dtype)
    _C.paste_masks(threshold, False, mode, masks, boxes, garbage)
    np.testing.assert_array_equal(garbage, expected)

    garbage = np.full(expected.shape, 7, dtype)
    _C.paste_masks(threshold, True, mode, masks, boxes, garbage)
    outside = np.ones(expected.shape, bool)
    for i, box in enumerate(boxes):
        if (box := expanded_int_box(box, 7, 7)) is not None:
            x0, y0, x1, y1 = box
            outside[i, max(y0, 0) : max(y1 + 1, 0), max(x0, 0) : max(x1 + 1, 0)] = False
    if threshold is not None and threshold < 0:  # the outside value is not 0: written anyway
        np.testing.assert_array_equal(garbage, expected)
    else:  # pixels outside the boxes are left as they were
        assert (garbage[outside] == dtype(7)).all()
        np.testing.assert_array_equal(garbage[~outside], expected[~outside])


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("n,image_size", [(0, (30, 40)), (3, (0, 0)), (3, (0, 7)), (3, (5, 0)), (0, (0, 0))])
@pytest.mark.parametrize("threshold", [None, 0.5])
def test_empty_inputs_give_empty_outputs(rng, n, image_size, threshold, mode):
    out = paste_masks(random_masks(rng, n, 28), random_boxes(rng, n, (30, 30)), image_size, threshold=threshold,
                      mode=mode)
    assert out.shape == (n, *image_size)
    assert out.dtype == (np.float32 if threshold is None else np.bool_)


F32 = np.float32
GOOD_MASKS, GOOD_BOXES = np.zeros((2, 5, 5), F32), np.zeros((2, 4), F32)


@pytest.mark.parametrize(
    "masks,boxes,image_size,threshold,error,words",
    [
        (np.zeros((5, 5), F32), GOOD_BOXES, (9, 9), None, ValueError, "masks"),
        (np.zeros((2, 2, 5, 5), F32), GOOD_BOXES, (9, 9), None, ValueError, "masks"),
        (np.zeros((2, 1, 1, 5, 5), F32), GOOD_BOXES, (9, 9), None, ValueError, "masks"),
        (np.zeros((2, 0, 5), F32), GOOD_BOXES, (9, 9), None, ValueError, "masks"),
        (np.zeros((2, 5, 5), np.int64), np.zeros((2, 4), np.int64), (9, 9), None, TypeError, "masks"),
        (GOOD_MASKS, np.zeros((2, 5), F32), (9, 9), None, ValueError, "boxes"),
        (GOOD_MASKS, np.zeros((3, 4), F32), (9, 9), None, ValueError, "boxes"),
        (GOOD_MASKS, np.zeros((2, 4), np.float64), (9, 9), None, TypeError, "boxes"),
        (GOOD_MASKS, [[0, 0, 1, 1]] * 2, (9, 9), None, TypeError, "boxes"),
        ([[[0.0]]], GOOD_BOXES, (9, 9), None, TypeError, "masks"),
        (GOOD_MASKS, GOOD_BOXES, (9,), None, ValueError, "image_size"),
        (GOOD_MASKS, GOOD_BOXES, (9, 9, 9), None, ValueError, "image_size"),
        (GOOD_MASKS, GOOD_BOXES, 9, None, TypeError, "image_size"),
        (GOOD_MASKS, GOOD_BOXES, (-1, 9), None, ValueError, "image_size"),
        (GOOD_MASKS, GOOD_BOXES, (9, 9.0), None, TypeError, "image_size"),
        (GOOD_MASKS, GOOD_BOXES, (9, True), None, TypeError, "image_size"),
        (GOOD_MASKS, GOOD_BOXES, (9, 9), float("nan"), ValueError, "threshold"),
        (GOOD_MASKS, GOOD_BOXES, (9, 9), float("inf"), ValueError, "threshold"),
        (GOOD_MASKS, GOOD_BOXES, (9, 9), "0.5", TypeError, "threshold"),
    ],
)
def test_bad_input_is_refused_with_the_argument_named(masks, boxes, image_size, threshold, error, words):
    with pytest.raises(error, match=words):
        paste_masks(masks, boxes, image_size, threshold=threshold)


@pytest.mark.parametrize("mode", ["nearest", "", "Bicubic", None, 2])
def test_unknown_mode_is_refused(mode):
    expected = "mode: expected 'bilinear' or 'bicubic', got "
    with pytest.raises(ValueError, match=expected):
        paste_masks(GOOD_MASKS, GOOD_BOXES, (9, 9), mode=mode)
    if torch is not None:
        with pytest.raises(ValueError, match=expected):
            paste_masks(torch.from_numpy(GOOD_MASKS), torch.from_numpy(GOOD_BOXES), (9, 9), mode=mode)
    if isinstance(mode, str):  # the core checks it too
        from detcore import _C

        with pytest.raises(ValueError, match=expected + repr(mode)):
            _C.paste_masks(None, False, mode, GOOD_MASKS, GOOD_BOXES, np.zeros((2, 9, 9), F32))


@pytest.mark.skipif(tv_paste_masks_in_image is None, reason="needs torchvision")
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_matches_torchvision_paste_masks_in_image(rng, dtype):
    """Bit for bit on x86-64 with FMA (ATen's kernels are built with it);
    within a rounding elsewhere. Boxes overlap the image: torchvision's slicing
    fails or wraps around for boxes wholly outside it."""
    dtype = getattr(torch, dtype)
    height, width = 300, 400
    n = 60
    wh = rng.uniform(0.3, 300, (n, 2))
    centre = rng.uniform(0, 1, (n, 2)) * [width, height]
    boxes = np.concatenate([centre - wh / 2, centre + wh / 2], axis=1)
    boxes[::3] = np.round(boxes[::3])  # integer boxes: expansions land on integers
    boxes = torch.from_numpy(boxes).to(dtype)
    masks = torch.rand(n, 1, 28, 28, dtype=dtype, generator=torch.Generator().manual_seed(int(rng.integers(2**31))))
    expected = tv_paste_masks_in_image(masks, boxes, (height, width))[:, 0]
    got = paste_masks(masks, boxes, (height, width))
    torch.testing.assert_close(got, expected, atol=2e-7 if dtype == torch.float32 else 1e-15, rtol=0)
    assert (got == expected).float().mean() > 0.99


@pytest.mark.skipif(torch is None, reason="needs torch")
class TestTorch:
    def test_matches_numpy_and_returns_tensor(self, rng):
        masks, boxes = random_masks(rng, 6, 28), random_boxes(rng, 6, (40, 50))
        out = paste_masks(torch.from_numpy(masks)[:, None], torch.from_numpy(boxes), (40, 50))
        assert isinstance(out, torch.Tensor) and out.dtype == torch.float32 and out.shape == (6, 40, 50)
        np.testing.assert_array_equal(out.numpy(), paste_masks(masks, boxes, (40, 50)))
        mask_out = paste_masks(torch.from_numpy(masks), torch.from_numpy(boxes), torch.Size([40, 50]), threshold=0.5)
        assert mask_out.dtype == torch.bool
        np.testing.assert_array_equal(mask_out.numpy(), paste_masks(masks, boxes, (40, 50)) > 0.5)

    def test_inference_only_forward_works_with_grad_inputs(self, rng):
        masks = torch.from_numpy(random_masks(rng, 2, 8)).requires_grad_()
        boxes = torch.from_numpy(random_boxes(rng, 2, (20, 20)))
        out = paste_masks(masks, boxes, (20, 20))
        np.testing.assert_array_equal(out.detach().numpy(), paste_masks(masks.detach().numpy(), boxes.numpy(), (20, 20)))

    def test_mixed_frameworks_are_refused(self, rng):
        with pytest.raises(TypeError, match="one framework"):
            paste_masks(torch.from_numpy(random_masks(rng, 2, 5)), random_boxes(rng, 2, (9, 9)), (9, 9))

    def test_bad_image_size_is_refused(self, rng):
        with pytest.raises(ValueError, match="image_size"):
            paste_masks(torch.zeros(1, 5, 5), torch.zeros(1, 4), (9, -9))

    def test_bicubic_matches_numpy_and_scripts(self, rng):
        masks, boxes = random_masks(rng, 6, 28), random_boxes(rng, 6, (40, 50))
        out = paste_masks(torch.from_numpy(masks)[:, None], torch.from_numpy(boxes), (40, 50), None, "bicubic")
        np.testing.assert_array_equal(out.numpy(), paste_masks(masks, boxes, (40, 50), mode="bicubic"))
        scripted = torch.jit.script(paste_masks)
        torch.testing.assert_close(scripted(torch.from_numpy(masks), torch.from_numpy(boxes), (40, 50), None,
                                            "bicubic"), out, rtol=0, atol=0)

    @pytest.mark.cuda
    @pytest.mark.parametrize("mode", MODES)
    def test_cuda_matches_cpu(self, rng, mode):
        image_size = (70, 90)
        boxes64 = torch.from_numpy(np.concatenate([random_boxes(rng, 40, image_size, max_side=120, dtype=np.float64),
                                                   tricky_boxes(np.float64)]))
        masks64 = torch.from_numpy(random_masks(rng, len(boxes64), 28, dtype=np.float64))[:, None]
        for dtype in (torch.float32, torch.float64, torch.float16, torch.bfloat16):
            masks, boxes = masks64.to(dtype), boxes64.to(dtype)
            # CUDA computes the half types in float: the float32 CPU result rounded.
            compute = torch.float64 if dtype == torch.float64 else torch.float32
            expected = paste_masks(masks.to(compute), boxes.to(compute), image_size, mode=mode).to(dtype)
            got = paste_masks(masks.cuda(), boxes.cuda(), image_size, mode=mode)
            assert got.is_cuda and got.dtype == dtype and got.shape == expected.shape
            torch.testing.assert_close(got.cpu(), expected, atol=0, rtol=0)
            for threshold in (0.5, 0.1, -1.0):
                got = paste_masks(masks.cuda(), boxes.cuda(), image_size, threshold=threshold, mode=mode)
                assert got.is_cuda and got.dtype == torch.bool
                torch.testing.assert_close(got.cpu(), expected > threshold, atol=0, rtol=0)

    @pytest.mark.cuda
    def test_cuda_empty_and_stream(self, rng):
        out = paste_masks(torch.zeros(0, 28, 28, device="cuda"), torch.zeros(0, 4, device="cuda"), (5, 6))
        assert out.shape == (0, 5, 6) and out.is_cuda
        stream = torch.cuda.Stream()
        masks = torch.from_numpy(random_masks(rng, 8, 28)).cuda()
        boxes = torch.from_numpy(random_boxes(rng, 8, (50, 60))).cuda()
        with torch.cuda.stream(stream):
            got = paste_masks(masks, boxes, (50, 60))
        stream.synchronize()
        torch.testing.assert_close(got.cpu(), paste_masks(masks.cpu(), boxes.cpu(), (50, 60)), atol=0, rtol=0)


@pytest.mark.parametrize("mode", MODES)
def test_results_do_not_depend_on_the_thread_count(rng, mode):
    import detcore

    image_size = (64, 48)
    boxes = np.concatenate([random_boxes(rng, 30, image_size, max_side=120), tricky_boxes(np.float32)])
    masks = random_masks(rng, len(boxes), 28)
    before = detcore.num_threads()
    try:
        detcore.set_num_threads(1)
        with np.errstate(all="ignore"):
            serial = paste_masks(masks, boxes, image_size, mode=mode)
            detcore.set_num_threads(3)
            parallel = paste_masks(masks, boxes, image_size, mode=mode)
    finally:
        detcore.set_num_threads(before)
    np.testing.assert_array_equal(parallel, serial)


@pytest.mark.cuda
def test_gpu_dlpack_input_runs_through_torch(rng):
    masks, boxes = random_masks(rng, 3, 28), random_boxes(rng, 3, (20, 30))
    out = paste_masks(DLPackArray(torch.from_numpy(masks).cuda()),
                      DLPackArray(torch.from_numpy(boxes).cuda()), (20, 30))
    assert isinstance(out, torch.Tensor) and out.is_cuda
    np.testing.assert_array_equal(out.cpu().numpy(), paste_masks(masks, boxes, (20, 30)))


@pytest.mark.skipif(torch is None, reason="needs torch for bfloat16")
@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("dtype", HALF_DTYPES)
def test_half_precision_masks_paste_in_float(rng, dtype, mode):
    image_size = (45, 61)
    masks = to_half(random_masks(rng, 12, 14), dtype)
    boxes = to_half(np.concatenate([random_boxes(rng, 12, image_size), [[np.nan, 0, 5, 5]]]), dtype)
    masks = torch.cat([masks, masks[:1]])
    out = paste_masks(masks, boxes, image_size, mode=mode)
    reference = reference_paste_masks(masks.double().numpy(), boxes.double().numpy(), image_size, mode)
    assert_half_result(out, paste_masks(masks.float(), boxes.float(), image_size, mode=mode), reference, dtype)
    # With a threshold: the pasted values and the threshold compared in the masks' dtype.
    above = paste_masks(masks, boxes, image_size, threshold=0.3, mode=mode)
    assert above.dtype == torch.bool
    torch.testing.assert_close(above, out > 0.3, rtol=0, atol=0)
    if dtype == "float16":  # the numpy path
        np.testing.assert_array_equal(paste_masks(masks.numpy(), boxes.numpy(), image_size, mode=mode), out.numpy())
