"""generalized / distance / complete box IoU, pairwise on 2,000 x 20,000
boxes (the issue's goal: 3x torchvision on the CPU)."""

import numpy as np
import torch

import detcore.ops
from harness import Case


def random_boxes(rng, n, size=1000.0):
    xy = rng.uniform(0, size, (n, 2))
    wh = rng.uniform(1, 200, (n, 2))
    return torch.from_numpy(np.concatenate([xy, xy + wh], 1).astype(np.float32))


def cases(tv):
    rng = np.random.default_rng(0)
    b1, b2 = random_boxes(rng, 2000), random_boxes(rng, 20000)
    for name in ("generalized_box_iou", "distance_box_iou", "complete_box_iou"):
        ours, theirs = getattr(detcore.ops, name), getattr(tv, name) if tv else None
        yield Case(
            name,
            "2,000 x 20,000",
            lambda ours=ours: ours(b1, b2),
            (lambda theirs=theirs: theirs(b1, b2)) if tv else None,
            goal=3.0,
        )
