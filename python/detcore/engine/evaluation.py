"""Evaluation: inference over a dataset (sharded across processes), the COCO
metrics through pycocotools (bbox, segm, keypoints), VOC07 mAP, and the
inference time per image.

Predictions are kept per image id in the original image's coordinates, as
numpy arrays, with masks binarised at 0.5 and stored as COCO RLE (compact,
picklable for the gather between processes).
"""

from __future__ import annotations

import contextlib
import io
import json
import time
from typing import Dict, List, Optional, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from ..data import ShardedIndices, build_transforms, coco_from_dataset, collate, label_to_category
from . import distributed as dist_utils
from .build import proposal_inputs

BOX_STATS = ("AP", "AP50", "AP75", "APs", "APm", "APl", "AR1", "AR10", "AR100", "ARs", "ARm", "ARl")
KEYPOINT_STATS = ("AP", "AP50", "AP75", "APm", "APl", "AR", "AR50", "AR75", "ARm", "ARl")
TABLE_STATS = {"bbox": BOX_STATS[:6], "segm": BOX_STATS[:6], "keypoints": KEYPOINT_STATS[:5]}


class _Transformed(torch.utils.data.Dataset):
    def __init__(self, dataset, transforms):
        self.dataset, self.transforms = dataset, transforms

    def __len__(self):
        return len(self.dataset)

    def __getitem__(self, index):
        image, target = self.dataset[index]
        if self.transforms is not None:
            image, target = self.transforms(image, target, None)
        return image, target


def to_original_size(pred: dict, input_size, orig_size, mask_threshold: float = 0.5,
                     mask_paste_mode: str = "bilinear") -> dict:
    """One model output -> numpy arrays in the original image's coordinates;
    masks as a list of RLE dicts. Masks of an image the data pipeline resized
    are resized back with ``mask_paste_mode`` (the model's, which pasted them),
    "bilinear" or "bicubic"."""
    sy, sx = orig_size[0] / input_size[0], orig_size[1] / input_size[1]
    out = {"boxes": pred["boxes"].detach().float().cpu().numpy().reshape(-1, 4) * [sx, sy, sx, sy],
           "scores": pred["scores"].detach().float().cpu().numpy().reshape(-1),
           "labels": pred["labels"].detach().cpu().numpy().astype(np.int64).reshape(-1)}
    if "keypoints" in pred:
        kps = pred["keypoints"].detach().float().cpu().numpy().copy()
        kps[..., 0] *= sx
        kps[..., 1] *= sy
        out["keypoints"] = kps
    if "masks" in pred:
        from pycocotools import mask as mask_utils

        masks = pred["masks"].detach().float()
        if masks.dim() == 4:
            masks = masks[:, 0]
        if masks.shape[0] and tuple(masks.shape[-2:]) != tuple(orig_size):
            masks = F.interpolate(masks[:, None], size=tuple(orig_size), mode=mask_paste_mode,
                                  align_corners=False)[:, 0]
        binary = (masks >= mask_threshold).cpu().numpy().astype(np.uint8)
        rles = mask_utils.encode(np.asfortranarray(binary.transpose(1, 2, 0))) if len(binary) else []
        for rle in rles:
            rle["counts"] = rle["counts"].decode("ascii")
        out["masks"] = list(rles)
    return out


def mask_paste_mode_of(model) -> str:
    """The model's ``mask_paste_mode`` setting ("bilinear" for models without one)."""
    return getattr(getattr(model, "transform", None), "mask_paste_mode", "bilinear")


@torch.no_grad()
def run_inference(model, dataset, device="cpu", *, min_size=None, max_size: int = 1333,
                  max_images: Optional[int] = None):
    """Runs ``model`` (in eval mode) over ``dataset``; each process takes its
    shard. Returns ``(predictions by image id, seconds per image)`` gathered on
    every process. The time counts the model alone (no data loading)."""
    device = torch.device(device)
    rank, world = dist_utils.get_rank(), dist_utils.get_world_size()
    transforms = build_transforms(False, min_size=min_size, max_size=max_size)
    length = len(dataset) if max_images is None else min(max_images, len(dataset))
    loader = torch.utils.data.DataLoader(_Transformed(dataset, transforms), batch_size=1,
                                         sampler=ShardedIndices(length, rank, world), collate_fn=collate)
    paste_mode = mask_paste_mode_of(model)
    was_training = model.training
    model.eval()
    predictions, model_seconds = {}, 0.0
    try:
        for images, targets in loader:
            images = [img.to(device) for img in images]
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            t0 = time.perf_counter()
            outputs = model(images, **proposal_inputs(model, targets, device))
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            model_seconds += time.perf_counter() - t0
            for image, target, output in zip(images, targets, outputs):
                orig = target.get("orig_size", tuple(image.shape[-2:]))
                predictions[target["image_id"]] = to_original_size(output, tuple(image.shape[-2:]), orig,
                                                                   mask_paste_mode=paste_mode)
    finally:
        model.train(was_training)
    merged = {}
    for part in dist_utils.all_gather_object(predictions):
        merged.update(part)
    total_seconds = sum(dist_utils.all_gather_object(model_seconds))
    return merged, total_seconds / max(len(merged), 1)


def coco_results(predictions: Dict[int, dict], label_to_cat: Dict[int, int]) -> Dict[str, List[dict]]:
    """Predictions -> the COCO results lists per iou type."""
    results = {"bbox": [], "segm": [], "keypoints": []}
    for image_id, pred in predictions.items():
        for j, (box, score, label) in enumerate(zip(pred["boxes"], pred["scores"], pred["labels"])):
            x1, y1, x2, y2 = (float(v) for v in box)
            base = {"image_id": int(image_id), "category_id": int(label_to_cat.get(int(label), int(label))),
                    "score": float(score)}
            results["bbox"].append(dict(base, bbox=[x1, y1, x2 - x1, y2 - y1]))
            if "masks" in pred:
                results["segm"].append(dict(base, segmentation=pred["masks"][j]))
            if "keypoints" in pred:
                kps = np.asarray(pred["keypoints"][j], dtype=np.float64).copy()
                kps[:, 2] = 1  # predicted keypoints are all "labelled"; COCO ignores v in results
                results["keypoints"].append(dict(base, keypoints=kps.reshape(-1).tolist()))
    return results


def instances_results(results: Dict[str, List[dict]]) -> List[dict]:
    """The per-type result lists of :func:`coco_results` merged into one list
    of COCO results (``bbox`` plus ``segmentation`` / ``keypoints`` where the
    model predicts them), as detectron2's ``coco_instances_results.json``."""
    merged = [dict(r) for r in results.get("bbox", [])]
    for kind, key in (("segm", "segmentation"), ("keypoints", "keypoints")):
        extra = results.get(kind, [])
        if extra:
            for item, r in zip(merged, extra):
                item[key] = r[key]
    return merged


def coco_evaluate(coco_gt, results: Dict[str, List[dict]], iou_types: Sequence[str],
                  kpt_oks_sigmas: Optional[Sequence[float]] = None,
                  per_class: Optional[dict] = None) -> Dict[str, Dict[str, float]]:
    """pycocotools' COCOeval for each iou type -> ``{iou_type: {stat: value}}``
    (COCOeval's 12 / 10 summary numbers, -1 where a range has no ground truth).
    When ``per_class`` is a dict it receives ``{iou_type: {class name: AP}}``
    (AP at IoU 0.50:0.95, all areas; -1 for a class without ground truth)."""
    from pycocotools.cocoeval import COCOeval

    metrics = {}
    for iou_type in iou_types:
        names = KEYPOINT_STATS if iou_type == "keypoints" else BOX_STATS
        dets = results.get(iou_type, [])
        if not dets:
            metrics[iou_type] = {name: 0.0 for name in names}
            continue
        with contextlib.redirect_stdout(io.StringIO()):
            coco_dt = coco_gt.loadRes(dets)
            evaluator = COCOeval(coco_gt, coco_dt, iou_type)
            if iou_type == "keypoints":
                evaluator.params.kpt_oks_sigmas = np.asarray(
                    kpt_oks_sigmas if kpt_oks_sigmas is not None else default_oks_sigmas(coco_gt), dtype=np.float64)
            evaluator.evaluate()
            evaluator.accumulate()
            evaluator.summarize()
        metrics[iou_type] = {name: float(v) for name, v in zip(names, evaluator.stats)}
        if per_class is not None:
            per_class[iou_type] = _per_class_ap(evaluator, coco_gt)
    return metrics


def _per_class_ap(evaluator, coco_gt) -> Dict[str, float]:
    precision = evaluator.eval["precision"]  # [IoU thresholds, recall, class, area, max detections]
    out = {}
    for k, cat_id in enumerate(evaluator.params.catIds):
        p = precision[:, :, k, 0, -1]
        p = p[p > -1]
        out[str(coco_gt.cats[cat_id]["name"])] = float(p.mean()) if p.size else -1.0
    return out


def format_per_class_table(per_class: Dict[str, Dict[str, float]]) -> str:
    """A markdown table of the per-class AP (percent), one column per iou type."""
    kinds = list(per_class)
    names = list(dict.fromkeys(n for kind in kinds for n in per_class[kind]))
    lines = ["| class | " + " | ".join(f"{kind} AP" for kind in kinds) + " |", "|---|" + "---:|" * len(kinds)]
    for name in names:
        cells = []
        for kind in kinds:
            v = per_class[kind].get(name)
            cells.append("-" if v is None or v < 0 else f"{100 * v:.1f}")
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def default_oks_sigmas(coco_gt) -> np.ndarray:
    """COCO's person sigmas for 17 keypoints, else 0.05 for every keypoint."""
    cats = [c for c in coco_gt.dataset.get("categories", []) if c.get("keypoints")]
    k = len(cats[0]["keypoints"]) if cats else 0
    if k == 17:
        return np.array([.26, .25, .25, .35, .35, .79, .79, .72, .72, .62, .62, 1.07, 1.07, .87, .87, .89, .89]) / 10.0
    return np.full(k, 0.05)


def format_ap_table(metrics: Dict[str, Dict[str, float]]) -> str:
    """A markdown table of the AP numbers, in percent."""
    columns = ("AP", "AP50", "AP75", "APs", "APm", "APl")
    lines = ["| task | " + " | ".join(columns) + " |", "|---|" + "---:|" * len(columns)]
    for iou_type, stats in metrics.items():
        if iou_type not in TABLE_STATS:
            continue
        cells = []
        for col in columns:
            v = stats.get(col)
            cells.append("-" if v is None or v < 0 else f"{100 * v:.1f}")
        lines.append(f"| {iou_type} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def voc07_ap(recall: np.ndarray, precision: np.ndarray) -> float:
    """The VOC2007 11-point interpolated AP."""
    ap = 0.0
    for t in np.arange(0.0, 1.1, 0.1):
        p = precision[recall >= t]
        ap += (p.max() if p.size else 0.0) / 11.0
    return float(ap)


def voc07_map(predictions: Dict[int, dict], dataset, iou_threshold: float = 0.5) -> Dict[str, object]:
    """VOC07 mAP: per class, detections sorted by score match unmatched ground
    truth at IoU >= ``iou_threshold``; matches to ``difficult`` objects count
    neither as true nor false positives, and difficult objects are not counted
    in the recall."""
    gts = {}
    for index in range(len(dataset)):
        target = dataset.load_target(index)
        if target["image_id"] not in predictions:
            continue  # not evaluated (max_images)
        difficult = target.get("difficult", torch.zeros(len(target["labels"]), dtype=torch.bool))
        gts[target["image_id"]] = (target["boxes"].numpy().astype(np.float64), target["labels"].numpy(),
                                   difficult.numpy().astype(bool))
    per_class = {}
    for label in range(1, dataset.num_classes):
        gt_boxes = {i: (b[lab == label], d[lab == label]) for i, (b, lab, d) in gts.items()}
        npos = sum(int((~d).sum()) for _, d in gt_boxes.values())
        dets = [(float(s), i, box) for i, p in predictions.items() if i in gt_boxes
                for box, s, lab in zip(p["boxes"], p["scores"], p["labels"]) if int(lab) == label]
        dets.sort(key=lambda d: -d[0])
        used = {i: np.zeros(len(b), dtype=bool) for i, (b, _) in gt_boxes.items()}
        tp, fp = np.zeros(len(dets)), np.zeros(len(dets))
        for k, (_, image_id, box) in enumerate(dets):
            boxes, difficult = gt_boxes[image_id]
            if len(boxes):
                iw = np.clip(np.minimum(boxes[:, 2], box[2]) - np.maximum(boxes[:, 0], box[0]), 0, None)
                ih = np.clip(np.minimum(boxes[:, 3], box[3]) - np.maximum(boxes[:, 1], box[1]), 0, None)
                inter = iw * ih
                union = ((box[2] - box[0]) * (box[3] - box[1])
                         + (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1]) - inter)
                iou = inter / np.maximum(union, np.finfo(np.float64).eps)
                best = int(iou.argmax())
                if iou[best] >= iou_threshold:
                    if difficult[best]:
                        continue
                    if not used[image_id][best]:
                        used[image_id][best] = True
                        tp[k] = 1
                        continue
            fp[k] = 1
        if npos == 0:
            continue  # a class absent from the ground truth has no AP
        tp_c, fp_c = np.cumsum(tp), np.cumsum(fp)
        recall = tp_c / npos
        precision = tp_c / np.maximum(tp_c + fp_c, np.finfo(np.float64).eps)
        per_class[dataset.class_names[label]] = voc07_ap(recall, precision)
    return {"mAP": float(np.mean(list(per_class.values()))) if per_class else 0.0, "per_class": per_class}


def evaluate(model, dataset, device="cpu", *, iou_types: Optional[Sequence[str]] = None, voc: bool = False,
             min_size=None, max_size: int = 1333, max_images: Optional[int] = None,
             kpt_oks_sigmas=None, results_file: Optional[str] = None) -> Dict[str, object]:
    """Inference + metrics. ``iou_types`` defaults to what both the model's
    outputs and the dataset have: bbox, segm (masks), keypoints. Returns
    ``{"bbox": {...}, "segm": {...}, "per_class": {"bbox": {name: AP}, ...}, "voc07": {...},
    "inference_time_per_image": s, "num_images": n}``; every process gets the
    same result. ``results_file``: where to write the detections in COCO
    results format (the dataset's category ids)."""
    predictions, seconds = run_inference(model, dataset, device, min_size=min_size, max_size=max_size,
                                         max_images=max_images)
    metrics: Dict[str, object] = {}
    if dist_utils.is_main_process():
        coco_gt = coco_from_dataset(dataset)
        if max_images is not None:
            coco_gt = _restricted(coco_gt, predictions)
        if iou_types is None:
            sample = next(iter(predictions.values()), {})  # the keys tell what the model predicts
            iou_types = ["bbox"]
            if "masks" in sample and any("segmentation" in a for a in coco_gt.dataset["annotations"]):
                iou_types.append("segm")
            if "keypoints" in sample and getattr(dataset, "keypoint_names", None):
                iou_types.append("keypoints")
        results = coco_results(predictions, label_to_category(dataset))
        if results_file:
            with open(results_file, "w") as f:
                json.dump(instances_results(results), f)
        per_class: dict = {}
        metrics.update(coco_evaluate(coco_gt, results, iou_types, kpt_oks_sigmas, per_class))
        metrics["per_class"] = per_class
        if voc:
            metrics["voc07"] = voc07_map(predictions, dataset)
    metrics = dist_utils.broadcast_object(metrics)
    metrics["inference_time_per_image"] = seconds
    metrics["num_images"] = len(predictions)
    return metrics


def _restricted(coco_gt, predictions):
    """The ground truth of the evaluated images only (for ``max_images``)."""
    from pycocotools.coco import COCO

    ids = set(int(i) for i in predictions)
    d = coco_gt.dataset
    sub = COCO()
    sub.dataset = {**d, "images": [im for im in d["images"] if im["id"] in ids],
                   "annotations": [a for a in d["annotations"] if a["image_id"] in ids]}
    with contextlib.redirect_stdout(io.StringIO()):
        sub.createIndex()
    return sub
