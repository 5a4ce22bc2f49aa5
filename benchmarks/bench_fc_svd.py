"""Truncated SVD of the Fast R-CNN fc layers (paper section 3.1): time of the
fc6/fc7 head before and after compression, and the change in detections.

    PYTHONPATH=python python benchmarks/bench_fc_svd.py [--rois 2000] [--ranks 1024,256]
        [--min-size 600] [--checkpoint model.pth] [--json out.json]

Without --checkpoint the VGG16 Fast R-CNN is randomly initialised: random
matrices have flat spectra, so the detection change is an upper bound of what
a trained model (whose fc spectra decay fast) shows."""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "python"))

import detcore.models as models  # noqa: E402
from detcore.ops import box_iou  # noqa: E402


def time_call(fn, min_seconds=1.0):
    fn()
    n, start = 0, time.perf_counter()
    while time.perf_counter() - start < min_seconds or n < 3:
        fn()
        n += 1
    return (time.perf_counter() - start) / n


def detection_change(ref, out):
    """Mean |score change| and mean IoU of each reference detection with the
    best compressed detection of its class."""
    score_diffs, ious = [], []
    for r, o in zip(ref, out):
        for label in r["labels"].unique():
            a, b = r["labels"] == label, o["labels"] == label
            if b.sum() == 0:
                ious += [0.0] * int(a.sum())
                continue
            iou = box_iou(r["boxes"][a], o["boxes"][b])
            best, idx = iou.max(1)
            ious += best.tolist()
            score_diffs += (r["scores"][a] - o["scores"][b][idx]).abs().tolist()
    mean = lambda v: sum(v) / max(1, len(v))  # noqa: E731
    return mean(score_diffs), mean(ious), sum(len(r["boxes"]) for r in ref), sum(len(o["boxes"]) for o in out)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rois", type=int, default=2000, help="RoIs per fc timing (the paper: 2000 at test time)")
    p.add_argument("--ranks", default="1024,256", help="fc6,fc7 ranks")
    p.add_argument("--min-size", type=int, default=600)
    p.add_argument("--num-classes", type=int, default=21)
    p.add_argument("--checkpoint", default=None, help="a trained fast_rcnn_vgg16 state dict")
    p.add_argument("--min-seconds", type=float, default=1.0, help="time each head at least this long")
    p.add_argument("--json", default=None)
    args = p.parse_args(argv)
    torch.manual_seed(0)
    t0 = time.perf_counter()
    k6, k7 = (int(k) for k in args.ranks.split(","))
    model = models.build("fast_rcnn_vgg16", args.num_classes, min_size=args.min_size, max_size=args.min_size * 5 // 3)
    if args.checkpoint:
        model.load_state_dict(torch.load(args.checkpoint, map_location="cpu"))
    model.eval()
    t_build = time.perf_counter()
    small = models.compress_fc_svd(model, {"fc6": k6, "fc7": k7})
    print(f"built in {t_build - t0:.1f} s, SVD in {time.perf_counter() - t_build:.1f} s", flush=True)
    head, small_head = model.roi_heads.box_head, small.roi_heads.box_head
    x = torch.randn(args.rois, model.backbone.out_channels, 7, 7)
    with torch.no_grad():
        t_full = time_call(lambda: head(x), args.min_seconds)
        t_small = time_call(lambda: small_head(x), args.min_seconds)
        h, w = args.min_size, args.min_size * 4 // 3
        images = [torch.rand(3, h, w)]
        xy = torch.rand(300, 2) * torch.tensor([w * 0.8, h * 0.8])
        wh = torch.rand(300, 2) * torch.tensor([w * 0.5, h * 0.5]) + 16
        proposals = [torch.cat([xy, xy + wh], 1)]
        for m in (model, small):
            m.roi_heads.score_thresh = 0.0
        ref, out = model(images, proposals=proposals), small(images, proposals=proposals)
    score_diff, mean_iou, n_ref, n_out = detection_change(ref, out)
    result = {
        "rois": args.rois, "ranks": [k6, k7], "fc_ms_full": t_full * 1e3, "fc_ms_svd": t_small * 1e3,
        "fc_time_saved": 1 - t_small / t_full, "mean_abs_score_change": score_diff,
        "mean_best_iou_same_class": mean_iou, "detections_full": n_ref, "detections_svd": n_out,
        "weights": "checkpoint" if args.checkpoint else "random",
    }
    print("| rois | ranks | fc full (ms) | fc SVD (ms) | fc time saved | mean |score change| | mean IoU to full |")
    print("|---|---|---|---|---|---|---|")
    print(f"| {args.rois} | {k6},{k7} | {t_full * 1e3:.1f} | {t_small * 1e3:.1f} | {result['fc_time_saved']:.0%} "
          f"| {score_diff:.4f} | {mean_iou:.3f} |")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(result, f, indent=2)


if __name__ == "__main__":
    main()
