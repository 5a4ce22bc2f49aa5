"""The greedy NMS reference shared by the nms and batched_nms tests: plain
float64 numpy, written independently of the kernels."""

import numpy as np


def _max(a, b):
    """max as the kernels compute it: a unless a < b (NaN-asymmetric)."""
    return np.where(a < b, b, a)


def _min(a, b):
    """min as the kernels compute it: a unless b < a."""
    return np.where(b < a, b, a)


def reference_order(scores):
    """Decreasing score, ties by lower index, NaN scores last."""
    s = np.asarray(scores, dtype=np.float64)
    return sorted(range(len(s)), key=lambda i: (bool(np.isnan(s[i])), 0.0 if np.isnan(s[i]) else -s[i], i))


def reference_greedy(boxes, scores, classes, iou_threshold):
    """Plain greedy NMS in float64 with torchvision's IoU arithmetic: each
    kept box, in visiting order, suppresses the later boxes of its class whose
    IoU with it is > iou_threshold (a NaN IoU never is)."""
    order = np.array(reference_order(scores), dtype=np.int64)
    x1, y1, x2, y2 = np.asarray(boxes, dtype=np.float64)[order].T.reshape(4, -1)
    classes = np.asarray(classes)[order]
    area = (x2 - x1) * (y2 - y1)
    suppressed = np.zeros(len(order), dtype=bool)
    kept = []
    with np.errstate(all="ignore"):
        for r in range(len(order)):
            if suppressed[r]:
                continue
            kept.append(order[r])
            rest = slice(r + 1, None)
            w = _max(_min(x2[r], x2[rest]) - _max(x1[r], x1[rest]), 0.0)
            h = _max(_min(y2[r], y2[rest]) - _max(y1[r], y1[rest]), 0.0)
            inter = w * h
            iou = inter / (area[r] + area[rest] - inter)
            suppressed[rest] |= (iou > iou_threshold) & (classes[rest] == classes[r])
    return np.array(kept, dtype=np.int64)
