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


def torchvision_bicubic_paste():
    """torchvision's paste_masks_in_image with F.interpolate(mode="bicubic")
    in place of its bilinear resize: the peer of detcore's bicubic mode."""
    import torch.nn.functional as F
    from torchvision.models.detection.roi_heads import expand_boxes, expand_masks

    def paste_one(mask, box, im_h, im_w):
        w, h = max(int(box[2] - box[0] + 1), 1), max(int(box[3] - box[1] + 1), 1)
        mask = F.interpolate(mask.expand((1, 1, -1, -1)), size=(h, w), mode="bicubic", align_corners=False)[0][0]
        im_mask = torch.zeros((im_h, im_w), dtype=mask.dtype, device=mask.device)
        x_0, x_1 = max(box[0], 0), min(box[2] + 1, im_w)
        y_0, y_1 = max(box[1], 0), min(box[3] + 1, im_h)
        im_mask[y_0:y_1, x_0:x_1] = mask[(y_0 - box[1]) : (y_1 - box[1]), (x_0 - box[0]) : (x_1 - box[0])]
        return im_mask

    def paste(masks, boxes, image_size):
        masks, scale = expand_masks(masks, padding=1)
        boxes = expand_boxes(boxes, scale).to(dtype=torch.int64)
        return torch.stack([paste_one(m[0], b, *image_size) for m, b in zip(masks, boxes)])[:, None]

    return paste


def cases(tv):
    rng = np.random.default_rng(0)
    image_size = (1000, 1300)
    masks, boxes = mask_rcnn_outputs(rng, 100, *image_size)
    paste_tv = paste_tv_bicubic = None
    if tv is not None:
        from torchvision.models.detection.roi_heads import paste_masks_in_image

        paste_tv = paste_masks_in_image
        paste_tv_bicubic = torchvision_bicubic_paste()
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
    # mode="bicubic": against the same torchvision paste with a bicubic
    # F.interpolate; beside the bilinear rows above for the cost of the mode.
    yield Case(
        "paste_masks",
        workload + ", bicubic",
        lambda: detcore.ops.paste_masks(masks, boxes, image_size, mode="bicubic"),
        (lambda: paste_tv_bicubic(masks, boxes, image_size)) if paste_tv_bicubic else None,
    )
    yield Case(
        "paste_masks",
        workload + ", bicubic, > 0.5 (bool)",
        lambda: detcore.ops.paste_masks(masks, boxes, image_size, threshold=0.5, mode="bicubic"),
        (lambda: paste_tv_bicubic(masks, boxes, image_size) > 0.5) if paste_tv_bicubic else None,
    )
