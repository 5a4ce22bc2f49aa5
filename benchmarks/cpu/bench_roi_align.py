import numpy as np
import torch

import detcore.ops
from harness import Case

# Mask R-CNN's box head on an FPN level: stride 4 features of an 800 x 1088
# image pair, 1000 proposals per batch, 7 x 7 bins.
BATCH, CHANNELS, HEIGHT, WIDTH = 2, 256, 200, 272
NUM_ROIS, OUTPUT_SIZE, SCALE, SAMPLING = 1000, 7, 0.25, 2


def random_rois(rng, n):
    image_h, image_w = HEIGHT / SCALE, WIDTH / SCALE
    xy = rng.uniform(0, 1, (n, 2)) * [image_w * 0.9, image_h * 0.9]
    wh = rng.uniform(16, 256, (n, 2))
    boxes = np.concatenate([xy, np.minimum(xy + wh, [image_w, image_h])], axis=1)
    batch = rng.integers(0, BATCH, (n, 1))
    return torch.from_numpy(np.concatenate([batch, boxes], axis=1).astype(np.float32))


def cases(tv):
    rng = np.random.default_rng(0)
    features = torch.from_numpy(rng.standard_normal((BATCH, CHANNELS, HEIGHT, WIDTH), dtype=np.float32))
    rois = random_rois(rng, NUM_ROIS)
    args = (OUTPUT_SIZE, SCALE, SAMPLING, True)
    workload = f"{BATCH}x{CHANNELS}x{HEIGHT}x{WIDTH}, {NUM_ROIS} RoIs, 7x7, sampling 2, aligned"

    yield Case(
        "roi_align forward",
        workload,
        lambda: detcore.ops.roi_align(features, rois, *args),
        (lambda: tv.roi_align(features, rois, *args)) if tv else None,
        goal=3.0,
    )

    leaf = features.clone().requires_grad_()
    grad = torch.from_numpy(rng.standard_normal((NUM_ROIS, CHANNELS, OUTPUT_SIZE, OUTPUT_SIZE), dtype=np.float32))

    def forward_backward(op):
        def run():
            leaf.grad = None
            op(leaf, rois, *args).backward(grad)
        return run

    yield Case(
        "roi_align forward+backward",
        workload,
        forward_backward(detcore.ops.roi_align),
        forward_backward(tv.roi_align) if tv else None,
        goal=3.0,
    )
