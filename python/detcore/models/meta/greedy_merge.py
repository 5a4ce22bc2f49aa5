"""OverFeat's greedy merge of predicted boxes (Sermanet et al. 2014, 4.3).

Repeatedly take the two boxes of one class with the best (lowest) match
score and replace them by their merge, until no pair matches under the
threshold. Here:

* match(a, b) = |centre(a) - centre(b)| / sqrt((area(a) + area(b)) / 2)
  + (1 - IoU(a, b)): the paper's centre-distance and overlap terms, made
  scale-free (0 for identical boxes, 1 + something for disjoint ones);
* a merged box is the mean of the coordinates of every box merged into it
  (the paper averages the two boxes; averaging the members keeps the merge
  order from weighting some boxes more);
* its score accumulates its members' class probabilities as a noisy-or,
  1 - prod(1 - p): more agreeing windows give a higher score, as the paper's
  cumulative sum does, and the score stays in [0, 1].
"""

from __future__ import annotations

import torch

from ... import ops


def _centres_and_areas(boxes: torch.Tensor):
    centres = (boxes[:, :2] + boxes[:, 2:]) / 2
    areas = (boxes[:, 2] - boxes[:, 0]).clamp(min=0) * (boxes[:, 3] - boxes[:, 1]).clamp(min=0)
    return centres, areas


def match_scores(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """(len(a), len(b)) match scores of boxes a and b (lower: better match)."""
    ca, area_a = _centres_and_areas(a)
    cb, area_b = _centres_and_areas(b)
    distance = torch.cdist(ca, cb)
    scale = ((area_a[:, None] + area_b[None, :]) / 2).clamp(min=1e-6).sqrt()
    iou = ops.box_iou(a, b) if len(a) and len(b) else a.new_zeros((len(a), len(b)))
    return distance / scale + (1 - iou)


def greedy_merge(boxes: torch.Tensor, scores: torch.Tensor, threshold: float):
    """Merges the (n, 4) boxes of one class with scores (n,) in [0, 1].
    Returns (boxes, scores) of the merged boxes, in decreasing score order.
    O(n^2) memory and up to n merges of O(n) work plus an O(n^2) argmin each:
    callers keep n to a few hundred."""
    n = boxes.shape[0]
    if n <= 1:
        return boxes, scores
    work = boxes.to(torch.float64, copy=True)  # never the caller's tensor
    sums = work.clone()  # coordinate sums of each cluster's members
    counts = torch.ones(n, dtype=torch.float64, device=boxes.device)
    miss = 1 - scores.double().clamp(0, 1)  # prod(1 - p) of each cluster
    alive = torch.ones(n, dtype=torch.bool, device=boxes.device)
    match = match_scores(work, work)
    match.fill_diagonal_(float("inf"))
    for _ in range(n - 1):
        flat = int(torch.argmin(match))
        i, j = divmod(flat, n)
        if not bool(match[i, j] <= threshold):
            break
        # cluster j joins cluster i
        sums[i] += sums[j]
        counts[i] += counts[j]
        miss[i] *= miss[j]
        work[i] = sums[i] / counts[i]
        alive[j] = False
        match[j, :] = float("inf")
        match[:, j] = float("inf")
        row = match_scores(work[i : i + 1], work)[0]
        row[~alive] = float("inf")
        row[i] = float("inf")
        match[i, :] = row
        match[:, i] = row
    merged, merged_scores = work[alive].to(boxes.dtype), (1 - miss[alive]).to(scores.dtype)
    order = torch.argsort(merged_scores, descending=True, stable=True)
    return merged[order], merged_scores[order]
