"""Soft-NMS (gaussian and linear) and batched Soft-NMS on detector-sized
inputs. There is no Soft-NMS in torchvision: the baseline column times mmcv's
soft_nms where mmcv is importable, otherwise the paper's algorithm written in
numpy (the original authors' form: one vectorized decay per output box)."""

import numpy as np
import torch

import detcore.ops
from harness import Case

N = 2000


def clustered(rng, n):
    centres = rng.uniform(50, 950, (40, 2))[rng.integers(0, 40, n)]
    wh = rng.uniform(20, 120, (n, 2))
    xy = centres + rng.normal(0, 10, (n, 2))
    boxes = np.concatenate([xy - wh / 2, xy + wh / 2], 1).astype(np.float32)
    return boxes, rng.uniform(0, 1, n).astype(np.float32)


def numpy_soft_nms(boxes, scores, iou_threshold=0.3, sigma=0.5, score_threshold=0.001, method="gaussian"):
    boxes, scores = boxes.astype(np.float64), scores.astype(np.float64).copy()
    area = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    remaining = np.flatnonzero(scores >= score_threshold)
    keep, kept_scores = [], []
    while remaining.size:
        m = remaining[np.argmax(scores[remaining])]
        keep.append(m)
        kept_scores.append(scores[m])
        remaining = remaining[remaining != m]
        b = boxes[remaining]
        w = np.maximum(np.minimum(boxes[m, 2], b[:, 2]) - np.maximum(boxes[m, 0], b[:, 0]), 0)
        h = np.maximum(np.minimum(boxes[m, 3], b[:, 3]) - np.maximum(boxes[m, 1], b[:, 1]), 0)
        iou = w * h / (area[m] + area[remaining] - w * h)
        if method == "linear":
            decay = np.where(iou > iou_threshold, 1 - iou, 1.0)
        else:
            decay = np.exp(-(iou * iou) / sigma)
        scores[remaining] *= decay
        remaining = remaining[scores[remaining] >= score_threshold]
    return np.array(keep), np.array(kept_scores)


def baseline(boxes, scores, method):
    try:
        from mmcv.ops import soft_nms as mmcv_soft_nms
    except Exception:
        return "numpy reference", lambda: numpy_soft_nms(boxes, scores, method=method)
    b, s = torch.from_numpy(boxes), torch.from_numpy(scores)
    mode = {"gaussian": "gaussian", "linear": "linear"}[method]
    return "mmcv", lambda: mmcv_soft_nms(b, s, iou_threshold=0.3, sigma=0.5, min_score=0.001, method=mode)


def cases(tv):
    rng = np.random.default_rng(0)
    boxes, scores = clustered(rng, N)
    tb, ts = torch.from_numpy(boxes), torch.from_numpy(scores)
    for method in ("gaussian", "linear"):
        name, reference = baseline(boxes, scores, method)
        yield Case(
            "soft_nms",
            f"{N:,} boxes, {method} (baseline: {name})",
            lambda method=method: detcore.ops.soft_nms(tb, ts, method=method),
            reference,
        )
    classes = torch.from_numpy(rng.integers(0, 80, 8 * N))
    boxes8, scores8 = clustered(rng, 8 * N)
    b8, s8 = torch.from_numpy(boxes8), torch.from_numpy(scores8)
    yield Case(
        "batched_soft_nms",
        f"{8 * N:,} boxes, 80 classes, gaussian",
        lambda: detcore.ops.batched_soft_nms(b8, s8, classes),
        None,
    )
