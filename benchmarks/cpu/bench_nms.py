import numpy as np
import torch

import detcore.ops
from harness import Case


def proposals(rng, n, size=1000.0):
    """Detector-proposal-like boxes: corners anywhere in a size x size image,
    widths and heights 10-200, random scores."""
    xy = rng.uniform(0, size, (n, 2))
    wh = rng.uniform(10, 200, (n, 2))
    boxes = torch.from_numpy(np.concatenate([xy, xy + wh], 1).astype(np.float32))
    return boxes, torch.from_numpy(rng.random(n).astype(np.float32))


def cases(tv):
    rng = np.random.default_rng(0)
    boxes, scores = proposals(rng, 10_000)
    yield Case(
        "nms",
        "10,000 boxes, IoU 0.5",
        lambda: detcore.ops.nms(boxes, scores, 0.5),
        (lambda: tv.nms(boxes, scores, 0.5)) if tv else None,
        goal=3,
    )
    boxes, scores = proposals(rng, 20_000)
    idxs = torch.from_numpy(rng.integers(0, 80, 20_000))
    yield Case(
        "batched_nms",
        "20,000 boxes, 80 classes, IoU 0.5",
        lambda: detcore.ops.batched_nms(boxes, scores, idxs, 0.5),
        (lambda: tv.batched_nms(boxes, scores, idxs, 0.5)) if tv else None,
        goal=2,
    )
