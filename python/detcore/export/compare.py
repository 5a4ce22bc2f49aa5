"""The parity rule for two detectors' outputs (an exported model against
eager, detcore against torchvision): the share of the reference's top-k
detections that the other also gives (same label, IoU > 0.99, score within
1e-4)."""

import numpy as np


def iou(a, b):
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    lt = np.maximum(a[:, None, :2], b[None, :, :2])
    rb = np.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = np.prod(np.clip(rb - lt, 0, None), axis=-1)
    area_a = np.prod(a[:, 2:] - a[:, :2], axis=-1)
    area_b = np.prod(b[:, 2:] - b[:, :2], axis=-1)
    return inter / np.maximum(area_a[:, None] + area_b[None] - inter, 1e-12)


def matched_fraction(ref, out, top=50):
    """ref, out: (boxes, labels, scores) as numpy; 1.0 when both are empty."""
    rb, rl, rs = (np.asarray(x) for x in ref)
    ob, ol, os_ = (np.asarray(x) for x in out)
    order = np.argsort(-rs, kind="stable")[:top]
    if len(order) == 0:
        return 1.0 if len(os_) == 0 else 0.0
    if len(ob) == 0:
        return 0.0
    ious = iou(rb[order], ob)
    ok = (ious > 0.99) & (rl[order][:, None] == ol[None]) & (np.abs(rs[order][:, None] - os_[None]) <= 1e-4)
    return float(ok.any(axis=1).mean())
