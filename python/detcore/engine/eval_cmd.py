"""``detcore eval``: a checkpoint's COCO AP (and per-class AP, VOC07 mAP) on a
dataset; the detections in COCO results format beside ``metrics.json``."""

from __future__ import annotations

import os

from ..errors import UsageError
from .cli_support import evaluate_and_report, load_checkpoint_model, log, setup_device, split_overrides

RESULTS_FILE = "coco_instances_results.json"


def run(args) -> int:
    from ..data import build_dataset
    from ..proposals.command import attach_for_model
    from .distributed import is_main_process

    device = setup_device(args.device)
    model_overrides, rest = split_overrides(args.overrides)
    if rest:
        raise UsageError(f"eval takes model.key=value overrides only, got {rest}")
    model, meta = load_checkpoint_model(args.weights, args.model, model_overrides, device)
    classes = (meta.get("class_names") or [None])[1:] or None
    dataset = build_dataset(args.data, train=False, cache_dir=args.output or os.path.dirname(args.weights) or ".",
                            classes=classes, check_data=args.check_data)
    log(f"data {args.data}: {dataset.summary()}")
    if meta.get("class_names") and meta["class_names"] != dataset.class_names:
        raise UsageError(f"the checkpoint's classes {meta['class_names'][1:]} differ from the dataset's "
                         f"{dataset.class_names[1:]}")
    attach_for_model(model, args.model or meta.get("model"), dataset, args.proposals, args.proposal_cache, log,
                     limit=args.max_images)
    cfg = meta.get("config", {})
    results_file = None
    if args.output:
        os.makedirs(args.output, exist_ok=True)
        results_file = os.path.join(args.output, RESULTS_FILE)
    evaluate_and_report(model, dataset, device, args.output, voc=args.voc, min_size=cfg.get("min_size"),
                        max_size=cfg.get("max_size", 1333), max_images=args.max_images, results_file=results_file)
    if results_file and is_main_process():
        log(f"wrote {os.path.join(args.output, 'metrics.json')} and {results_file}")
    return 0
