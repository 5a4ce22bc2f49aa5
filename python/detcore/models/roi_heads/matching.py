"""IoU matching of predictions to ground truth, and balanced sampling."""

from __future__ import annotations

import torch

BELOW_LOW = -1
BETWEEN = -2


class Matcher:
    """Assigns each prediction (column of an IoU matrix of shape (G, P)) the
    ground truth it overlaps most. IoU >= high: matched; low <= IoU < high:
    BETWEEN (ignored); IoU < low: BELOW_LOW (background).

    With `allow_low_quality`, each ground truth's best predictions (all ties)
    are matched whatever their IoU (the RPN rule that gives every object an
    anchor). `ignore_below`: IoU below it is also BETWEEN, which gives the
    Fast R-CNN background interval [ignore_below, low)."""

    def __init__(self, high: float, low: float, allow_low_quality: bool = False, ignore_below: float = 0.0):
        if low > high:
            raise ValueError(f"low ({low}) must be <= high ({high})")
        self.high, self.low = high, low
        self.allow_low_quality = allow_low_quality
        self.ignore_below = ignore_below

    def __call__(self, iou: torch.Tensor) -> torch.Tensor:
        if iou.shape[0] == 0:
            return torch.full((iou.shape[1],), BELOW_LOW, dtype=torch.int64, device=iou.device)
        vals, matches = iou.max(dim=0)
        all_matches = matches.clone() if self.allow_low_quality else None
        matches[vals < self.low] = BELOW_LOW
        matches[(vals >= self.low) & (vals < self.high)] = BETWEEN
        if self.ignore_below > 0:
            matches[vals < self.ignore_below] = BETWEEN
        if all_matches is not None:
            best_per_gt = iou.max(dim=1).values
            # a ground truth overlapping nothing gets no forced match
            _, pred_idx = torch.where((iou == best_per_gt[:, None]) & (best_per_gt[:, None] > 0))
            matches[pred_idx] = all_matches[pred_idx]
        return matches


class BalancedSampler:
    """Picks up to `batch_size` predictions per image, at most
    `positive_fraction` of them positive (label >= 1), the rest negative
    (label 0); label -1 is never picked."""

    def __init__(self, batch_size: int, positive_fraction: float):
        self.batch_size = batch_size
        self.positive_fraction = positive_fraction

    def __call__(self, labels: torch.Tensor):
        """Returns (positive indices, negative indices) into `labels`."""
        pos = torch.where(labels >= 1)[0]
        neg = torch.where(labels == 0)[0]
        num_pos = min(int(self.batch_size * self.positive_fraction), pos.numel())
        num_neg = min(self.batch_size - num_pos, neg.numel())
        pos = pos[torch.randperm(pos.numel(), device=pos.device)[:num_pos]]
        neg = neg[torch.randperm(neg.numel(), device=neg.device)[:num_neg]]
        return pos, neg
