"""generalized / distance / complete box IoU losses of 100,000 paired boxes,
forward + backward (reduction 'mean'): detcore's native kernels against
torchvision's composed torch ops and autograd."""

import numpy as np
import torch

import detcore.ops
from harness import Case

N = 100_000


def random_boxes(rng, n, size=1000.0):
    xy = rng.uniform(0, size, (n, 2))
    wh = rng.uniform(1, 200, (n, 2))
    return torch.from_numpy(np.concatenate([xy, xy + wh], 1).astype(np.float32))


def fwd_bwd(loss_fn, boxes1, boxes2):
    def run():
        b1, b2 = boxes1.detach().requires_grad_(), boxes2.detach().requires_grad_()
        loss_fn(b1, b2, reduction="mean").backward()
        return b1.grad, b2.grad

    return run


def cases(tv):
    rng = np.random.default_rng(0)
    b1 = random_boxes(rng, N)
    b2 = b1 + torch.from_numpy(rng.normal(0, 20, (N, 4)).astype(np.float32))  # predictions near their targets
    for name in ("generalized_box_iou_loss", "distance_box_iou_loss", "complete_box_iou_loss"):
        yield Case(
            name,
            "100,000 pairs, mean, fwd+bwd",
            fwd_bwd(getattr(detcore.ops, name), b1, b2),
            fwd_bwd(getattr(tv, name), b1, b2) if tv else None,
        )
