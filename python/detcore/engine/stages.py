"""Multi-stage training of R-CNN and SPP-net (models with ``multi_stage = True``).

Stages, in order, each written under the run's output folder and skipped on a
rerun when its output exists (said so in the log):

1. ``finetune/model_final.pth``: the CNN fine-tuned with a softmax over
   N+1 classes (the usual training loop, :func:`detcore.engine.train`;
   an interrupted fine-tuning resumes from its latest checkpoint);
2. ``features/``: pool5 features of every training image's proposals and
   ground-truth boxes, one ``.npz`` per image (R-CNN's disk cache; the bytes
   written are reported);
3. ``svm.pth``: per-class linear SVMs with hard-negative mining;
4. ``bbox_reg.pth``: per-class ridge box regressors.

The assembled detector goes to ``model_final.pth`` (a normal detcore
checkpoint: ``detcore eval`` / ``predict`` load it) and the stage times to
``stages.json``.
"""

from __future__ import annotations

import json
import os
import time
from typing import Callable, Optional

import numpy as np
import torch

from ..data import build_transforms
from ..models.classic.feature_cache import FeatureCache, RegionRecord
from ..models.classic.stages import train_box_regressors, train_svms
from ..proposals import ProposalError
from .checkpoint import latest_checkpoint, load_model_state, read_checkpoint, save_checkpoint
from .config import TrainConfig
from .trainer import FINAL_CHECKPOINT, METRICS_FILE, train

STAGES = ("finetune", "features", "svm", "bbox_reg")


class StageError(ProposalError):
    """A stage cannot run on this dataset (images without proposals); a
    ProposalError, so the command line reports it in one line."""


def _proposals_of(target: dict, index: int) -> torch.Tensor:
    props = target.get("proposals")
    if props is None:
        raise StageError(f"image {target.get('image_id', index)}: the dataset carries no proposals; this detector "
                         f"scores external proposals (--proposals selective_search or --proposals FILE)")
    props = torch.as_tensor(props, dtype=torch.float32)
    if props.dim() != 2 or props.shape[-1] != 4:
        raise StageError(f"image {target.get('image_id', index)}: proposals of shape {tuple(props.shape)}, "
                         f"expected (P, 4)")
    return props


@torch.no_grad()
def extract_features(model, dataset, cache: FeatureCache, *, device="cpu", transforms=None,
                     log: Callable[[str], None] = print) -> dict:
    """Writes the missing per-image records; returns {"written", "reused", "bytes_written"}."""
    model.eval()
    written = reused = nbytes = 0
    for index in range(len(dataset)):
        if cache.has(index):
            reused += 1
            continue
        image, target = dataset[index]
        if transforms is not None:
            image, target = transforms(image, target, None)
        props = _proposals_of(target, index)
        gt = target["boxes"].to(torch.float32).reshape(-1, 4)
        boxes = torch.cat([props, gt])
        pool5 = model.region_features([image.to(device)], [boxes.to(device)], ("pool5",))[0]["pool5"]
        record = RegionRecord(
            boxes=boxes.numpy().astype(np.float32),
            is_gt=np.concatenate([np.zeros(props.shape[0], bool), np.ones(gt.shape[0], bool)]),
            gt_boxes=gt.numpy().astype(np.float32),
            gt_labels=target["labels"].numpy().astype(np.int64),
            pool5=pool5.float().cpu().numpy(),
        )
        nbytes += cache.write(index, record)
        written += 1
        if written % 50 == 0:
            log(f"  features: {written + reused}/{len(dataset)} images, {nbytes / 2**20:.1f} MiB written")
    return {"written": written, "reused": reused, "bytes_written": nbytes}


def _features_of(model, layer: str, device):
    def fn(pool5: np.ndarray) -> np.ndarray:
        if layer == "pool5":
            return pool5
        with torch.no_grad():
            return model.fc_features(torch.from_numpy(pool5).to(device), (layer,))[layer].float().cpu().numpy()

    return fn


def _set_svms(model, weight, bias, scale) -> None:
    model.svm_weight.copy_(torch.as_tensor(weight))
    model.svm_bias.copy_(torch.as_tensor(bias))
    model.feature_scale[0] = float(scale)
    model.stages_done[0] = True


def _set_regressors(model, weight, bias, scale) -> None:
    model.reg_weight.copy_(torch.as_tensor(weight))
    model.reg_bias.copy_(torch.as_tensor(bias))
    model.feature_scale[1] = float(scale)
    model.stages_done[1] = True


def _load_stage(path: str, like: torch.Tensor, feature: str) -> dict:
    """A stage's saved weights, checked against the model they will go into."""
    try:
        state = torch.load(path, map_location="cpu")
        shape, saved_feature = tuple(state["weight"].shape), state["feature"]
    except Exception as e:  # unreadable or not written by this module
        raise StageError(f"{path}: unreadable ({e}); delete it to rerun the stage") from None
    if shape != tuple(like.shape) or saved_feature != feature:
        raise StageError(f"{path} holds weights {shape} on {saved_feature}, this model needs {tuple(like.shape)} on "
                         f"{feature}: written for other settings; delete it to rerun the stage")
    return state


def train_stages(model, dataset, cfg: TrainConfig, output_dir: str, *, device="cpu", meta: Optional[dict] = None,
                 log: Callable[[str], None] = print, show_progress: bool = True) -> dict:
    """Runs the four stages (see the module doc); returns a summary with the
    final checkpoint, each stage's seconds and the feature cache's bytes."""
    device = torch.device(device)
    os.makedirs(output_dir, exist_ok=True)
    meta = dict(meta or {})
    model.to(device)
    seconds, n = {}, len(STAGES)

    summary_path = os.path.join(output_dir, "stages.json")
    previous = {}
    if os.path.isfile(summary_path):
        try:
            with open(summary_path) as f:
                previous = json.load(f).get("stage_seconds", {})
        except (OSError, ValueError, AttributeError):
            previous = {}

    def done(i, name, t0, skipped):
        # a skipped stage keeps the time it took when it ran
        seconds[name] = previous.get(name, 0.0) if skipped else round(time.perf_counter() - t0, 2)
        if not skipped:
            log(f"stage {i}/{n} {name}: done in {seconds[name]:.1f} s")

    # 1. fine-tuning
    t0 = time.perf_counter()
    ft_dir = os.path.join(output_dir, "finetune")
    ft_final = os.path.join(ft_dir, FINAL_CHECKPOINT)
    skipped = os.path.isfile(ft_final)
    if skipped:
        load_model_state(model, read_checkpoint(ft_final), ft_final)
        log(f"stage 1/{n} finetune: {ft_final} exists, skipped")
    else:
        resume = "auto" if latest_checkpoint(ft_dir) else None
        log(f"stage 1/{n} finetune: {cfg.max_iter} iterations" + (" (resuming)" if resume else ""))
        train(model, dataset, cfg, ft_dir, device=device, resume=resume, meta=meta, show_progress=show_progress)
    done(1, "finetune", t0, skipped)

    # 2. features on disk
    t0 = time.perf_counter()
    cache = FeatureCache(os.path.join(output_dir, "features"))
    manifest = cache.manifest()
    if manifest and manifest.get("pool5_features") != model.feature_dims["pool5"]:
        raise StageError(f"{cache.directory} holds pool5 features of length {manifest.get('pool5_features')}, this "
                         f"model makes {model.feature_dims['pool5']}: another model's cache; delete it or use "
                         f"another output folder")
    skipped = bool(manifest and manifest.get("num_images") == len(dataset))
    if skipped:
        log(f"stage 2/{n} features: {cache.directory} holds all {len(dataset)} images "
            f"({manifest['bytes'] / 2**20:.1f} MiB), skipped")
        feature_bytes = manifest["bytes"]
    else:
        eval_tf = build_transforms(False, min_size=cfg.min_size, max_size=cfg.max_size)
        stats = extract_features(model, dataset, cache, device=device, transforms=eval_tf, log=log)
        feature_bytes = cache.total_bytes(len(dataset))
        cache.write_manifest({"num_images": len(dataset), "bytes": feature_bytes, "layer": "pool5",
                              "pool5_features": model.feature_dims["pool5"]})
        log(f"  features: {stats['written']} images extracted ({stats['bytes_written'] / 2**20:.1f} MiB "
            f"written), {stats['reused']} reused from the cache; cache {feature_bytes / 2**20:.1f} MiB")
    done(2, "features", t0, skipped)

    def records():
        for index in range(len(dataset)):
            try:
                record = cache.read(index)
            except ValueError as e:
                raise StageError(str(e)) from None
            if record.pool5.ndim != 2 or record.pool5.shape[1] != model.feature_dims["pool5"]:
                raise StageError(f"{cache.path(index)}: pool5 of shape {record.pool5.shape}, this model makes "
                                 f"{model.feature_dims['pool5']} per region; delete {cache.directory} to recompute")
            yield record

    # 3. SVMs
    t0 = time.perf_counter()
    svm_path = os.path.join(output_dir, "svm.pth")
    skipped = os.path.isfile(svm_path)
    if skipped:
        state = _load_stage(svm_path, model.svm_weight, model.svm_feature)
        _set_svms(model, state["weight"], state["bias"], state["scale"])
        log(f"stage 3/{n} svm: {svm_path} exists, skipped")
    else:
        model.eval()
        w, b, scale = train_svms(
            records, model.num_classes, _features_of(model, model.svm_feature, device), C=model.svm_C,
            pos_weight=model.svm_pos_weight, neg_iou=model.svm_neg_iou, epochs=model.svm_epochs,
            retrain_every=model.svm_retrain_every, log=log)
        torch.save({"weight": torch.from_numpy(w), "bias": torch.from_numpy(b), "scale": scale,
                    "feature": model.svm_feature}, svm_path)
        _set_svms(model, w, b, scale)
    done(3, "svm", t0, skipped)

    # 4. box regressors
    t0 = time.perf_counter()
    reg_path = os.path.join(output_dir, "bbox_reg.pth")
    skipped = os.path.isfile(reg_path)
    if skipped:
        state = _load_stage(reg_path, model.reg_weight, "pool5")
        _set_regressors(model, state["weight"], state["bias"], state["scale"])
        log(f"stage 4/{n} bbox_reg: {reg_path} exists, skipped")
    else:
        w, b, scale = train_box_regressors(records, model.num_classes, iou_thresh=model.reg_iou,
                                           lam=model.reg_lambda, weights=model.box_coder.weights, log=log)
        torch.save({"weight": torch.from_numpy(w), "bias": torch.from_numpy(b), "scale": scale,
                    "feature": "pool5"}, reg_path)
        _set_regressors(model, w, b, scale)
    done(4, "bbox_reg", t0, skipped)

    final = os.path.join(output_dir, FINAL_CHECKPOINT)
    save_checkpoint(final, model=model, iteration=cfg.max_iter, meta={**meta, "stage_seconds": seconds})
    summary = {"checkpoint": final, "stage_seconds": seconds, "feature_cache_bytes": feature_bytes}
    with open(summary_path, "w") as f:
        json.dump(summary, f, indent=2)
    model.eval()
    # the fine-tuning stage's losses, for the training curves
    return {**summary, "metrics_file": os.path.join(ft_dir, METRICS_FILE)}
