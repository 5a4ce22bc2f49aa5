"""``paste``: pasting Mask R-CNN's masks back into the image, bilinear vs
bicubic (Mask R-CNN, a remark without a table)."""

from __future__ import annotations

import json
import os
import statistics
import time
from typing import Dict, List, Optional

from ..base import Experiment, Outcome, Row, check_preset, register
from ..runs import MIN_AP50, PAPER_COCO, data_specs, eval_run, percent, prepare_data, too_weak, train_run

MODES = ("bilinear", "bicubic")
METRICS = ("AP", "AP50", "AP75")
MODEL = "mask_rcnn_r50_fpn"
MASK_SIDE = 28  # the mask head's output (14 x 14 RoIAlign, one 2x deconvolution)
# Mask AP points: differences within this count as "equally well" (chosen before any run).
EQUAL_TOLERANCE = 0.5
TIMING_REPEATS = {"quick": 3, "small": 7, "paper": 5}
RESULTS_FILE = "coco_instances_results.json"  # what `detcore eval -o DIR` writes

# A tiny Mask R-CNN R50-FPN (the demo's widths), for CPU runs.
SMALL_MODEL = dict(base_width=16, blocks=(1, 1, 1, 1), fpn_channels=64, representation_size=256, mask_width=64,
                   trainable_stages=5, box_batch_size_per_image=64,
                   rpn_pre_nms_top_n={"training": 600, "testing": 300},
                   rpn_post_nms_top_n={"training": 300, "testing": 100})
QUICK_MODEL = dict(base_width=8, blocks=(1, 1, 1, 1), fpn_channels=16, representation_size=32, mask_width=16,
                   trainable_stages=5, box_batch_size_per_image=32, min_size=64, max_size=96,
                   rpn_pre_nms_top_n={"training": 200, "testing": 100},
                   rpn_post_nms_top_n={"training": 100, "testing": 50})


@register
class Paste(Experiment):
    """One Mask R-CNN (``mask_rcnn_r50_fpn``) trained once with ``detcore
    train``, then evaluated twice with ``detcore eval``: with
    ``model.mask_paste_mode=bilinear`` (torchvision's paste, the default) and
    ``model.mask_paste_mode=bicubic`` (Keys' cubic kernel, a = -0.75). The two
    evaluations share every detection and every 28 x 28 mask probability; only
    the resize of each mask into its box differs, so the mask AP, AP50 and
    AP75 differences are the paste mode's alone (the box AP is the same).

    Measured besides: the paste time per image, ``detcore.ops.paste_masks``
    (threshold 0.5, as the model pastes) timed on the evaluation's own
    detections (their boxes and image sizes; mask values do not change the
    time), the median of several passes over the validation images,
    alternating the modes; and the mean IoU of each detection's two pasted
    masks.

    Presets: ``paper`` - COCO train2017 / val2017 (the paper's trainval35k /
    minival), R50-FPN from ImageNet weights (``--weights``), 800-pixel
    images, the paper's schedule (160k iterations of 16 images, lr 0.02,
    divided by 10 at 120k). ``small`` - ``synthetic-hard:300:60`` (objects of
    8 to 96 px, thin shapes, clutter, occlusion: masks are blown up from 28 x
    28 by up to about 4x, where the modes can differ), the demo's tiny R50-FPN
    (conv widths 16, one block per stage, FPN 64) at 192 to 256 pixels,
    1500 iterations of 4 images from scratch (the demo's schedule: lr 0.02,
    warm-up 100, steps at 75% and 92%); an estimated 8-10 minutes on an idle
    2-core CPU (an iteration costs about 1.2x one of the demo's), nearly all
    of it training. ``quick`` - 12 tiny images, 4
    iterations, to check that everything runs.
    """

    name = "paste"
    title = "Mask paste-back: bilinear vs bicubic interpolation"
    paper = "He, Gkioxari, Dollar, Girshick, Mask R-CNN, ICCV 2017 (a remark in the text, no table)"
    claim = ("Resizing the predicted masks to their boxes: bilinear and bicubic interpolation work equally well "
             "(no numbers published).")

    def plan(self, preset: str, data: Optional[str] = None, val_data: Optional[str] = None) -> dict:
        check_preset(preset)
        train, val = data_specs(preset, data, val_data, PAPER_COCO)
        if preset == "paper":
            model = dict(min_size=800, max_size=1333)
            settings = dict(images_per_batch=16, max_iter=160000, base_lr=0.02, steps=[120000], warmup_iters=1000,
                            weight_decay=0.0001, momentum=0.9, flip_prob=0.5, checkpoint_period=10000,
                            log_period=100)
            init = "--weights: an ImageNet ResNet-50 in torchvision's names (the paper's initialisation)"
        elif preset == "small":
            model = dict(SMALL_MODEL, min_size=192, max_size=256)
            settings = dict(images_per_batch=4, max_iter=1500, base_lr=0.02, warmup_iters=100, steps=[0.75, 0.92],
                            flip_prob=0.5, jitter=0.1, clip_grad_norm=10.0, log_period=50, checkpoint_period=500)
            init = "random (from scratch)"
        else:
            model = dict(QUICK_MODEL)
            settings = dict(images_per_batch=2, max_iter=4, base_lr=0.01, warmup_iters=1, log_period=1,
                            checkpoint_period=0)
            init = "random (from scratch)"
        settings["tensorboard"] = False
        return {"preset": preset, "data": train, "val_data": val, "model": MODEL, "model_settings": model,
                "settings": settings, "init": init, "modes": list(MODES), "mask_side": MASK_SIDE,
                "paste_threshold": 0.5, "timing_repeats": TIMING_REPEATS[preset],
                "equal_tolerance_points": EQUAL_TOLERANCE}

    def run(self, plan: dict, workdir: str, log) -> Outcome:
        train_spec, val_spec = prepare_data(plan["data"], plan["val_data"] or None, workdir)
        trained = train_run(workdir, "mask_rcnn", model=plan["model"], data=train_spec, settings=plan["settings"],
                            model_settings=plan["model_settings"], weights=plan.get("weights"),
                            device=plan.get("device", "cpu"), log=log)
        metrics, results = {}, {}
        for mode in plan["modes"]:
            run_name = f"eval_{mode}"
            metrics[mode] = eval_run(workdir, run_name, checkpoint=trained["checkpoint"], data=val_spec,
                                     model_settings={"mask_paste_mode": mode}, device=plan.get("device", "cpu"),
                                     log=log)
            with open(os.path.join(workdir, run_name, RESULTS_FILE)) as f:
                results[mode] = json.load(f)
        num_images = int(metrics[plan["modes"][0]]["num_images"])
        log("reproduce: timing the paste on the evaluation's detections")
        paste_ms = paste_time_per_image(results[plan["modes"][0]], num_images, plan["modes"], plan["mask_side"],
                                        plan["paste_threshold"], plan["timing_repeats"])
        agreement = mask_agreement(results["bilinear"], results["bicubic"])
        measured = {mode: {k: percent(metrics[mode]["segm"][k]) for k in METRICS} for mode in plan["modes"]}
        for mode in plan["modes"]:
            measured[mode]["box AP"] = percent(metrics[mode]["bbox"]["AP"])
            measured[mode]["paste_ms"] = paste_ms[mode]
            measured[mode]["inference_ms"] = 1e3 * metrics[mode]["inference_time_per_image"]
        rows: List[Row] = []
        for mode in plan["modes"]:
            rows += [Row(mode, f"mask {k}", None, measured[mode][k], "%") for k in METRICS]
        rows += [Row("bicubic - bilinear", f"mask {k}", None, _difference(measured, k), "%") for k in METRICS]
        rows += [Row(mode, "box AP (the same detections)", None, measured[mode]["box AP"], "%")
                 for mode in plan["modes"]]
        rows += [Row(mode, "paste time per image", None, measured[mode]["paste_ms"], "ms") for mode in plan["modes"]]
        details = {"measured": measured, "num_images": num_images, "detections": len(results["bilinear"]),
                   "mask_iou_bilinear_vs_bicubic": agreement, "train_seconds": trained["seconds"]}
        return Outcome(rows=rows, published_setting=published_setting(), measured_setting=measured_setting(plan,
                       num_images, len(results["bilinear"])), verdict=verdict(measured, agreement),
                       details=details)


def _difference(measured: Dict[str, dict], key: str) -> Optional[float]:
    a, b = measured["bilinear"][key], measured["bicubic"][key]
    return None if a is None or b is None else round(b - a, 1)


def _detections_by_image(results: List[dict]) -> Dict[int, List[dict]]:
    by_image: Dict[int, List[dict]] = {}
    for r in results:
        by_image.setdefault(int(r["image_id"]), []).append(r)
    return by_image


def paste_time_per_image(results: List[dict], num_images: int, modes, mask_side: int, threshold: float,
                         repeats: int) -> Dict[str, float]:
    """Milliseconds per image of ``detcore.ops.paste_masks`` in each mode on
    the evaluation's detections: each image's boxes and size, random
    ``mask_side``-pixel masks (the values do not change the time). The median
    over ``repeats`` passes over the images, the modes alternating; images
    without detections count with 0."""
    import numpy as np
    import torch

    from .... import ops

    rng = np.random.default_rng(0)
    work = []
    for dets in _detections_by_image(results).values():
        boxes = np.array([d["bbox"] for d in dets], dtype=np.float32).reshape(-1, 4)
        boxes[:, 2:] += boxes[:, :2]  # COCO xywh -> xyxy
        height, width = dets[0]["segmentation"]["size"]
        masks = rng.uniform(0, 1, (len(dets), 1, mask_side, mask_side)).astype(np.float32)
        work.append((torch.from_numpy(masks), torch.from_numpy(boxes), (int(height), int(width))))
    times = {mode: [] for mode in modes}
    for _ in range(repeats + 1):  # the first pass warms up
        for mode in modes:
            t0 = time.perf_counter()
            for masks, boxes, size in work:
                ops.paste_masks(masks, boxes, size, threshold, mode)
            times[mode].append(time.perf_counter() - t0)
    return {mode: 1e3 * statistics.median(t[1:]) / max(num_images, 1) for mode, t in times.items()}


def mask_agreement(bilinear: List[dict], bicubic: List[dict]) -> Optional[float]:
    """The mean IoU of each detection's two pasted masks (None when the two
    evaluations' detections differ, or there are none)."""
    from pycocotools import mask as mask_utils

    if len(bilinear) != len(bicubic) or not bilinear:
        return None
    ious = []
    for a, b in zip(bilinear, bicubic):
        if a["image_id"] != b["image_id"] or a["bbox"] != b["bbox"]:
            return None
        ra, rb = (dict(r["segmentation"], counts=r["segmentation"]["counts"].encode()) for r in (a, b))
        union = mask_utils.area(mask_utils.merge([ra, rb], intersect=False))
        if union == 0:
            continue  # both empty: nothing to compare
        ious.append(float(mask_utils.area(mask_utils.merge([ra, rb], intersect=True))) / float(union))
    return round(statistics.fmean(ious), 4) if ious else None


def published_setting() -> str:
    return ("COCO (trainval35k / minival), Mask R-CNN with 28 x 28 masks resized to each box and binarised at 0.5; "
            "the paper states that bilinear and bicubic resizing work equally well, without numbers")


def measured_setting(plan: dict, num_images: int, detections: int) -> str:
    ms, st = plan["model_settings"], plan["settings"]
    size = f"shorter side {ms['min_size']} (longer at most {ms['max_size']})"
    widths = (f"conv width {ms['base_width']}, blocks {tuple(ms['blocks'])}, FPN {ms['fpn_channels']}"
              if "base_width" in ms else "full widths")
    return (f"{plan['data']} (evaluated on {num_images} images, {detections} detections), {plan['model']} "
            f"({widths}), {size}, {st['max_iter']} iterations of {st['images_per_batch']} images, initialised "
            f"{'from --weights' if plan.get('weights') else plan['init']}; the same checkpoint evaluated with "
            f"model.mask_paste_mode=bilinear and =bicubic (on {plan.get('device', 'cpu')}); paste times on the CPU "
            f"with the threads of --threads")


def verdict(measured: Dict[str, dict], agreement: Optional[float]) -> str:
    diffs = {k: _difference(measured, k) for k in METRICS}
    if any(d is None for d in diffs.values()):
        return "The mask AP could not be measured in one of the modes (no detections), so no comparison is made."
    shown = ", ".join(f"{k} {diffs[k]:+.1f}" for k in METRICS)
    equal = all(abs(d) <= EQUAL_TOLERANCE for d in diffs.values())
    if too_weak(measured[m]["AP50"] for m in MODES):
        head = (f"Bicubic minus bilinear mask AP points: {shown}, but the mask AP50 is below {MIN_AP50:.0f} in both "
                f"modes: the model learnt too little (schedule, scale) for the paste to matter, so this run does not "
                f"test the remark.")
    elif equal:
        head = (f"Bicubic minus bilinear mask AP points: {shown}, all within {EQUAL_TOLERANCE} point: the two "
                f"resizes work equally well here, as published.")
    else:
        better = "bicubic" if diffs["AP"] > 0 else "bilinear"
        head = (f"Bicubic minus bilinear mask AP points: {shown}: beyond the {EQUAL_TOLERANCE}-point tolerance "
                f"{better} pastes better here, unlike the published remark; the masks are the same 28 x 28 "
                f"probabilities, so the difference is the resize's alone, and on a small validation set a few "
                f"boundary pixels of small objects weigh more than on COCO.")
    iou = "" if agreement is None else f" The two pastes of each detection overlap with a mean IoU of {agreement:.3f}."
    bl, bc = measured["bilinear"]["paste_ms"], measured["bicubic"]["paste_ms"]
    cost = (f" Bicubic pastes in {bc:.2f} ms per image against bilinear's {bl:.2f} ms ({bc / bl:.2f}x its time)."
            if bl > 0 else "")
    return head + iou + cost
