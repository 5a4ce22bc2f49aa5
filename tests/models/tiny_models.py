"""Tiny configurations of every builder, and batches for them, so the model
tests run in seconds on two cores."""

from __future__ import annotations

import numpy as np
import torch

SIZE = dict(min_size=64, max_size=96)
RESNET = dict(base_width=8, blocks=(1, 1, 1, 1), fpn_channels=16, **SIZE)
RCNN = dict(RESNET, representation_size=32, rpn_pre_nms_top_n={"training": 200, "testing": 100},
            rpn_post_nms_top_n={"training": 100, "testing": 50}, box_batch_size_per_image=64)
C4 = dict(base_width=8, blocks=(1, 1, 1, 1), rpn_pre_nms_top_n={"training": 200, "testing": 100},
          rpn_post_nms_top_n={"training": 100, "testing": 50}, box_batch_size_per_image=32, **SIZE)
VGG = dict(base_width=8, trainable_stages=5, representation_size=32, dropout=0.0, box_batch_size_per_image=64, **SIZE)

TINY = {
    "faster_rcnn_r50_fpn": RCNN,
    "faster_rcnn_r101_fpn": RCNN,
    "mask_rcnn_r50_fpn": dict(RCNN, mask_width=16),
    "mask_rcnn_r101_fpn": dict(RCNN, mask_width=16),
    "keypoint_rcnn_r50_fpn": dict(RCNN, keypoint_width=16, box_detections_per_img=10),
    "keypoint_rcnn_r101_fpn": dict(RCNN, keypoint_width=16, box_detections_per_img=10),
    "retinanet_r50_fpn": dict(RESNET, topk_candidates=100),
    "retinanet_r101_fpn": dict(RESNET, topk_candidates=100),
    "faster_rcnn_r50_c4": C4,
    "faster_rcnn_r101_c4": C4,
    "mask_rcnn_r50_c4": dict(C4, mask_width=16),
    "mask_rcnn_r101_c4": dict(C4, mask_width=16),
    "fast_rcnn_vgg16": VGG,
    "faster_rcnn_vgg16": dict(VGG, rpn_pre_nms_top_n={"training": 200, "testing": 100},
                              rpn_post_nms_top_n={"training": 100, "testing": 50}),
}
NUM_CLASSES = 4
NUM_KEYPOINTS = 17


def needs_proposals(name: str) -> bool:
    return name.startswith("fast_rcnn")


def random_target(rng, h: int, w: int, n: int, num_classes: int = NUM_CLASSES):
    """n random boxes inside an h x w image with masks (the box filled) and keypoints inside the box."""
    x1 = rng.uniform(0, w * 0.6, n)
    y1 = rng.uniform(0, h * 0.6, n)
    x2 = np.minimum(x1 + rng.uniform(8, w * 0.5, n), w)
    y2 = np.minimum(y1 + rng.uniform(8, h * 0.5, n), h)
    boxes = torch.tensor(np.stack([x1, y1, x2, y2], 1), dtype=torch.float32).reshape(n, 4)
    masks = torch.zeros((n, h, w), dtype=torch.uint8)
    for i, (a, b, c, d) in enumerate(boxes.round().long().tolist()):
        masks[i, b:d, a:c] = 1
    # keypoint k sits at the same place in every box (as body parts do), so heatmaps can be learnt
    k = torch.arange(NUM_KEYPOINTS, dtype=torch.float32)
    u = torch.stack([(k * 0.37 + 0.1) % 0.9 + 0.05, (k * 0.61 + 0.3) % 0.9 + 0.05], -1).expand(n, -1, -1)
    kx = boxes[:, None, 0] + u[..., 0] * (boxes[:, None, 2] - boxes[:, None, 0])
    ky = boxes[:, None, 1] + u[..., 1] * (boxes[:, None, 3] - boxes[:, None, 1])
    vis = torch.tensor(rng.choice([0, 2], (n, NUM_KEYPOINTS), p=[0.2, 0.8]), dtype=torch.float32)
    return {
        "boxes": boxes,
        "labels": torch.tensor(rng.integers(1, num_classes, n), dtype=torch.int64),
        "masks": masks,
        "keypoints": torch.stack([kx, ky, vis], -1),
    }


COLOURS = torch.tensor([[0.0, 0.0, 0.0], [1.0, 0.2, 0.2], [0.2, 1.0, 0.2], [0.2, 0.2, 1.0], [1.0, 1.0, 0.2]])


def batch(rng, sizes=((64, 96), (70, 80)), counts=(2, 1)):
    """Noise images with each object painted in its class's colour (something to learn)."""
    targets = [random_target(rng, h, w, n) for (h, w), n in zip(sizes, counts)]
    images = []
    for (h, w), t in zip(sizes, targets):
        img = torch.tensor(rng.uniform(0, 0.3, (3, h, w)), dtype=torch.float32)
        for m, label in zip(t["masks"], t["labels"]):
            img = torch.where(m.bool(), COLOURS[label % len(COLOURS)][:, None, None], img)
        images.append(img)
    return images, targets


def proposals_for(targets, rng, per_image: int = 20):
    """Jittered ground truth plus random boxes: proposals for Fast R-CNN."""
    out = []
    for t in targets:
        gt = t["boxes"]
        jitter = gt.repeat(3, 1) + torch.tensor(rng.normal(0, 2, (3 * gt.shape[0], 4)), dtype=torch.float32)
        xy = torch.tensor(rng.uniform(0, 50, (per_image, 2)), dtype=torch.float32)
        wh = torch.tensor(rng.uniform(5, 40, (per_image, 2)), dtype=torch.float32)
        out.append(torch.cat([gt, jitter, torch.cat([xy, xy + wh], 1)]))
    return out


def build(name: str, **overrides):
    from detcore.models import build as _build

    kw = dict(TINY[name])
    kw.update(overrides)
    return _build(name, NUM_CLASSES, **kw)


def run(model, name, images, targets=None, rng=None, proposals=None):
    """Calls the model, passing proposals to the Fast R-CNN builders."""
    if needs_proposals(name):
        if proposals is None:
            proposals = proposals_for(targets if targets is not None else [{"boxes": torch.zeros(0, 4)}] * len(images), rng)
        return model(images, targets, proposals=proposals)
    return model(images, targets)
