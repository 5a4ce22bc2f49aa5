import numpy as np
import torch

import detcore.ops
from harness import Case

# SPP-net's detector: the conv5 map (stride 16) of a ~600 x 1000 image,
# 2000 selective-search-like proposals, the 6, 3, 2, 1 pyramid (50 bins a
# channel). torchvision has no spatial pyramid pooling; the reference point
# is roi_pool called once per level and its outputs concatenated, what a
# user without spp_pool would write.
BATCH, CHANNELS, HEIGHT, WIDTH = 1, 512, 38, 63
NUM_ROIS, LEVELS, SCALE = 2000, (6, 3, 2, 1), 1 / 16


def random_rois(rng, n):
    image_h, image_w = HEIGHT / SCALE, WIDTH / SCALE
    xy = rng.uniform(0, 1, (n, 2)) * [image_w * 0.9, image_h * 0.9]
    wh = rng.uniform(20, 500, (n, 2))
    boxes = np.concatenate([xy, np.minimum(xy + wh, [image_w, image_h])], axis=1)
    batch = rng.integers(0, BATCH, (n, 1))
    return torch.from_numpy(np.concatenate([batch, boxes], axis=1).astype(np.float32))


def per_level(roi_pool):
    """SPP from one roi_pool call per level (flattened, concatenated)."""

    def run(features, rois):
        return torch.cat([roi_pool(features, rois, n, SCALE).flatten(1) for n in LEVELS], 1)

    return run


def cases(tv):
    rng = np.random.default_rng(0)
    features = torch.from_numpy(rng.standard_normal((BATCH, CHANNELS, HEIGHT, WIDTH), dtype=np.float32))
    rois = random_rois(rng, NUM_ROIS)
    workload = f"{BATCH}x{CHANNELS}x{HEIGHT}x{WIDTH} f32, {NUM_ROIS} RoIs, levels 6/3/2/1, scale 1/16"

    def spp(features, rois):
        return detcore.ops.spp_pool(features, rois, LEVELS, SCALE)

    def forward(op):
        return lambda: op(features, rois)

    leaf = features.clone().requires_grad_()
    grad = torch.from_numpy(rng.standard_normal((NUM_ROIS, CHANNELS * 50), dtype=np.float32))

    def forward_backward(op):
        def run():
            leaf.grad = None
            op(leaf, rois).backward(grad)

        return run

    reference = per_level(tv.roi_pool) if tv else None
    yield Case("spp_pool (vs tv roi_pool per level)", workload + ", forward", forward(spp),
               forward(reference) if tv else None)
    yield Case("spp_pool (vs tv roi_pool per level)", workload + ", forward+backward", forward_backward(spp),
               forward_backward(reference) if tv else None)
    # detcore's own roi_pool per level, for the same comparison without torchvision
    yield Case("roi_pool per level (vs tv)", workload + ", forward", forward(per_level(detcore.ops.roi_pool)),
               forward(reference) if tv else None)
