"""``detcore predict``: images (files, folders, globs) in; a picture per image
at its own resolution and ``detections.json`` (the dataset's category ids) out.
``model.key=value`` items among the images override the checkpoint's model
settings, as in ``detcore eval`` (e.g. ``model.mask_paste_mode=bicubic``)."""

from __future__ import annotations

import glob
import os
from typing import List

from ..errors import UsageError
from .cli_support import load_checkpoint_model, setup_device, split_overrides, write_json

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm")


def expand_inputs(inputs: List[str]) -> List[str]:
    """Image files from files, folders (their images, sorted) and glob patterns."""
    paths = []
    for item in inputs:
        if os.path.isdir(item):
            found = sorted(os.path.join(item, n) for n in os.listdir(item) if n.lower().endswith(IMAGE_EXTENSIONS))
            if not found:
                raise UsageError(f"no image ({', '.join(IMAGE_EXTENSIONS)}) in folder {item}")
            paths += found
        elif any(c in item for c in "*?[") and not os.path.exists(item):
            found = sorted(p for p in glob.glob(item) if os.path.isfile(p))
            if not found:
                raise UsageError(f"no file matches {item}")
            paths += found
        elif os.path.isfile(item):
            paths.append(item)
        else:
            raise UsageError(f"image not found: {item}")
    return list(dict.fromkeys(paths))


def split_model_settings(items: List[str]):
    """The ``model.key=value`` items (that are not files) as overrides, and the other items."""
    settings = [item for item in items if item.startswith("model.") and "=" in item and not os.path.exists(item)]
    overrides, _ = split_overrides(settings)
    return overrides, [item for item in items if item not in settings]


def run(args) -> int:
    import numpy as np
    import torch

    from ..data import load_image
    from ..proposals.command import image_proposals
    from .evaluation import mask_paste_mode_of, to_original_size
    from .visualize import save_detection_picture

    if args.max_detections is not None and args.max_detections < 0:
        raise UsageError(f"--max-detections: expected a number >= 0, got {args.max_detections}")
    overrides, inputs = split_model_settings(args.images)
    if not inputs:
        raise UsageError("name at least one image, folder or glob pattern")
    images = expand_inputs(inputs)
    device = setup_device(args.device)
    if (args.weights is None) == (getattr(args, "onnx", None) is None):
        raise UsageError("pass one of --weights CKPT and --onnx FILE")
    if args.weights is None:
        from ..export.command import ExportUsageError, load_onnx_detector

        if overrides:
            raise UsageError("model.key=value settings need --weights (an ONNX file's settings are fixed at export)")
        try:
            model, meta = load_onnx_detector(args.onnx)
        except ExportUsageError as e:
            raise UsageError(str(e)) from None
    else:
        model, meta = load_checkpoint_model(args.weights, args.model, overrides, device)
    proposals_of = image_proposals(model, args.model or meta.get("model"), args.proposals, args.proposal_cache)
    class_names = meta.get("class_names") or [str(i) for i in range(meta["num_classes"])]
    category_ids = meta.get("category_ids") or list(range(1, meta["num_classes"]))
    os.makedirs(args.output, exist_ok=True)
    detections, used = [], set()
    with torch.no_grad():
        for path in images:
            image = load_image(path)
            out = model([image.to(device)], **proposals_of(path, *image.shape[-2:]))[0]
            pred = to_original_size(out, tuple(image.shape[-2:]), tuple(image.shape[-2:]),
                                    mask_paste_mode=mask_paste_mode_of(model))
            keep = np.flatnonzero(pred["scores"] >= args.score_threshold)
            keep = keep[np.argsort(-pred["scores"][keep], kind="stable")]
            if args.max_detections is not None:
                keep = keep[: args.max_detections]
            pred = {k: ([v[i] for i in keep] if isinstance(v, list) else v[keep]) for k, v in pred.items()}
            picture = _picture_name(args.output, path, used)
            save_detection_picture(picture, image.permute(1, 2, 0).numpy(), pred, class_names,
                                   score_threshold=args.score_threshold)
            items = []
            for j in range(len(pred["scores"])):
                label = int(pred["labels"][j])
                item = {"label": class_names[label] if label < len(class_names) else str(label),
                        "category_id": int(category_ids[label - 1]) if 0 < label <= len(category_ids) else label,
                        "score": round(float(pred["scores"][j]), 4),
                        "box_xyxy": [round(float(v), 2) for v in pred["boxes"][j]]}
                if "masks" in pred:
                    item["mask_rle"] = pred["masks"][j]
                if "keypoints" in pred:
                    item["keypoints"] = np.round(np.asarray(pred["keypoints"][j], dtype=float), 2).tolist()
                items.append(item)
            detections.append({"image": path, "picture": picture, "detections": items})
            print(f"{path}: {len(items)} detections -> {picture}", flush=True)
    write_json(os.path.join(args.output, "detections.json"), detections)
    print(f"wrote {os.path.join(args.output, 'detections.json')}")
    return 0


def _picture_name(output: str, path: str, used: set) -> str:
    """``<stem>_detections.png``; a second image of the same name gets a number."""
    stem = os.path.splitext(os.path.basename(path))[0]
    name, k = f"{stem}_detections.png", 1
    while name in used:
        k += 1
        name = f"{stem}_{k}_detections.png"
    used.add(name)
    return os.path.join(output, name)
