import torch

import detcore.ops
from harness import Case
from workloads import random_boxes


def _focal_fwd_bwd(op, logits, targets):
    def run():
        x = logits.detach().requires_grad_()
        op(x, targets, alpha=0.25, gamma=2.0, reduction="sum").backward()

    return run


def cases(tv):
    n, c = 200_000, 80
    gen = torch.Generator().manual_seed(0)
    logits = torch.randn(n, c, generator=gen).cuda()
    labels = torch.randint(0, c + 1, (n,), generator=gen).cuda()
    one_hot = torch.nn.functional.one_hot(labels, c + 1)[:, :c].float()
    # The least traffic of a fused fwd+bwd: read logits and one-hot targets,
    # write the gradient (float32 each). The goal: within 2x of the bandwidth
    # this implies (H100: ~3 TB/s, so >= ~1.5 TB/s effective).
    yield Case(
        "sigmoid_focal_loss fwd+bwd",
        f"{n:,} x {c}, one-hot, sum",
        _focal_fwd_bwd(detcore.ops.sigmoid_focal_loss, logits, one_hot),
        _focal_fwd_bwd(tv.sigmoid_focal_loss, logits, one_hot) if tv else None,
        goal=4.0,
        bytes_moved=3 * n * c * 4,
    )
    yield Case(
        "sigmoid_focal_loss fwd+bwd",
        f"{n:,} x {c}, int64 labels, sum",
        _focal_fwd_bwd(detcore.ops.sigmoid_focal_loss, logits, labels),
        None,
    )

    masks = torch.rand(100, 28, 28, generator=gen).cuda()
    boxes = random_boxes(100, image_size=1000.0, min_wh=20, max_wh=400, device="cuda")
    yield Case(
        "paste_masks",
        "100 masks 28x28 into 1000x1300",
        lambda: detcore.ops.paste_masks(masks, boxes, (1000, 1300)),
        _torchvision_paste(masks, boxes, (1000, 1300)) if tv else None,
        goal=5.0,
    )
    yield Case(
        "paste_masks",
        "100 masks 28x28 into 1000x1300, bicubic",
        lambda: detcore.ops.paste_masks(masks, boxes, (1000, 1300), mode="bicubic"),
        _torchvision_bicubic_paste(masks, boxes, (1000, 1300)) if tv else None,
    )


def _torchvision_paste(masks, boxes, image_size):
    from torchvision.models.detection.roi_heads import paste_masks_in_image

    return lambda: paste_masks_in_image(masks[:, None], boxes, image_size, padding=1)


def _torchvision_bicubic_paste(masks, boxes, image_size):
    from cpu.bench_paste_masks import torchvision_bicubic_paste

    paste = torchvision_bicubic_paste()
    return lambda: paste(masks[:, None], boxes, image_size)
