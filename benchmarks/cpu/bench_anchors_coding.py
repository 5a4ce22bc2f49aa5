"""Anchors of a 5-level FPN and Faster R-CNN box coding (no speed goal:
the ratios are reported)."""

import numpy as np
import torch

import detcore.ops
from harness import Case

IMAGE_HW = (800, 1216)
FPN_STRIDES = (4, 8, 16, 32, 64)
FPN_SIZES = ((32,), (64,), (128,), (256,), (512,))
RATIOS = ((0.5, 1.0, 2.0),) * 5


def random_boxes(rng, n, size=1000.0):
    xy = rng.uniform(0, size, (n, 2))
    wh = rng.uniform(1, 200, (n, 2))
    return torch.from_numpy(np.concatenate([xy, xy + wh], 1).astype(np.float32))


def torchvision_detection():
    try:
        from torchvision.models.detection._utils import BoxCoder
        from torchvision.models.detection.anchor_utils import AnchorGenerator
    except Exception:
        return None, None
    return AnchorGenerator, BoxCoder


def cases(tv):
    AnchorGenerator, BoxCoder = torchvision_detection() if tv else (None, None)
    rng = np.random.default_rng(0)

    # Feature sizes of a ResNet-FPN on an 800 x 1216 image; strides as torchvision derives them.
    grid_sizes = [(-(-IMAGE_HW[0] // s), -(-IMAGE_HW[1] // s)) for s in FPN_STRIDES]
    strides = [(IMAGE_HW[0] // h, IMAGE_HW[1] // w) for h, w in grid_sizes]
    tv_anchors = None
    if AnchorGenerator is not None:
        generator = AnchorGenerator(FPN_SIZES, RATIOS)
        tv_strides = [[torch.tensor(sh), torch.tensor(sw)] for sh, sw in strides]
        tv_anchors = lambda: generator.grid_anchors(grid_sizes, tv_strides)  # noqa: E731
    yield Case(
        "make_anchors",
        "FPN 5 levels, 800x1216, 3 ratios (242,934 anchors)",
        lambda: detcore.ops.make_anchors(grid_sizes, strides, FPN_SIZES, RATIOS, device="cpu"),
        tv_anchors,
    )

    boxes = random_boxes(rng, 100_000)
    deltas = torch.from_numpy(rng.normal(0, 1, (100_000, 4)).astype(np.float32))
    rpn_coder = BoxCoder((1.0, 1.0, 1.0, 1.0)) if BoxCoder else None
    yield Case(
        "decode_boxes",
        "100,000 boxes x 1",
        lambda: detcore.ops.decode_boxes(deltas, boxes),
        (lambda: rpn_coder.decode_single(deltas, boxes)) if rpn_coder else None,
    )

    proposals = random_boxes(rng, 1000)
    class_deltas = torch.from_numpy(rng.normal(0, 1, (1000, 91 * 4)).astype(np.float32))
    rcnn_coder = BoxCoder((10.0, 10.0, 5.0, 5.0)) if BoxCoder else None
    yield Case(
        "decode_boxes",
        "1,000 boxes x 91 classes",
        lambda: detcore.ops.decode_boxes(class_deltas, proposals, (10.0, 10.0, 5.0, 5.0)),
        (lambda: rcnn_coder.decode_single(class_deltas, proposals)) if rcnn_coder else None,
    )

    targets = random_boxes(rng, 100_000)
    yield Case(
        "encode_boxes",
        "100,000 boxes",
        lambda: detcore.ops.encode_boxes(targets, boxes, (10.0, 10.0, 5.0, 5.0)),
        (lambda: rcnn_coder.encode_single(targets, boxes)) if rcnn_coder else None,
    )
