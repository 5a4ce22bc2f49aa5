import torch

import detcore.ops
from harness import Case
from workloads import random_boxes, random_scores


def cases(tv):
    for n in (100, 10_000, 100_000):
        boxes, scores = random_boxes(n, device="cuda"), random_scores(n, device="cuda")
        yield Case(
            "nms",
            f"{n:,} boxes, IoU 0.5" + (" (per-call overhead)" if n == 100 else ""),
            lambda b=boxes, s=scores: detcore.ops.nms(b, s, 0.5),
            (lambda b=boxes, s=scores: tv.nms(b, s, 0.5)) if tv else None,
            goal=0.67 if n == 100 else 2.0,
        )
    n = 100_000
    boxes, scores = random_boxes(n, device="cuda"), random_scores(n, device="cuda")
    idxs = torch.randint(0, 80, (n,), generator=torch.Generator().manual_seed(3)).cuda()
    yield Case(
        "batched_nms",
        f"{n:,} boxes, 80 classes",
        lambda: detcore.ops.batched_nms(boxes, scores, idxs, 0.5),
        (lambda: tv.batched_nms(boxes, scores, idxs, 0.5)) if tv else None,
        goal=3.0,
    )
    b1, b2 = random_boxes(2000, device="cuda"), random_boxes(20000, seed=5, device="cuda")
    yield Case(
        "box_iou",
        "2,000 x 20,000",
        lambda: detcore.ops.box_iou(b1, b2),
        (lambda: tv.box_iou(b1, b2)) if tv else None,
    )
