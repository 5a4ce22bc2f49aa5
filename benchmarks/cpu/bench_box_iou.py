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
    yield Case(
        "box_iou",
        "2,000 x 20,000",
        lambda: detcore.ops.box_iou(b1, b2),
        (lambda: tv.box_iou(b1, b2)) if tv else None,
        goal=1.5,
    )
