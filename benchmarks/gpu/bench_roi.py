import torch

import detcore.ops
from harness import Case
from workloads import random_rois


def _fwd_bwd(op, features, rois, **kwargs):
    def run():
        x = features.detach().requires_grad_()
        op(x, rois, **kwargs).sum().backward()

    return run


def cases(tv):
    kwargs = dict(output_size=(7, 7), spatial_scale=0.25, sampling_ratio=2, aligned=True)
    for dtype in (torch.float32, torch.bfloat16):
        features = torch.randn(2, 256, 200, 272, device="cuda", dtype=dtype)
        rois = random_rois(1000, 2, 200, 272, 0.25, device="cuda").to(dtype)
        name = str(dtype).removeprefix("torch.")
        # torchvision has no bfloat16 roi_align kernel: its float16 one, same
        # sizes and bytes, is the reference for detcore's bfloat16.
        tv_dtype = torch.float16 if dtype == torch.bfloat16 else dtype
        tv_features, tv_rois = features.to(tv_dtype), rois.to(tv_dtype)
        tv_note = " (tv: float16)" if tv_dtype != dtype else ""
        yield Case(
            "roi_align fwd",
            f"2x256x200x272 {name}, 1000 RoIs, 7x7{tv_note}",
            lambda f=features, r=rois: detcore.ops.roi_align(f, r, **kwargs),
            (lambda f=tv_features, r=tv_rois: tv.roi_align(f, r, **kwargs)) if tv else None,
            goal=1.5,
        )
        yield Case(
            "roi_align fwd+bwd",
            f"2x256x200x272 {name}, 1000 RoIs, 7x7{tv_note}",
            _fwd_bwd(detcore.ops.roi_align, features, rois, **kwargs),
            _fwd_bwd(tv.roi_align, tv_features, tv_rois, **kwargs) if tv else None,
            goal=2.0,
        )
    features = torch.randn(2, 256, 200, 272, device="cuda")
    rois = random_rois(1000, 2, 200, 272, 0.25, device="cuda")
    # The goal: the deterministic gather backward within 2x of detcore's
    # atomic one (the "torchvision" column here is detcore's atomic run).
    yield Case(
        "roi_align fwd+bwd deterministic",
        "2x256x200x272 float32, 1000 RoIs, 7x7 (peer: detcore atomics)",
        _fwd_bwd(detcore.ops.roi_align, features, rois, deterministic=True, **kwargs),
        _fwd_bwd(detcore.ops.roi_align, features, rois, deterministic=False, **kwargs),
        goal=0.5,
    )
    yield Case(
        "roi_pool fwd+bwd",
        "2x256x200x272 float32, 1000 RoIs, 7x7",
        _fwd_bwd(detcore.ops.roi_pool, features, rois, output_size=(7, 7), spatial_scale=0.25),
        _fwd_bwd(tv.roi_pool, features, rois, output_size=(7, 7), spatial_scale=0.25) if tv else None,
    )
    small = random_rois(8, 2, 200, 272, 0.25, device="cuda")
    yield Case(
        "roi_align fwd",
        "8 RoIs (per-call overhead)",
        lambda: detcore.ops.roi_align(features, small, **kwargs),
        (lambda: tv.roi_align(features, small, **kwargs)) if tv else None,
        goal=0.67,
    )
