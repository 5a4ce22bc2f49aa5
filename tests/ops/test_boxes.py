"""box_area, box_convert, clip_boxes_to_image, remove_small_boxes, masks_to_boxes."""

import numpy as np
import pytest

from detcore.ops import box_area, box_convert, clip_boxes_to_image, masks_to_boxes, remove_small_boxes
from helpers import DLPackArray, edge_case_boxes, random_boxes

try:
    import torch
except ImportError:
    torch = None


def to_xyxy(b, fmt):
    x, y, c, d = (np.asarray(b, np.float64)[:, k] for k in range(4))
    if fmt == "xywh":
        return np.stack([x, y, x + c, y + d], 1)
    if fmt == "cxcywh":
        return np.stack([x - c / 2, y - d / 2, x + c / 2, y + d / 2], 1)
    return np.stack([x, y, c, d], 1)


def test_box_area(rng):
    b = np.concatenate([random_boxes(rng, 20), edge_case_boxes()])
    with np.errstate(all="ignore"):
        expected = [(x2 - x1) * (y2 - y1) for x1, y1, x2, y2 in b]
        np.testing.assert_array_equal(box_area(b), expected)
    np.testing.assert_array_equal(box_area(b[:3], fmt="xywh"), b[:3, 2] * b[:3, 3])
    assert box_area(b[:20].astype(np.float16)).dtype == np.float32  # torchvision upcasts float16
    assert box_area(b[:20].astype(np.uint8)).dtype == np.int32
    assert box_area(np.zeros((2, 3, 4))).shape == (2, 3)


@pytest.mark.parametrize("in_fmt", ["xyxy", "xywh", "cxcywh"])
@pytest.mark.parametrize("out_fmt", ["xyxy", "xywh", "cxcywh"])
def test_box_convert_round_trips_through_xyxy(rng, in_fmt, out_fmt):
    b = random_boxes(rng, 15)
    out = box_convert(b, in_fmt, out_fmt)
    np.testing.assert_allclose(to_xyxy(out, out_fmt), to_xyxy(b, in_fmt), rtol=1e-12)
    assert out is not b
    if torch is not None:
        np.testing.assert_allclose(box_convert(torch.from_numpy(b), in_fmt, out_fmt).numpy(), out, rtol=1e-15)


def test_clip_and_remove_small(rng):
    b = np.concatenate([random_boxes(rng, 30, size=120) - 10, edge_case_boxes()])
    out = clip_boxes_to_image(b, (50, 80))
    ref = b.copy()
    ref[:, 0::2] = np.minimum(np.maximum(b[:, 0::2], 0), 80)
    ref[:, 1::2] = np.minimum(np.maximum(b[:, 1::2], 0), 50)
    np.testing.assert_array_equal(out, ref)
    keep = remove_small_boxes(b, 12.0)
    with np.errstate(invalid="ignore"):
        expected = [i for i, (x1, y1, x2, y2) in enumerate(b) if x2 - x1 >= 12 and y2 - y1 >= 12]
    np.testing.assert_array_equal(keep, expected)
    assert keep.dtype == np.int64
    with pytest.raises(TypeError, match="size"):
        clip_boxes_to_image(b, 50)


def test_masks_to_boxes(rng):
    masks = rng.uniform(size=(5, 17, 23)) > 0.96
    masks[1] = False
    masks[2] = False
    masks[2, 4, 7] = True  # one pixel
    out = masks_to_boxes(masks)
    for m, box in zip(masks, out):
        ys, xs = np.nonzero(m)
        expected = [xs.min(), ys.min(), xs.max(), ys.max()] if len(xs) else [0, 0, 0, 0]
        np.testing.assert_array_equal(box, expected)
    assert out.dtype == np.float32
    assert masks_to_boxes(np.zeros((0, 4, 4), bool)).shape == (0, 4)
    np.testing.assert_array_equal(masks_to_boxes(DLPackArray(masks)), out)
    with pytest.raises(ValueError, match="masks"):
        masks_to_boxes(masks[0])


@pytest.mark.skipif(torch is None, reason="needs torch")
def test_torch_keeps_autograd_and_scripts(rng):
    b = torch.from_numpy(random_boxes(rng, 6)).requires_grad_()
    box_area(box_convert(b, "xyxy", "cxcywh"), fmt="cxcywh").sum().backward()
    assert b.grad is not None
    for fn, args in [
        (box_area, (b.detach(), "xyxy")),
        (box_convert, (b.detach(), "xyxy", "xywh")),
        (clip_boxes_to_image, (b.detach(), [40, 40])),
        (remove_small_boxes, (b.detach(), 5.0)),
        (masks_to_boxes, (torch.from_numpy(rng.uniform(size=(2, 5, 6)) > 0.5),)),
    ]:
        torch.testing.assert_close(torch.jit.script(fn)(*args), fn(*args))
