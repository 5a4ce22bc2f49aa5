"""``detcore demo``: the synthetic dataset, a small Mask R-CNN trained from
scratch on the CPU, its COCO AP, pictures and training curves."""

from __future__ import annotations

import os
import time

from .cli_support import build_detector, check_device, report_metrics, settings_from, split_overrides, write_json

# A small Mask R-CNN (ResNet with one block per stage and 16 base channels, FPN
# of 64 channels) trained from scratch on 128-160 px synthetic images, sized
# for two CPU cores and about ten minutes.
DEMO_MODEL = "mask_rcnn_r50_fpn"
DEMO_MODEL_OVERRIDES: dict = dict(
    base_width=16, blocks=(1, 1, 1, 1), fpn_channels=64, representation_size=256, mask_width=64,
    min_size=128, max_size=160, trainable_stages=5, box_batch_size_per_image=64,
    rpn_pre_nms_top_n={"training": 600, "testing": 300}, rpn_post_nms_top_n={"training": 300, "testing": 100},
)
DEMO_SETTINGS = dict(images_per_batch=4, max_iter=1200, base_lr=0.02, warmup_iters=100, steps=(0.75, 0.92),
                     log_period=20, checkpoint_period=300, flip_prob=0.5, jitter=0.1, clip_grad_norm=10.0)
DEMO_DATA = dict(num_train=600, num_val=60, image_size=(128, 160), object_size=(24, 64))


def run(args) -> int:
    import torch

    from ..data import CocoDetection, SyntheticSpec, make_synthetic_dataset
    from .config import TrainConfig
    from .evaluation import evaluate, run_inference
    from .progress import read_metrics
    from .trainer import METRICS_FILE, TrainingInterrupted, train
    from .visualize import plot_training_curves, save_detection_grid

    output = args.output or "detcore_demo"
    device = check_device(args.device)
    model_overrides, settings = split_overrides(args.overrides)
    if args.model == DEMO_MODEL:
        model_overrides = {**DEMO_MODEL_OVERRIDES, **model_overrides}
    cfg = settings_from(TrainConfig(**DEMO_SETTINGS), settings)
    spec = SyntheticSpec(**{**DEMO_DATA, "num_train": args.num_train, "num_val": args.num_val})
    t_start = time.perf_counter()
    print(f"[1/4] synthetic dataset: {spec.num_train} train + {spec.num_val} val images of {list(spec.classes)} "
          f"-> {os.path.join(output, 'synthetic')}", flush=True)
    paths = make_synthetic_dataset(os.path.join(output, "synthetic"), spec)
    train_set = CocoDetection(*paths["train"], remove_empty=True, skip_crowd=True)
    val_set = CocoDetection(*paths["val"])
    model = build_detector(args.model, train_set.num_classes, model_overrides)
    n_params = sum(p.numel() for p in model.parameters())
    print(f"[2/4] training {args.model} ({n_params / 1e6:.2f} M parameters) for {cfg.max_iter} iterations of "
          f"{cfg.images_per_batch} images on {device}, {torch.get_num_threads()} thread(s)", flush=True)
    meta = {"model": args.model, "model_overrides": model_overrides, "num_classes": train_set.num_classes,
            "class_names": train_set.class_names,
            "category_ids": [train_set.label_to_cat_id[i] for i in range(1, train_set.num_classes)],
            "keypoint_names": train_set.keypoint_names, "config": cfg.to_dict(),
            # what `detcore train -o OUTPUT --resume` needs to continue the demo's run
            "data": "coco:{}:{}".format(*paths["train"]), "val_data": "coco:{}:{}".format(*paths["val"])}
    t0, cpu0 = time.perf_counter(), time.process_time()
    try:
        train(model, train_set, cfg, output, device=device, meta=meta)
    except TrainingInterrupted as e:
        print(f"interrupted at iteration {e.iteration}; checkpoint {e.checkpoint}; the demo starts again from "
              f"scratch when rerun (or continue with: detcore train -o {output} --resume)", flush=True)
        return 130
    train_seconds, train_cpu_seconds = time.perf_counter() - t0, time.process_time() - cpu0

    print(f"[3/4] evaluating on {len(val_set)} validation images (pycocotools)", flush=True)
    metrics = evaluate(model, val_set, device, min_size=cfg.min_size, max_size=cfg.max_size)
    report_metrics(metrics, device, None)
    metrics = {k: metrics[k] for k in ("bbox", "segm") if k in metrics} | {
        "inference_time_per_image": metrics["inference_time_per_image"], "num_val_images": len(val_set),
        "train_seconds": round(train_seconds, 1), "train_cpu_seconds": round(train_cpu_seconds, 1),
        "threads": torch.get_num_threads(), "total_seconds": round(time.perf_counter() - t_start, 1),
        "model": args.model, "iterations": cfg.max_iter, "images_per_batch": cfg.images_per_batch}
    write_json(os.path.join(output, "metrics.json"), metrics)

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
