import numpy as np
import torch

import detcore.ops
from harness import Case


def mask_rcnn_outputs(rng, n, image_h, image_w):
    """n mask-head outputs (n, 1, 28, 28) and their boxes, 20 to 400 px a side,
    inside the image."""
    wh = rng.uniform(20, 400, (n, 2))
    xy = rng.uniform(0, 1, (n, 2)) * (np.array([image_w, image_h]) - wh)
    boxes = torch.from_numpy(np.concatenate([xy, xy + wh], 1).astype(np.float32))
    masks = torch.from_numpy(rng.uniform(0, 1, (n, 1, 28, 28)).astype(np.float32))
    return masks, boxes


def cases(tv):
    rng = np.random.default_rng(0)
    image_size = (1000, 1300)
    masks, boxes = mask_rcnn_outputs(rng, 100, *image_size)
    paste_tv = None
    if tv is not None:
        from torchvision.models.detection.roi_heads import paste_masks_in_image

        paste_tv = paste_masks_in_image
    workload = "100 masks 28x28 into 1000x1300"
    yield Case(
        "paste_masks",
        workload,
        lambda: detcore.ops.paste_masks(masks, boxes, image_size),
        (lambda: paste_tv(masks, boxes, image_size)) if paste_tv else None,
        goal=3.0,
    )
    # detcore's CPU output is calloc'd zeros written only inside the boxes;
    # reading it all back shows the pages it never touched are not a debt.
    yield Case(
        "paste_masks",
        workload + ", then sum every pixel",
        lambda: detcore.ops.paste_masks(masks, boxes, image_size).sum(),
        (lambda: paste_tv(masks, boxes, image_size).sum()) if paste_tv else None,
    )
    yield Case(
        "paste_masks",
        workload + ", > 0.5 (bool)",
        lambda: detcore.ops.paste_masks(masks, boxes, image_size, threshold=0.5),
        (lambda: paste_tv(masks, boxes, image_size) > 0.5) if paste_tv else None,
    )
