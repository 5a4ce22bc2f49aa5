"""The ``detcore`` command: demo, train, eval, predict, bench.

    detcore demo [-o OUT]                        synthetic data -> Mask R-CNN -> COCO AP
    detcore train --model NAME --data SPEC -o OUT [--val-data SPEC] [--resume] [key=value ...]
    detcore eval --weights CKPT --data SPEC [-o OUT] [--voc]
    detcore predict --weights CKPT IMAGE... -o OUT
    detcore bench [--only nms,roi_align]

Dataset specs: ``synthetic[:TRAIN[:VAL]]``, ``coco:ANNOTATIONS.json:IMAGE_DIR``, ``voc:ROOT[:SPLIT]``.
Hyperparameters: ``key=value`` (see ``detcore train --list-settings``);
``model.key=value`` goes to the model builder. Multi-GPU / multi-machine:
``torchrun --nproc_per_node=G [--nnodes ...] -m detcore.cli train ...``.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
import time
from typing import List, Optional

EXIT_USAGE = 2


class UsageError(Exception):
    """A user mistake reported as one line, without a traceback."""


# The demo: a small Mask R-CNN (ResNet with one block per stage and 16 base
# channels, FPN of 64 channels) trained from scratch on 128-160 px synthetic
# images, sized for two CPU cores and about ten minutes. One torch thread by
# default: on a shared machine two OpenMP threads spin against other work and
# can be many times slower (--threads 2 is faster on an idle machine).
DEMO_MODEL = "mask_rcnn_r50_fpn"
DEMO_MODEL_OVERRIDES: dict = dict(
    base_width=16, blocks=(1, 1, 1, 1), fpn_channels=64, representation_size=256, mask_width=64,
    min_size=128, max_size=160, trainable_stages=5, box_batch_size_per_image=64,
    rpn_pre_nms_top_n={"training": 600, "testing": 300}, rpn_post_nms_top_n={"training": 300, "testing": 100},
)
DEMO_SETTINGS = dict(images_per_batch=4, max_iter=1200, base_lr=0.02, warmup_iters=100, steps=(0.75, 0.92),
                     log_period=20, checkpoint_period=300, flip_prob=0.5, jitter=0.1, clip_grad_norm=10.0)
DEMO_DATA = dict(num_train=600, num_val=60, image_size=(128, 160), object_size=(24, 64))
DEMO_THREADS = 1


def _add_common(p, output_required=False):
    p.add_argument("-o", "--output", required=output_required, default=None,
                   help="output folder (checkpoints, metrics, pictures)")
    p.add_argument("--device", default="cpu", help="cpu, cuda, cuda:1 ... (default cpu)")
    p.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="detcore", description="detcore: train, evaluate and run detectors.",
                                     formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True

    p = sub.add_parser("demo", help="make the synthetic dataset, train a small Mask R-CNN, evaluate, plot")
    _add_common(p)
    p.add_argument("--num-train", type=int, default=DEMO_DATA["num_train"], help="synthetic training images")
    p.add_argument("--num-val", type=int, default=DEMO_DATA["num_val"], help="synthetic validation images")
    p.add_argument("--model", default=DEMO_MODEL, help=argparse.SUPPRESS)
    p.add_argument("overrides", nargs="*", metavar="key=value", help="training settings, model.key=value")

    p = sub.add_parser("train", help="train a detector")
    _add_common(p, output_required=True)
    p.add_argument("--model", required=True, help="a detcore.models name (mask_rcnn_r50_fpn, ...; see detcore.models.available()) or module:function")
    p.add_argument("--data", required=True, help="training dataset spec")
    p.add_argument("--val-data", default=None, help="validation dataset spec (evaluated at the end)")
    p.add_argument("--weights", default=None, help="initial weights (a detcore checkpoint)")
    p.add_argument("--resume", action="store_true",
                   help="continue from the latest checkpoint in the output folder")
    p.add_argument("--resume-from", default=None, metavar="CKPT", help="continue from this checkpoint")
    p.add_argument("--voc", action="store_true", help="also report VOC07 mAP")
    p.add_argument("overrides", nargs="*", metavar="key=value", help="training settings, model.key=value")

    p = sub.add_parser("eval", help="evaluate a checkpoint with the COCO metrics")
    _add_common(p)
    p.add_argument("--weights", required=True, help="a detcore checkpoint")
    p.add_argument("--data", required=True, help="dataset spec")
    p.add_argument("--model", default=None, help="model name (default: the checkpoint's)")
    p.add_argument("--voc", action="store_true", help="also report VOC07 mAP")
    p.add_argument("--max-images", type=int, default=None, help="evaluate the first N images only")
    p.add_argument("overrides", nargs="*", metavar="model.key=value", help="model builder overrides")

    p = sub.add_parser("predict", help="detect objects in images; write pictures and JSON")
    _add_common(p, output_required=True)
    p.add_argument("--weights", default=None, help="a detcore checkpoint")
    p.add_argument("--onnx", default=None, help="an ONNX file of `detcore export`, run in onnxruntime instead")
    p.add_argument("images", nargs="+", help="image files")
    p.add_argument("--score-threshold", type=float, default=0.5)
    p.add_argument("--model", default=None, help="model name (default: the checkpoint's)")

    p = sub.add_parser("export", help="export a checkpoint's detector to ONNX (standard operators)")
    p.add_argument("--model", required=True, help="model name")
    p.add_argument("--checkpoint", required=True, help="a detcore checkpoint of that model")
    p.add_argument("--image-size", type=int, nargs=2, metavar=("H", "W"), default=None,
                   help="example input size traced (H and W stay dynamic in the graph)")
    p.add_argument("--no-fuse", action="store_true", help="keep the batch norms unfolded")
    p.add_argument("-o", "--output", required=True, help="the .onnx file to write")

    p = sub.add_parser("bench", help="the op benchmark table (benchmarks/bench_ops.py)")
    p.add_argument("bench_args", nargs=argparse.REMAINDER, help="arguments of benchmarks/bench_ops.py")
    return parser


def main(argv: Optional[List[str]] = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] == "train" and "--list-settings" in argv:
        from detcore.engine.config import TrainConfig

        for f in dataclasses.fields(TrainConfig):
            print(f"{f.name} = {getattr(TrainConfig(), f.name)!r}")
        return 0
    if argv and argv[0] == "bench" and not {"-h", "--help"} & set(argv[1:2]):
        from detcore import bench  # its arguments belong to benchmarks/bench_ops.py

        try:
            return bench.main(argv[1:])
        except FileNotFoundError as e:
            print(f"detcore bench: error: {e}", file=sys.stderr)
            return EXIT_USAGE
    args = build_parser().parse_args(argv)
    try:
        if getattr(args, "threads", 0):
            import torch

            torch.set_num_threads(args.threads)
        return {"demo": cmd_demo, "train": cmd_train, "eval": cmd_eval, "predict": cmd_predict,
                "bench": cmd_bench, "export": cmd_export}[args.command](args) or 0
    except Exception as e:
        from detcore.data import DatasetError
        from detcore.engine.checkpoint import CheckpointError

        if isinstance(e, (UsageError, DatasetError, CheckpointError, FileNotFoundError)):
            print(f"detcore {args.command}: error: {e}", file=sys.stderr)
            return EXIT_USAGE
        raise  # a bug, not a user mistake: keep the traceback


# --------------------------------------------------------------------------- helpers

def _log(*parts):
    from detcore.engine.distributed import is_main_process

    if is_main_process():
        print(*parts, flush=True)


def _settings(base, items):
    from detcore.engine import apply_overrides

    try:
        cfg, _ = apply_overrides(base, items)
    except ValueError as e:
        raise UsageError(str(e)) from None
    return cfg


def _build(name, num_classes, overrides):
    from detcore.engine import build_model

    try:
        return build_model(name, num_classes, **overrides)
    except (ValueError, TypeError) as e:
        raise UsageError(f"cannot build model {name!r} with {overrides}: {e}") from None


def _split_overrides(items):
    from detcore.engine.config import parse_value

    model_overrides, rest = {}, []
    for item in items:
        key, sep, value = item.partition("=")
        if not sep:
            raise UsageError(f"override {item!r}: expected key=value")
        if key.startswith("model."):
            model_overrides[key[len("model."):]] = parse_value(value)
        else:
            rest.append(item)
    return model_overrides, rest


def _load_checkpoint_model(weights: str, model_name: Optional[str], extra_overrides: dict, device):
    from detcore.engine import load_model_state, read_checkpoint

    payload = read_checkpoint(weights)
    meta = payload.get("meta", {})
    name = model_name or meta.get("model")
    if not name:
        raise UsageError(f"{weights} does not name its model; pass --model")
    num_classes = meta.get("num_classes")
    if not num_classes:
        raise UsageError(f"{weights} does not record num_classes")
    overrides = {**meta.get("model_overrides", {}), **extra_overrides}
    model = _build(name, num_classes, overrides)
    load_model_state(model, payload, weights)
    model.to(device).eval()
    return model, meta


def _write_json(path, payload):
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        json.dump(payload, f, indent=2)
    os.replace(tmp, path)


def _evaluate_and_report(model, dataset, device, output: Optional[str], *, voc=False, min_size=None,
                         max_size=1333, max_images=None, extra=None):
    from detcore.engine import evaluate, format_ap_table
    from detcore.engine.distributed import is_main_process

    metrics = evaluate(model, dataset, device, voc=voc, min_size=min_size, max_size=max_size, max_images=max_images)
    _log(format_ap_table({k: v for k, v in metrics.items() if k in ("bbox", "segm", "keypoints")}))
    if "voc07" in metrics:
        _log(f"VOC07 mAP@0.5: {100 * metrics['voc07']['mAP']:.1f}")
    _log(f"inference: {1e3 * metrics['inference_time_per_image']:.1f} ms per image "
         f"({metrics['num_images']} images, {device})")
    if output and is_main_process():
        os.makedirs(output, exist_ok=True)
        _write_json(os.path.join(output, "metrics.json"), {**metrics, **(extra or {})})
    return metrics


# --------------------------------------------------------------------------- commands

def cmd_train(args):
    from detcore.data import build_dataset
    from detcore.engine import TrainConfig, load_model_state, read_checkpoint, train
    from detcore.engine.distributed import init_distributed

    device = init_distributed(args.device)
    model_overrides, settings = _split_overrides(args.overrides)
    cfg = _settings(TrainConfig(), settings)
    cache = args.output
    train_set = build_dataset(args.data, train=True, cache_dir=cache)
    if len(train_set) == 0:
        raise UsageError(f"--data {args.data}: no image with a usable (non-crowd, non-difficult) instance")
    val_set = build_dataset(args.val_data, train=False, cache_dir=cache) if args.val_data else None
    if val_set is not None and val_set.class_names != train_set.class_names:
        raise UsageError(f"--val-data has classes {val_set.class_names[1:]}, --data has {train_set.class_names[1:]}")
    model = _build(args.model, train_set.num_classes, model_overrides)
    if args.weights:
        load_model_state(model, read_checkpoint(args.weights), args.weights)
    meta = {"model": args.model, "model_overrides": model_overrides, "num_classes": train_set.num_classes,
            "class_names": train_set.class_names, "config": cfg.to_dict()}
    _log(f"training {args.model} on {args.data} ({len(train_set)} images, {train_set.num_classes - 1} classes) "
         f"for {cfg.max_iter} iterations, {cfg.images_per_batch} images per batch, on {device}")
    t0 = time.perf_counter()
    summary = train(model, train_set, cfg, args.output, device=device,
                    resume=args.resume_from or args.resume, meta=meta)
    _log(f"trained in {time.perf_counter() - t0:.0f} s; checkpoint {summary['checkpoint']}")
    if val_set is not None:
        _evaluate_and_report(model, val_set, device, args.output, voc=args.voc, min_size=cfg.min_size,
                             max_size=cfg.max_size)
    return 0


def cmd_eval(args):
    from detcore.data import build_dataset
    from detcore.engine.distributed import init_distributed

    device = init_distributed(args.device)
    model_overrides, rest = _split_overrides(args.overrides)
    if rest:
        raise UsageError(f"eval takes model.key=value overrides only, got {rest}")
    model, meta = _load_checkpoint_model(args.weights, args.model, model_overrides, device)
    dataset = build_dataset(args.data, train=False, cache_dir=args.output or os.path.dirname(args.weights) or ".")
    if meta.get("class_names") and meta["class_names"] != dataset.class_names:
        raise UsageError(f"the checkpoint's classes {meta['class_names'][1:]} differ from the dataset's "
                         f"{dataset.class_names[1:]}")
    cfg = meta.get("config", {})
    _evaluate_and_report(model, dataset, device, args.output, voc=args.voc, min_size=cfg.get("min_size"),
                         max_size=cfg.get("max_size", 1333), max_images=args.max_images)
    return 0


def cmd_predict(args):
    import numpy as np
    import torch

    from detcore.data import load_image
    from detcore.engine.evaluation import to_original_size
    from detcore.engine.visualize import save_detection_grid

    for path in args.images:
        if not os.path.isfile(path):
            raise UsageError(f"image not found: {path}")
    device = torch.device(args.device)
    if (args.weights is None) == (args.onnx is None):
        raise UsageError("pass one of --weights CKPT and --onnx FILE")
    if args.onnx:
        from detcore.export.command import ExportUsageError, load_onnx_detector

        try:
            model, meta = load_onnx_detector(args.onnx)
        except ExportUsageError as e:
            raise UsageError(str(e)) from None
    else:
        model, meta = _load_checkpoint_model(args.weights, args.model, {}, device)
    class_names = meta.get("class_names") or [str(i) for i in range(meta["num_classes"])]
    os.makedirs(args.output, exist_ok=True)
    detections = []
    with torch.no_grad():
        for path in args.images:
            image = load_image(path)
            out = model([image.to(device)])[0]
            pred = to_original_size(out, tuple(image.shape[-2:]), tuple(image.shape[-2:]))
            keep = pred["scores"] >= args.score_threshold
            pred = {k: ([v[i] for i in np.flatnonzero(keep)] if isinstance(v, list) else v[keep])
                    for k, v in pred.items()}
            stem = os.path.splitext(os.path.basename(path))[0]
            picture = os.path.join(args.output, f"{stem}_detections.png")
            save_detection_grid(picture, [image.permute(1, 2, 0).numpy()], [pred], class_names,
                                score_threshold=args.score_threshold, columns=1)
            items = []
            for j in range(len(pred["scores"])):
                item = {"label": class_names[int(pred["labels"][j])], "label_id": int(pred["labels"][j]),
                        "score": round(float(pred["scores"][j]), 4),
                        "box_xyxy": [round(float(v), 2) for v in pred["boxes"][j]]}
                if "masks" in pred:
                    item["mask_rle"] = pred["masks"][j]
                if "keypoints" in pred:
                    item["keypoints"] = np.round(np.asarray(pred["keypoints"][j], dtype=float), 2).tolist()
                items.append(item)
            detections.append({"image": path, "picture": picture, "detections": items})
            print(f"{path}: {len(items)} detections -> {picture}")
    _write_json(os.path.join(args.output, "detections.json"), detections)
    print(f"wrote {os.path.join(args.output, 'detections.json')}")
    return 0


def cmd_export(args):
    from detcore.export.command import ExportUsageError, export_checkpoint

    try:
        path = export_checkpoint(args.model, args.checkpoint, args.output, args.image_size, fuse=not args.no_fuse)
    except ExportUsageError as e:
        raise UsageError(str(e)) from None
    print(f"wrote {path}")
    return 0


def cmd_bench(args):
    from detcore import bench

    return bench.main(args.bench_args)


def cmd_demo(args):
    import torch

    from detcore.data import CocoDetection, SyntheticSpec, make_synthetic_dataset
    from detcore.engine import TrainConfig, train
    from detcore.engine.evaluation import run_inference
    from detcore.engine.progress import read_metrics
    from detcore.engine.trainer import METRICS_FILE
    from detcore.engine.visualize import plot_training_curves, save_detection_grid

    output = args.output or "detcore_demo"
    device = torch.device(args.device)
    if not args.threads:
        torch.set_num_threads(DEMO_THREADS)
    model_overrides, settings = _split_overrides(args.overrides)
    if args.model == DEMO_MODEL:
        model_overrides = {**DEMO_MODEL_OVERRIDES, **model_overrides}
    cfg = _settings(TrainConfig(**DEMO_SETTINGS), settings)
    spec = SyntheticSpec(**{**DEMO_DATA, "num_train": args.num_train, "num_val": args.num_val})
    t_start = time.perf_counter()
    print(f"[1/4] synthetic dataset: {spec.num_train} train + {spec.num_val} val images of {list(spec.classes)} "
          f"-> {os.path.join(output, 'synthetic')}", flush=True)
    paths = make_synthetic_dataset(os.path.join(output, "synthetic"), spec)
    train_set = CocoDetection(*paths["train"], remove_empty=True, skip_crowd=True)
    val_set = CocoDetection(*paths["val"])
    model = _build(args.model, train_set.num_classes, model_overrides)
    n_params = sum(p.numel() for p in model.parameters())
    print(f"[2/4] training {args.model} ({n_params / 1e6:.2f} M parameters) for {cfg.max_iter} iterations of "
          f"{cfg.images_per_batch} images on {device}, {torch.get_num_threads()} thread(s)", flush=True)
    meta = {"model": args.model, "model_overrides": model_overrides, "num_classes": train_set.num_classes,
            "class_names": train_set.class_names, "config": cfg.to_dict()}
    t0, cpu0 = time.perf_counter(), time.process_time()
    train(model, train_set, cfg, output, device=device, meta=meta)
    train_seconds, train_cpu_seconds = time.perf_counter() - t0, time.process_time() - cpu0

    print(f"[3/4] evaluating on {len(val_set)} validation images (pycocotools)", flush=True)
    metrics = _evaluate_and_report(model, val_set, device, None, min_size=cfg.min_size, max_size=cfg.max_size)
    metrics = {k: metrics[k] for k in ("bbox", "segm") if k in metrics} | {
        "inference_time_per_image": metrics["inference_time_per_image"], "num_val_images": len(val_set),
        "train_seconds": round(train_seconds, 1), "train_cpu_seconds": round(train_cpu_seconds, 1),
        "threads": torch.get_num_threads(), "total_seconds": round(time.perf_counter() - t_start, 1),
        "model": args.model, "iterations": cfg.max_iter, "images_per_batch": cfg.images_per_batch}
    _write_json(os.path.join(output, "metrics.json"), metrics)

    print("[4/4] pictures", flush=True)
    shown = list(range(min(8, len(val_set))))
    predictions, _ = run_inference(model, val_set, device,
                                   min_size=cfg.min_size, max_size=cfg.max_size, max_images=len(shown))
    images = [val_set[i][0].permute(1, 2, 0).numpy() for i in shown]
    preds = [predictions[val_set.image_infos[i]["id"]] for i in shown]
    save_detection_grid(os.path.join(output, "predictions.png"), images, preds, train_set.class_names)
    plot_training_curves(read_metrics(os.path.join(output, METRICS_FILE)), os.path.join(output, "training_curves.png"),
                         title=f"{args.model} on synthetic shapes")
    print(f"done in {time.perf_counter() - t_start:.0f} s: box AP50 {100 * metrics['bbox']['AP50']:.1f}, "
          f"box AP {100 * metrics['bbox']['AP']:.1f}"
          + (f", mask AP {100 * metrics['segm']['AP']:.1f}" if "segm" in metrics else ""))
    print(f"wrote {output}/metrics.json, predictions.png, training_curves.png, model_final.pth")
    return 0


if __name__ == "__main__":
    sys.exit(main())
