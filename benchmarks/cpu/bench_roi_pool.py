import numpy as np
import torch

import detcore.ops
from harness import Case

IMAGE_HEIGHT, IMAGE_WIDTH = 800, 1088  # the 200 x 272 feature map at stride 4


def random_rois(rng, n, batch_size):
    """Proposal-like RoIs: 16 to 400 pixels wide and high, inside the image."""
    xy = rng.uniform(0, [IMAGE_WIDTH, IMAGE_HEIGHT], (n, 2))
    wh = rng.uniform(16, 400, (n, 2))
    x2y2 = np.minimum(xy + wh, [IMAGE_WIDTH, IMAGE_HEIGHT])
    index = rng.integers(0, batch_size, (n, 1))
    return torch.from_numpy(np.concatenate([index, xy, x2y2], 1).astype(np.float32))


def cases(tv):
    rng = np.random.default_rng(0)
    features = torch.from_numpy(rng.standard_normal((2, 256, 200, 272), dtype=np.float32))
    rois = random_rois(rng, 1000, 2)
    workload = "2x256x200x272 f32, 1000 RoIs, 7x7, scale 1/4"

    def forward(op):
        return lambda: op(features, rois, 7, 0.25)

    def forward_backward(op):
        leaf = features.clone().requires_grad_()

        def run():
            out = op(leaf, rois, 7, 0.25)
            out.sum().backward()
            leaf.grad = None

        return run

    yield Case(
        "roi_pool",
        workload + ", forward",
        forward(detcore.ops.roi_pool),
        forward(tv.roi_pool) if tv else None,
        goal=2.0,
    )
    yield Case(
        "roi_pool",
        workload + ", forward + backward",
        forward_backward(detcore.ops.roi_pool),
        forward_backward(tv.roi_pool) if tv else None,
        goal=2.0,
    )
