"""sigmoid_focal_loss forward + backward (reduction 'sum'), RetinaNet-sized:
100,000 anchors x 80 classes.

detcore computes the gradient in the forward pass; torchvision composes
torch ops and runs autograd's backward. The int-label case times
torchvision including building its one-hot targets from the labels (what a
caller holding labels has to do); a second row gives it the one-hot targets
ready-made."""

import numpy as np
import torch

import detcore.ops
from harness import Case

N, C = 100_000, 80


def one_hot(labels, classes):
    """torchvision needs (N, C) float targets; background (C) is a zero row."""
    return torch.nn.functional.one_hot(labels, classes + 1)[:, :classes].to(torch.float32)


def fwd_bwd(loss_fn, logits, targets):
    def run():
        x = logits.detach().requires_grad_()
        loss_fn(x, targets, reduction="sum").backward()
        return x.grad

    return run


def cases(tv):
    rng = np.random.default_rng(0)
    logits = torch.from_numpy(rng.standard_normal((N, C)).astype(np.float32))
    labels = torch.from_numpy(rng.integers(0, C + 1, N))
    targets = one_hot(labels, C)
    tv_loss = tv.sigmoid_focal_loss if tv else None
    yield Case(
        "sigmoid_focal_loss",
        "100,000 x 80 one-hot, sum, fwd+bwd",
        fwd_bwd(detcore.ops.sigmoid_focal_loss, logits, targets),
        fwd_bwd(tv_loss, logits, targets) if tv else None,
        goal=3.0,
    )
    yield Case(
        "sigmoid_focal_loss",
        "100,000 x 80 int labels, sum, fwd+bwd (tv: + one-hot)",
        fwd_bwd(detcore.ops.sigmoid_focal_loss, logits, labels),
        (lambda: fwd_bwd(tv_loss, logits, one_hot(labels, C))()) if tv else None,
        goal=3.0,
    )
    yield Case(
        "sigmoid_focal_loss",
        "100,000 x 80 int labels, sum, fwd+bwd (tv: one-hot given)",
        fwd_bwd(detcore.ops.sigmoid_focal_loss, logits, labels),
        fwd_bwd(tv_loss, logits, targets) if tv else None,
        goal=3.0,
    )
