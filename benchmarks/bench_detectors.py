"""Test-time detection per image along the line R-CNN -> SPP-net -> Fast
R-CNN -> Fast R-CNN + truncated SVD -> Faster R-CNN (the Fast R-CNN paper's
Table 4, plus Faster R-CNN): same backbone, same images, the same external
proposals for the first four; proposal time is excluded, as in the paper
(Faster R-CNN's own RPN is part of its time: that is its point).

    detcore bench detectors [--preset cpu|vgg16] [--device cpu|cuda] [--images N] [--proposals P]
                            [--threads T] [--json PATH]

Presets:
  cpu    (default, fits a 2-core CPU): VGG16 at a quarter of every width
         (16..128 conv channels, fc 1024), images 240 x 320 (shorter side 240),
         100 proposals per image, R-CNN's 227 x 227 warps with 16 px context.
  tiny   a seconds-long smoke run (widths / 16, 64 x 96 images, 8 proposals).
  vgg16  the papers' setting: full VGG16 (fc 4096), images scaled to 600 x 1000,
         2000 proposals per image (for a GPU: --device cuda).

The detectors are randomly initialised (the time does not depend on the
weights); every score threshold is off so every detector runs its NMS on
every box, and R-CNN / SPP-net run their SVM and box-regression path."""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

import numpy as np
import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "python"))

import detcore  # noqa: E402
from detcore import models  # noqa: E402
from detcore.models.svd import compress_fc_svd  # noqa: E402

PRESETS = {
    "cpu": {"width_div": 4, "height": 240, "width": 320, "min_size": 240, "max_size": 320, "proposals": 100,
            "images": 3},
    "tiny": {"width_div": 16, "height": 64, "width": 96, "min_size": 64, "max_size": 96, "proposals": 8,
             "images": 1},  # the command's own test
    "vgg16": {"width_div": 1, "height": 375, "width": 500, "min_size": 600, "max_size": 1000, "proposals": 2000,
              "images": 5},
}
NUM_CLASSES = 21  # PASCAL VOC, as the papers' timings
# Fast R-CNN paper, Table 4 (VGG16, Nvidia K40, proposal time excluded); Faster
# R-CNN paper, Table 5 (VGG16, K40, its RPN included)
PUBLISHED = {"R-CNN": 47.0, "SPP-net": 2.3, "Fast R-CNN": 0.32, "Fast R-CNN + SVD": 0.22, "Faster R-CNN": 0.198}
PUBLISHED_SPEEDUP = {"R-CNN": "1x", "SPP-net": "20x", "Fast R-CNN": "146x", "Fast R-CNN + SVD": "213x",
                     "Faster R-CNN": "-"}


def build_detectors(width_div: int, min_size: int, max_size: int):
    """name -> (model, takes external proposals)."""
    rep = 4096 // width_div
    common = {"base_width": 64 // width_div, "representation_size": rep}
    rcnn = models.build("rcnn_vgg16", NUM_CLASSES, **common, score_thresh=-1e9)
    spp = models.build("sppnet_vgg16", NUM_CLASSES, **common, min_size=min_size, max_size=max_size, score_thresh=-1e9)
    for m in (rcnn, spp):
        # the trained path: SVM scores and class-specific box regression
        with torch.no_grad():
            m.svm_weight.normal_(0, 0.01)
            m.reg_weight.normal_(0, 1e-4)
            m.stages_done.fill_(True)
    fast = models.build("fast_rcnn_vgg16", NUM_CLASSES, **common, min_size=min_size, max_size=max_size,
                        box_score_thresh=0.0)
    # the paper's ranks for VGG16 (1024 of 4096 for fc6, 256 for fc7), scaled with the width
    fast_svd = compress_fc_svd(fast, {"fc6": rep // 4, "fc7": rep // 16})
    faster = models.build("faster_rcnn_vgg16", NUM_CLASSES, **common, min_size=min_size, max_size=max_size,
                          box_score_thresh=0.0)
    return {"R-CNN": (rcnn, True), "SPP-net": (spp, True), "Fast R-CNN": (fast, True),
            "Fast R-CNN + SVD": (fast_svd, True), "Faster R-CNN": (faster, False)}


def make_inputs(n: int, height: int, width: int, proposals: int, seed: int = 0):
    """Random images and random proposals of 16..60% of the image side (selective search's range)."""
    rng = np.random.default_rng(seed)
    images = [torch.tensor(rng.uniform(0, 1, (3, height, width)), dtype=torch.float32) for _ in range(n)]
    boxes = []
    for _ in range(n):
        wh = rng.uniform(16, 0.6 * min(height, width), (proposals, 2))
        xy = rng.uniform(0, 1, (proposals, 2)) * (np.array([width, height]) - wh)
        boxes.append(torch.tensor(np.concatenate([xy, xy + wh], 1), dtype=torch.float32))
    return images, boxes


@torch.no_grad()
def time_per_image(model, takes_proposals: bool, images, proposals, device) -> tuple:
    """Seconds per image (one image per call, after one warm-up image) and proposals per image."""
    model.to(device).eval()
    images = [img.to(device) for img in images]
    proposals = [p.to(device) for p in proposals]

    def run(i):
        kw = {"proposals": [proposals[i]]} if takes_proposals else {}
        return model([images[i]], **kw)

    run(0)
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    sync()
    t0 = time.perf_counter()
    for i in range(len(images)):
        run(i)
    sync()
    seconds = (time.perf_counter() - t0) / len(images)
    if takes_proposals:
        count = float(np.mean([p.shape[0] for p in proposals]))
    else:
        count = float(model.rpn.post_nms_top_n["testing"] if isinstance(model.rpn.post_nms_top_n, dict)
                      else model.rpn.post_nms_top_n)
    return seconds, count


def format_table(rows) -> str:
    base = next(r["test_s_per_image"] for r in rows if r["model"] == "R-CNN")
    lines = ["| model | test s / image | proposals / image | speed-up over R-CNN | published s / image | "
             "published speed-up |",
             "|---|---:|---:|---:|---:|---:|"]
    for r in rows:
        pub = PUBLISHED[r["model"]]
        lines.append(f"| {r['model']} | {r['test_s_per_image']:.3f} | {r['proposals_per_image']:.0f} | "
                     f"{base / r['test_s_per_image']:.1f}x | {pub:g} | {PUBLISHED_SPEEDUP[r['model']]} |")
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="detcore bench detectors", description=__doc__.splitlines()[0])
    parser.add_argument("--preset", choices=sorted(PRESETS), default="cpu")
    parser.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    parser.add_argument("--images", type=int, default=None, help="timed images (default: the preset's)")
    parser.add_argument("--proposals", type=int, default=None, help="proposals per image (default: the preset's)")
    parser.add_argument("--only", default="", help="comma-separated model names (R-CNN is always timed)")
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    parser.add_argument("--json", default=None, metavar="PATH", help="write {'rows': [...]} here")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    preset = dict(PRESETS[args.preset])
    for key in ("images", "proposals"):
        if getattr(args, key) is not None:
            if getattr(args, key) < 1:
                parser.error(f"--{key}: expected >= 1, got {getattr(args, key)}")
            preset[key] = getattr(args, key)
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        parser.error("--device cuda: no CUDA device")
    wanted = {s.strip() for s in args.only.split(",") if s.strip()}
    unknown = wanted - set(PUBLISHED)
    if unknown:
        parser.error(f"--only: unknown {sorted(unknown)}; expected names from {list(PUBLISHED)}")
    torch.manual_seed(0)
    detectors = build_detectors(preset["width_div"], preset["min_size"], preset["max_size"])
    images, proposals = make_inputs(preset["images"] + 1, preset["height"], preset["width"], preset["proposals"])
    where = torch.cuda.get_device_name() if device.type == "cuda" else f"{torch.get_num_threads()} CPU threads"
    print(f"detcore {detcore.__version__}, torch {torch.__version__}, {where}; preset {args.preset}: VGG16 with "
          f"widths / {preset['width_div']}, {preset['height']} x {preset['width']} images (SPP-net / Fast / Faster "
          f"R-CNN rescale to shorter side {preset['min_size']}, longer <= {preset['max_size']}), "
          f"{preset['proposals']} proposals per image, {preset['images']} timed images", flush=True)
    rows = []
    for name, (model, takes) in detectors.items():
        if wanted and name not in wanted and name != "R-CNN":
            continue
        seconds, count = time_per_image(model, takes, images, proposals, device)
        rows.append({"model": name, "test_s_per_image": seconds, "proposals_per_image": count})
        print(f"  {name}: {seconds:.3f} s per image", flush=True)
        model.cpu()
    print(format_table(rows))
    if args.json:
        os.makedirs(os.path.dirname(os.path.abspath(args.json)), exist_ok=True)
        with open(args.json, "w") as f:
            json.dump({"rows": rows, "preset": args.preset, "device": where, **preset}, f, indent=2)
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
