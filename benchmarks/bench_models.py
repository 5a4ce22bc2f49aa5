"""Whole-detector benchmark: each R50-FPN detector side by side with
torchvision's holding the same weights, in the same process.

Per detector: inference on one image (resized to min_size 800) by
torchvision, detcore unfused, detcore with the batch norms folded only
(`model.fuse(channels_last=False, winograd=False)`), detcore fused
(`model.fuse()`: on the CPU also channels_last and the Winograd 3x3
convolutions), and the exported ONNX file in onnxruntime (CPU); and one
training step (forward, backward, SGD step) on two images for torchvision and
detcore. Prints a table with the ratios torchvision / detcore (> 1: detcore
faster) and the share of torchvision's top-50 detections that fused detcore
matches (same label, IoU > 0.99, score within 1e-4); writes JSON.

    python benchmarks/bench_models.py [--models NAME ...] [--reps 3] [--json out.json]
    python benchmarks/bench_models.py --quick   # smoke run: min_size 320, one repetition

The CPU is timed with torch's default thread count. The variants are timed
in turn within each repetition (median over repetitions): on a shared machine
the absolute times follow the load, the ratios much less.

Needs torchvision (for the side-by-side) and, for the ONNX column, onnx,
onnxscript and onnxruntime.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import platform
import statistics
import sys
import tempfile
import time

import numpy as np
import torch

from detcore import models


MODELS = ("faster_rcnn_r50_fpn", "mask_rcnn_r50_fpn", "keypoint_rcnn_r50_fpn", "retinanet_r50_fpn")
NUM_CLASSES = {"keypoint_rcnn_r50_fpn": 2}


def _torchvision(name, size):
    import torchvision.models.detection as tvdet
    from torchvision.ops.misc import FrozenBatchNorm2d

    builder = {"faster_rcnn_r50_fpn": tvdet.fasterrcnn_resnet50_fpn, "mask_rcnn_r50_fpn": tvdet.maskrcnn_resnet50_fpn,
               "keypoint_rcnn_r50_fpn": tvdet.keypointrcnn_resnet50_fpn,
               "retinanet_r50_fpn": tvdet.retinanet_resnet50_fpn}[name]
    tv = builder(weights=None, weights_backbone=None, num_classes=NUM_CLASSES.get(name, 91), **_size_kw(size))
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        _frozen_random_bn(tv, g, FrozenBatchNorm2d)
        if name == "retinanet_r50_fpn":  # scores past the 0.05 threshold
            tv.head.classification_head.cls_logits.bias.normal_(0, 1, generator=g)
    return tv


def _size_kw(size):
    """min_size / max_size overrides (None: each builder's default, 800 / 1333)."""
    return {} if size is None else {"min_size": size[0], "max_size": size[1]}


def _frozen_random_bn(module, g, frozen_cls):
    """torchvision builds plain batch norms without weights; its COCO
    checkpoints run frozen ones (eps 0): swap them in, with random statistics
    so that fusing has something to fold."""
    for name, child in list(module.named_children()):
        if isinstance(child, torch.nn.BatchNorm2d):
            n = child.num_features
            bn = frozen_cls(n, eps=0.0)
            bn.weight.copy_(torch.rand(n, generator=g) * 0.4 + 0.3)
            bn.bias.copy_(torch.randn(n, generator=g) * 0.1)
            bn.running_mean.copy_(torch.randn(n, generator=g) * 0.1)
            bn.running_var.copy_(torch.rand(n, generator=g) + 0.5)
            setattr(module, name, bn)
        else:
            _frozen_random_bn(child, g, frozen_cls)


def _targets(name, images, rng):
    out = []
    for img in images:
        h, w = img.shape[-2:]
        xy = rng.uniform(0, [w * 0.6, h * 0.6], (3, 2))
        boxes = torch.tensor(np.concatenate([xy, xy + rng.uniform(32, [w * 0.4, h * 0.4], (3, 2))], 1),
                             dtype=torch.float32)
        t = {"boxes": boxes, "labels": torch.tensor([1, 1, 1])}
        if name.startswith("mask"):
            masks = torch.zeros((3, h, w), dtype=torch.uint8)
            for i, (a, b, c, d) in enumerate(boxes.long().tolist()):
                masks[i, b:d, a:c] = 1
            t["masks"] = masks
        if name.startswith("keypoint"):
            u = torch.rand(3, 17, 2)
            kx = boxes[:, None, 0] + u[..., 0] * (boxes[:, None, 2] - boxes[:, None, 0])
            ky = boxes[:, None, 1] + u[..., 1] * (boxes[:, None, 3] - boxes[:, None, 1])
            t["keypoints"] = torch.stack([kx, ky, torch.full_like(kx, 2)], -1)
        out.append(t)
    return out


def _time_interleaved(runners: dict, reps, sync) -> dict:
    """Median ms of each runner, timed in turn within every repetition, so
    that a change of load on a shared machine weighs on all of them alike."""
    for fn in runners.values():  # warm-up
        fn()
    sync()
    times = {k: [] for k in runners}
    for _ in range(reps):
        for key, fn in runners.items():
            t = time.perf_counter()
            fn()
            sync()
            times[key].append(time.perf_counter() - t)
    return {k: statistics.median(v) * 1000.0 for k, v in times.items()}


def _train_step(model, images, targets):
    opt = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=1e-5)

    def step():
        losses = model(images, targets)
        opt.zero_grad()
        sum(losses.values()).backward()
        opt.step()

    return step


def _onnx_runner(model, name, image):
    from detcore.export import OnnxDetector, to_onnx
    from detcore.export.command import _add_metadata
    from detcore.export.runtime import META_KEY, export_metadata

    path = os.path.join(tempfile.mkdtemp(), f"{name}.onnx")
    to_onnx(copy.deepcopy(model), path, fuse=True)
    _add_metadata(path, META_KEY, json.dumps(export_metadata(model, name)))
    detector = OnnxDetector(path)
    return lambda: detector([image])


def bench(name, reps, device, with_onnx, rng, size=None, train=True):
    from detcore.export.compare import matched_fraction

    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    tv = _torchvision(name, size).eval().to(device)
    ours = models.build(name, NUM_CLASSES.get(name, 91), **_size_kw(size)).eval()
    assert models.load_torchvision_weights(ours, tv.state_dict()) == []
    ours.to(device)
    image = torch.rand(3, 480, 640, device=device)
    row = {"model": name, "device": device.type}
    folded = copy.deepcopy(ours).fuse(channels_last=False, winograd=False)
    fused = copy.deepcopy(ours).fuse()
    runners = {"tv_infer_ms": lambda: tv([image]), "detcore_infer_ms": lambda: ours([image]),
               "folded_infer_ms": lambda: folded([image]), "fused_infer_ms": lambda: fused([image])}
    if with_onnx:
        runners["onnx_infer_ms"] = _onnx_runner(copy.deepcopy(ours).cpu(), name, image.cpu())
    with torch.no_grad():
        row.update(_time_interleaved(runners, reps, sync))
        ref, got = tv([image])[0], fused([image])[0]
        row["fused_matched_top50"] = matched_fraction(
            (ref["boxes"].cpu(), ref["labels"].cpu(), ref["scores"].cpu()),
            (got["boxes"].cpu(), got["labels"].cpu(), got["scores"].cpu()))
    if not train:
        return row
    images = [torch.rand(3, 480, 640, device=device), torch.rand(3, 480, 640, device=device)]
    targets = [{k: v.to(device) for k, v in t.items()} for t in _targets(name, images, rng)]
    tv.train()
    ours.train()
    row.update(_time_interleaved({"tv_train_ms": _train_step(tv, images, targets),
                                  "detcore_train_ms": _train_step(ours, images, targets)}, max(1, reps // 2), sync))
    return row


def _ratio(row, a, b):
    return row[a] / row[b] if row.get(a) and row.get(b) else float("nan")


def print_table(rows):
    head = ("| model | device | tv infer ms | detcore | BN folded | fused | ONNX (ORT) | fused/tv speed-up "
            "| matched | tv train ms | detcore train | train speed-up |")
    print(head)
    print("|" + "|".join(["---"] * (head.count("|") - 1)) + "|")
    for r in rows:
        print(f"| {r['model']} | {r['device']} | {r['tv_infer_ms']:.0f} | {r['detcore_infer_ms']:.0f} "
              f"({_ratio(r, 'tv_infer_ms', 'detcore_infer_ms'):.2f}x) "
              f"| {r['folded_infer_ms']:.0f} ({_ratio(r, 'tv_infer_ms', 'folded_infer_ms'):.2f}x) "
              f"| {r['fused_infer_ms']:.0f} "
              f"| {r.get('onnx_infer_ms', float('nan')):.0f} ({_ratio(r, 'tv_infer_ms', 'onnx_infer_ms'):.2f}x) "
              f"| {_ratio(r, 'tv_infer_ms', 'fused_infer_ms'):.2f}x | {r['fused_matched_top50']:.2f} "
              f"| {r.get('tv_train_ms', float('nan')):.0f} | {r.get('detcore_train_ms', float('nan')):.0f} "
              f"| {_ratio(r, 'tv_train_ms', 'detcore_train_ms'):.2f}x |")


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--models", nargs="+", default=list(MODELS), choices=MODELS)
    p.add_argument("--reps", type=int, default=3, help="timed repetitions (median); training uses half")
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--no-onnx", action="store_true", help="skip the ONNX export and onnxruntime column")
    p.add_argument("--no-train", action="store_true", help="skip the training steps")
    p.add_argument("--min-size", type=int, default=None,
                   help="shorter image side of both detectors (default: the builders' 800; the long side 5/3 of it)")
    p.add_argument("--quick", action="store_true",
                   help="a smoke run: --min-size 320 and one repetition (every column still measured)")
    p.add_argument("--json", default="bench_models.json")
    args = p.parse_args(argv)
    if args.quick:
        args.reps, args.min_size = 1, args.min_size or 320
    size = None if args.min_size is None else (args.min_size, args.min_size * 5 // 3)
    try:
        import torchvision  # noqa: F401
    except ImportError:
        print("bench_models: needs torchvision for the side-by-side", file=sys.stderr)
        return 2
    rng = np.random.default_rng(0)
    device = torch.device(args.device)
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"# {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads, load average {load:.1f} at start, reps {args.reps}, "
          f"min_size {args.min_size or 800}")
    rows = []
    for name in args.models:
        rows.append(bench(name, args.reps, device, not args.no_onnx, rng, size, not args.no_train))
        print(f"# done {name}", flush=True)
    print_table(rows)
    with open(args.json, "w") as f:
        json.dump({"load_average": load, "rows": rows}, f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
