"""``detcore train``: the run's settings (``--config`` file, the resumed run's
``config.json``, the command line), the output-folder rules, the datasets
checked against the model, then :func:`detcore.engine.train`."""

from __future__ import annotations

import inspect
import os
import random
import shutil
import time

import numpy as np
import torch

from ..errors import UsageError
from . import run_config
from .cli_support import build_detector, log, report_metrics, setup_device

# what a run writes into its output folder (--overwrite deletes these)
RUN_FILES = ("config.json", "train_metrics.jsonl", "metrics.json", "model_final.pth", "training_curves.png",
             "coco_instances_results.json", "tensorboard",
             # the multi-stage trainers' (R-CNN, SPP-net; engine/stages.py)
             "finetune", "features", "svm.pth", "bbox_reg.pth", "stages.json")
# folders of the output that are caches, not a run (the synthetic dataset)
CACHE_DIRS = ("synthetic",)


def list_settings(model_name=None) -> int:
    from .config import TrainConfig, format_settings

    print("# training settings (key=value)")
    print("\n".join(format_settings(TrainConfig())))
    if model_name:
        print(f"# settings of {model_name} (model.key=value)")
        print("\n".join(model_setting_lines(model_name)))
    else:
        print("# model.key=value: the model's settings (add --model NAME to list them)")
    return 0


def model_setting_lines(name: str):
    if ":" in name:  # module:function
        from .build import build_model  # noqa: F401 (same import rules as building)
        import importlib

        module_name, _, attr = name.partition(":")
        try:
            fn = getattr(importlib.import_module(module_name), attr)
        except (ImportError, AttributeError) as e:
            raise UsageError(f"--model {name}: cannot import {attr!r} from {module_name!r}: {e}") from None
        params = [p for p in inspect.signature(fn).parameters.values()
                  if p.default is not inspect.Parameter.empty]
        return [f"model.{p.name} = {p.default!r}" for p in params] or [f"# {name} does not declare its settings"]
    from ..models.setting_help import format_model_settings

    try:
        return format_model_settings(name)
    except ValueError as e:
        raise UsageError(f"--model: {e}") from None


def seed_everything(seed: int) -> None:
    """Before the model is built: the same command gives the same initial weights."""
    torch.manual_seed(seed)
    np.random.seed(seed % 2**32)
    random.seed(seed)


def prepare_output(output: str, resume: bool, overwrite: bool) -> None:
    """Refuses a folder that holds something (another run) unless resuming or overwriting."""
    if resume and overwrite:
        raise UsageError("--resume and --overwrite contradict each other")
    if not os.path.isdir(output):
        if os.path.exists(output):
            raise UsageError(f"-o {output}: exists and is not a folder")
        return
    entries = sorted(e for e in os.listdir(output) if e not in CACHE_DIRS)
    if not entries or resume:
        return
    if not overwrite:
        shown = ", ".join(entries[:4]) + (", ..." if len(entries) > 4 else "")
        raise UsageError(f"-o {output} is not empty ({shown}); pass --resume to continue the run there, "
                         f"--overwrite to start a new one in it, or choose another folder")
    from .checkpoint import periodic_checkpoints

    for path in periodic_checkpoints(output) + [os.path.join(output, name) for name in RUN_FILES]:
        if os.path.isdir(path):
            shutil.rmtree(path)
        elif os.path.exists(path):
            os.remove(path)


def resolve_run(args, items):
    """The run's settings and the lines saying what the command line changed in a resumed run."""
    from .cli_support import split_overrides

    model_overrides, settings_items = split_overrides(items)
    for item in settings_items:
        if not item.partition("=")[0].strip():
            raise UsageError(f"override {item!r}: expected key=value")
    run = run_config.RunSettings()
    if args.config:
        run = run_config.read_config_file(args.config)
    given = run_config.from_command_line(args, settings_items, model_overrides)
    changes = []
    saved_path = os.path.join(args.output, "config.json")
    if (args.resume or args.resume_from) and os.path.isfile(saved_path):
        import json

        try:
            with open(saved_path) as f:
                saved = run_config.parse_config(json.load(f), saved_path)
        except ValueError as e:
            raise UsageError(f"{saved_path} is not valid JSON: {e}") from None
        changes = run_config.changed_on_resume(saved, given)
        run = run_config.merge(run, saved)
    run = run_config.merge(run, given)
    if not run.model:
        raise UsageError("--model is required (or a --config file / a resumed run that names it)")
    if not run.data:
        raise UsageError("--data is required (or a --config file / a resumed run that names it)")
    return run, run_config.training_config(run), changes


def model_keypoints(model):
    """How many keypoints the model predicts (None: no keypoint head)."""
    heads = getattr(model, "roi_heads", None)
    if heads is not None and getattr(heads, "has_keypoint", False):
        return heads.keypoint_predictor.deconv.out_channels
    return getattr(model, "num_keypoints", None) or None


def takes_keypoints(name: str) -> bool:
    if ":" in name:
        return False
    from ..models.builders import model_settings

    try:
        settings = model_settings(name)
    except ValueError:
        return False
    return bool(settings) and "num_keypoints" in settings


def check_dataset_for_model(name, model, dataset, spec) -> None:
    """What the model needs from the data, checked before the first iteration."""
    wanted = model_keypoints(model)
    have = len(getattr(dataset, "keypoint_names", None) or [])
    if wanted and not have:
        raise UsageError(f"{name} predicts keypoints, but --data {spec} has no keypoint annotations")
    if wanted and wanted != have:
        raise UsageError(f"{name} is built for {wanted} keypoints, --data {spec} has {have}")
    heads = getattr(model, "roi_heads", None)
    if heads is not None and getattr(heads, "has_mask", False) and not _has_masks(dataset):
        raise UsageError(f"{name} predicts masks, but --data {spec} has no segmentation annotations")


def _has_masks(dataset) -> bool:
    from ..data import CocoDetection

    if isinstance(dataset, CocoDetection):
        return dataset.with_masks and any(a.get("segmentation") for a in dataset.dataset["annotations"])
    return False


def run(args) -> int:
    from ..data import build_dataset, label_to_category
    from ..proposals.command import attach_for_model
    from .distributed import get_world_size
    from .evaluation import evaluate
    from .trainer import METRICS_FILE, TrainingInterrupted, train

    if args.list_settings:
        return list_settings(args.model)
    if not args.output:
        raise UsageError("-o/--output is required")
    resume = args.resume_from or args.resume
    run_settings, cfg, changes = resolve_run(args, args.overrides)
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if cfg.images_per_batch % world:
        raise UsageError(f"images_per_batch={cfg.images_per_batch} does not divide across {world} processes; "
                         f"use a multiple of {world}")
    if int(os.environ.get("RANK", "0")) == 0:
        prepare_output(args.output, bool(resume), args.overwrite)
    device = setup_device(args.device)
    log(f"detcore train: {world} process{'es' if world > 1 else ''} on {device}, "
        f"{torch.get_num_threads()} thread(s) each")
    for line in changes:
        log(f"resume: {line}")

    data = run_settings.data
    train_set = build_dataset(data, train=True, cache_dir=args.output, check_data=args.check_data)
    if len(train_set) == 0:
        raise UsageError(f"--data {data}: no image with a usable (non-crowd, non-difficult) instance")
    log(f"data {data}: {train_set.summary()}")
    val_set = None
    if run_settings.val_data:
        val_set = build_dataset(run_settings.val_data, train=False, cache_dir=args.output,
                                classes=train_set.class_names[1:], check_data=args.check_data)
        if val_set.class_names != train_set.class_names:
            raise UsageError(f"--val-data has classes {val_set.class_names[1:]}, --data has "
                             f"{train_set.class_names[1:]}")
        log(f"val-data {run_settings.val_data}: {val_set.summary()}")

    model_overrides = dict(run_settings.model_overrides)
    keypoint_names = list(getattr(train_set, "keypoint_names", None) or [])
    if takes_keypoints(run_settings.model):
        if not keypoint_names:
            raise UsageError(f"{run_settings.model} predicts keypoints, but --data {data} has no keypoint annotations")
        model_overrides.setdefault("num_keypoints", len(keypoint_names))
    seed_everything(cfg.seed)
    model = build_detector(run_settings.model, train_set.num_classes, model_overrides)
    check_dataset_for_model(run_settings.model, model, train_set, data)
    attach_for_model(model, run_settings.model, train_set, args.proposals, args.proposal_cache, log)
    if val_set is not None:
        attach_for_model(model, run_settings.model, val_set, args.val_proposals or args.proposals,
                         args.proposal_cache, log, "--val-data")
    if run_settings.weights and not resume:
        from .weights import load_initial_weights

        log(load_initial_weights(model, run_settings.weights))

    label_to_cat = label_to_category(train_set)
    meta = {"model": run_settings.model, "model_overrides": model_overrides, "num_classes": train_set.num_classes,
            "class_names": train_set.class_names,
            "category_ids": [int(label_to_cat[i]) for i in range(1, train_set.num_classes)],
            "keypoint_names": keypoint_names, "config": cfg.to_dict(), "data": data,
            "val_data": run_settings.val_data, "weights": run_settings.weights}
    if args.proposals:
        meta["proposals"] = args.proposals
    log(f"training {run_settings.model} on {data} ({len(train_set)} images, {train_set.num_classes - 1} classes) "
        f"for {cfg.max_iter} iterations, {cfg.images_per_batch} images per batch, on {device}")

    def evaluate_now(model, iteration):
        metrics = evaluate(model, val_set, device, voc=args.voc, min_size=cfg.min_size, max_size=cfg.max_size)
        if iteration < cfg.max_iter:
            aps = ", ".join(f"{kind} AP {100 * metrics[kind]['AP']:.1f}" for kind in ("bbox", "segm", "keypoints")
                            if kind in metrics)
            log(f"iteration {iteration}: {aps} on {metrics['num_images']} validation images")
        return metrics

    t0 = time.perf_counter()
    try:
        if getattr(model, "multi_stage", False):  # R-CNN, SPP-net: fine-tuning, features, SVMs, box regressors
            from .stages import train_stages

            summary = train_stages(model, train_set, cfg, args.output, device=device, meta=meta, log=log)
            if val_set is not None:
                summary["eval"] = evaluate_now(model, cfg.max_iter)
        else:
            summary = train(model, train_set, cfg, args.output, device=device, resume=resume, meta=meta,
                            evaluate=evaluate_now if val_set is not None else None)
    except TrainingInterrupted as e:
        runner = "torchrun ... -m detcore.cli" if get_world_size() > 1 else "detcore"
        log(f"interrupted at iteration {e.iteration}; checkpoint {e.checkpoint}; "
            f"resume with: {runner} train -o {args.output} --resume")
        return 130
    log(f"trained in {time.perf_counter() - t0:.0f} s; checkpoint {summary['checkpoint']}")
    if val_set is not None:
        report_metrics(summary["eval"], device, args.output)
    if int(os.environ.get("RANK", "0")) == 0:
        from .progress import read_metrics
        from .visualize import plot_training_curves

        metrics_file = summary.get("metrics_file") or os.path.join(args.output, METRICS_FILE)
        plot_training_curves(read_metrics(metrics_file),
                             os.path.join(args.output, "training_curves.png"), title=f"{run_settings.model} on {data}")
    return 0
