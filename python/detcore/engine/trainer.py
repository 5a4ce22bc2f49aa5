"""The training loop.

SGD with momentum and weight decay, linear warmup then a multi-step or cosine
schedule, optional gradient clipping, AMP on CUDA, frozen parameters, DDP under
torchrun. Metrics go to ``<output>/train_metrics.jsonl``; checkpoints to
``<output>/model_XXXXXXX.pth`` every ``checkpoint_period`` iterations and
``<output>/model_final.pth`` at the end.

Determinism: the batches and their augmentations are a function of
``(seed, iteration)`` (see :mod:`detcore.data.samplers`) and the global RNGs
are re-seeded from ``(seed, iteration, rank)`` before every step (the RPN and
RoI samplers draw from them), so a resumed run reproduces the losses of an
uninterrupted one.

Interrupts: SIGINT (Ctrl-C) and SIGTERM let the current iteration finish,
write ``model_XXXXXXX.pth`` of that iteration and raise
:class:`TrainingInterrupted`; a second Ctrl-C stops at once.
"""

from __future__ import annotations

import collections
import json
import os
import signal
import statistics
import threading
import time
from typing import Callable, Optional

import numpy as np
import torch

from ..data import SeededDataset, TrainingBatchSampler, build_transforms, collate
from . import distributed as dist_utils
from .build import proposal_inputs
from .checkpoint import (CheckpointError, check_meta, checkpoint_name, latest_checkpoint, load_model_state,
                         periodic_checkpoints, read_checkpoint, save_checkpoint, set_rng_state)
from .config import TrainConfig
from .progress import MetricsWriter, Progress
from .schedule import LRFactor, build_optimizer, build_scheduler

METRICS_FILE = "train_metrics.jsonl"
FINAL_CHECKPOINT = "model_final.pth"


class TrainingInterrupted(Exception):
    """Training stopped by SIGINT / SIGTERM after a whole iteration, with its checkpoint written."""

    def __init__(self, iteration: int, checkpoint: str, signal_name: str):
        super().__init__(f"interrupted ({signal_name}) at iteration {iteration}; checkpoint {checkpoint}")
        self.iteration, self.checkpoint, self.signal_name = iteration, checkpoint, signal_name


class TrainingSetupError(ValueError):
    """Settings that do not fit the model (``freeze`` matches nothing, nothing left to train)."""


class _StopRequest:
    """SIGINT / SIGTERM handlers that only set a flag (the loop stops after the
    iteration); a second SIGINT falls through to the default KeyboardInterrupt."""

    def __init__(self, device):
        self.signal_name = None
        self.device = device
        self._previous = {}

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def _handle(self, signum, frame):
        if self.signal_name is not None and signum == signal.SIGINT:
            raise KeyboardInterrupt
        self.signal_name = signal.Signals(signum).name

    def requested(self) -> bool:
        """Whether any process was asked to stop (all processes then stop together)."""
        flag = self.signal_name is not None
        if dist_utils.is_distributed():
            flag = dist_utils.any_process(flag, self.device)
            if flag and self.signal_name is None:
                self.signal_name = "a signal to another process"
        return flag

    def __exit__(self, *exc):
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
        return False


def seed_iteration(seed: int, iteration: int, rank: int) -> None:
    value = int(np.random.default_rng([seed, iteration, rank, 11]).integers(2**31))
    torch.manual_seed(value)
    np.random.seed(value)
    import random

    random.seed(value)


def targets_to(targets, device):
    return [{k: (v.to(device) if torch.is_tensor(v) else v) for k, v in t.items()} for t in targets]


def freeze_parameters(model: torch.nn.Module, prefixes) -> int:
    """Turns off gradients for parameters whose name starts with a prefix; returns how many."""
    count = 0
    for name, param in model.named_parameters():
        if any(name.startswith(p) for p in prefixes):
            param.requires_grad_(False)
            count += 1
    if prefixes and not count:
        raise ValueError(f"freeze: no parameter name starts with any of {list(prefixes)}")
    return count


def freeze_all_but(model: torch.nn.Module, prefixes) -> int:
    """Turns off gradients for every parameter whose name starts with none of
    ``prefixes`` (parameters already frozen stay frozen); returns how many."""
    params = list(model.named_parameters())
    if not any(name.startswith(p) for name, _ in params for p in prefixes):
        raise ValueError(f"train_only: no parameter name starts with any of {list(prefixes)}")
    count = 0
    for name, param in params:
        if not any(name.startswith(p) for p in prefixes):
            param.requires_grad_(False)
            count += 1
    return count


def resolve_resume(resume, output_dir: str) -> Optional[str]:
    """``resume`` is None/False (start fresh), a checkpoint path, or True / "auto"
    (the latest checkpoint in ``output_dir``)."""
    if not resume:
        return None
    if resume is True or resume == "auto":
        path = latest_checkpoint(output_dir)
        if path is None:
            final = os.path.join(output_dir, FINAL_CHECKPOINT)
            if os.path.exists(final):
                return final
            raise FileNotFoundError(f"--resume: no checkpoint (model_*.pth) in {output_dir}")
        return path
    return str(resume)


def train(model: torch.nn.Module, dataset, cfg: TrainConfig, output_dir: str, *, device="cpu",
          resume=None, meta: Optional[dict] = None,
          evaluate: Optional[Callable[[torch.nn.Module, int], dict]] = None, show_progress: bool = True) -> dict:
    """Trains ``model`` on ``dataset`` (untransformed; the training transforms
    come from ``cfg``) and returns a summary. ``evaluate(model, iteration)`` is
    called every ``eval_period`` iterations and at the end, on every process;
    its result is logged by the main process."""
    cfg.validate()
    device = torch.device(device)
    rank, world = dist_utils.get_rank(), dist_utils.get_world_size()
    main = rank == 0
    os.makedirs(output_dir, exist_ok=True)
    meta = dict(meta or {})
    meta.setdefault("class_names", list(getattr(dataset, "class_names", [])))
    meta.setdefault("num_classes", getattr(dataset, "num_classes", None))

    model.to(device)
    try:
        if cfg.freeze:
            freeze_parameters(model, cfg.freeze)
        if cfg.train_only:
            freeze_all_but(model, cfg.train_only)
        optimizer = build_optimizer(model, cfg)
    except ValueError as e:  # settings that do not fit the model: the user's to change
        raise TrainingSetupError(str(e)) from None
    scheduler = build_scheduler(optimizer, cfg)
    use_amp = cfg.amp and device.type == "cuda"
    scaler = torch.amp.GradScaler(device.type, enabled=use_amp)

    start_iter = 0
    resume_path = resolve_resume(resume, output_dir)
    if resume_path:
        payload = read_checkpoint(resume_path)
        check_meta(payload, resume_path, model=meta.get("model"), num_classes=meta.get("num_classes"))
        load_model_state(model, payload, resume_path)
        try:
            if payload.get("optimizer") is not None:
                optimizer.load_state_dict(payload["optimizer"])
            if payload.get("scheduler") is not None:
                scheduler.load_state_dict(payload["scheduler"])
            if payload.get("scaler") is not None and use_amp:
                scaler.load_state_dict(payload["scaler"])
        except (ValueError, KeyError, RuntimeError) as e:
            raise CheckpointError(f"{resume_path}: the optimizer/scheduler state does not match this run "
                                  f"(other frozen parameters or settings?): {e}") from e
        # The schedule is a function of the config: a longer max_iter on resume takes effect.
        scheduler.lr_lambdas = [LRFactor(cfg) for _ in scheduler.lr_lambdas]
        set_rng_state(payload["rng"])
        start_iter = int(payload["iteration"])
        if start_iter >= cfg.max_iter:
            raise CheckpointError(f"--resume: {resume_path} is at iteration {start_iter}, max_iter is {cfg.max_iter}; "
                                  f"raise max_iter to train further")
        if main and show_progress:
            print(f"resuming from {resume_path} at iteration {start_iter} of {cfg.max_iter}", flush=True)

    if main:
        write_run_config(output_dir, cfg, meta, world)

    net = model
    if world > 1:
        net = torch.nn.parallel.DistributedDataParallel(
            model, device_ids=[device.index] if device.type == "cuda" else None,
            find_unused_parameters=cfg.find_unused_parameters)

    transforms = build_transforms(True, min_size=cfg.min_size, max_size=cfg.max_size, flip_prob=cfg.flip_prob,
                                  jitter=cfg.jitter, keypoint_flip_map=_flip_map(dataset))
    sampler = TrainingBatchSampler(dataset.aspect_ratios(), cfg.images_per_batch, seed=cfg.seed, rank=rank,
                                   world_size=world, start_iter=start_iter,
                                   group_by_aspect_ratio=cfg.group_by_aspect_ratio)
    loader = torch.utils.data.DataLoader(SeededDataset(dataset, transforms), batch_sampler=sampler,
                                         collate_fn=collate, num_workers=cfg.num_workers)
    writer = MetricsWriter(os.path.join(output_dir, METRICS_FILE), start_iter,
                           os.path.join(output_dir, "tensorboard") if cfg.tensorboard else None) if main else None
    progress = Progress(cfg.max_iter, start_iter, cfg.log_period, enabled=main and show_progress)
    params = [p for group in optimizer.param_groups for p in group["params"]]

    net.train()
    data_iter = iter(loader)
    losses_logged, eval_results = {}, {}
    recent = collections.deque(maxlen=20)  # the progress line shows the median of recent losses
    iteration = start_iter
    stop = _StopRequest(device)
    try:
        stop.__enter__()
        while iteration < cfg.max_iter:
            t0 = time.perf_counter()
            images, targets = next(data_iter)
            images = [img.to(device, non_blocking=True) for img in images]
            targets = targets_to(targets, device)
            data_time = time.perf_counter() - t0
            seed_iteration(cfg.seed, iteration, rank)

            with torch.autocast(device.type, enabled=use_amp):
                loss_dict = net(images, targets, **proposal_inputs(model, targets))
            loss = sum(loss_dict.values())
            if not torch.isfinite(loss):
                raise FloatingPointError(f"the loss became {loss.item()} at iteration {iteration}: "
                                         f"{ {k: v.item() for k, v in loss_dict.items()} }; lower base_lr or "
                                         f"set clip_grad_norm")
            optimizer.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            grad_norm = None
            if cfg.clip_grad_norm > 0:
                scaler.unscale_(optimizer)
                grad_norm = float(torch.nn.utils.clip_grad_norm_(params, cfg.clip_grad_norm))
            lr = optimizer.param_groups[0]["lr"]
            scaler.step(optimizer)
            scaler.update()
            scheduler.step()
            iteration += 1

            if iteration % cfg.log_period == 0 or iteration == cfg.max_iter or iteration == start_iter + 1:
                losses_logged = dist_utils.reduce_mean(dict(loss_dict, loss=loss))
                if main:
                    record = {"iteration": iteration, "lr": lr, **losses_logged, "data_time": data_time,
                              "time": time.perf_counter() - t0, "eta_seconds": progress.eta_seconds(iteration)}
                    if grad_norm is not None:
                        record["grad_norm"] = grad_norm
                    writer.write(record)
            if main:
                recent.append(float(loss.detach()))
                progress.update(iteration, statistics.median(recent), lr)

            stopping = stop.requested()
            periodic = cfg.checkpoint_period and iteration % cfg.checkpoint_period == 0
            if (periodic or stopping) and iteration < cfg.max_iter:
                path = os.path.join(output_dir, checkpoint_name(iteration))
                _save(path, model, optimizer, scheduler, scaler, iteration, meta, main)
                if main and cfg.keep_checkpoints:
                    for old_path in periodic_checkpoints(output_dir)[:-cfg.keep_checkpoints]:
                        os.remove(old_path)
                if stopping:
                    raise TrainingInterrupted(iteration, path, stop.signal_name)
            if evaluate is not None and cfg.eval_period and iteration % cfg.eval_period == 0 \
                    and iteration < cfg.max_iter:
                eval_results = _run_eval(evaluate, model, net, iteration, writer)

        _save(os.path.join(output_dir, FINAL_CHECKPOINT), model, optimizer, scheduler, scaler, iteration, meta, main)
        if evaluate is not None:
            eval_results = _run_eval(evaluate, model, net, iteration, writer)
    finally:
        stop.__exit__(None, None, None)
        if writer is not None:
            writer.close()
    return {"iteration": iteration, "losses": losses_logged, "eval": eval_results,
            "checkpoint": os.path.join(output_dir, FINAL_CHECKPOINT)}


def write_run_config(output_dir: str, cfg: TrainConfig, meta: dict, world_size: int) -> str:
    """``config.json``: the settings (``config``), the model and its settings
    (``model``, ``model_overrides``), the datasets and classes of the run;
    ``detcore train --config`` and ``--resume`` read it back."""
    path = os.path.join(output_dir, "config.json")
    payload = {"config": cfg.to_dict(), **{k: v for k, v in meta.items() if k != "class_names"},
               "class_names": meta.get("class_names"), "world_size": world_size}
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        json.dump(payload, f, indent=2, default=str)
    os.replace(tmp, path)
    return path


def _flip_map(dataset):
    return dataset.keypoint_flip_map() if getattr(dataset, "keypoint_names", None) else None


def _save(path, model, optimizer, scheduler, scaler, iteration, meta, main):
    if main:
        save_checkpoint(path, model=model, optimizer=optimizer, scheduler=scheduler, scaler=scaler,
                        iteration=iteration, meta=meta)
    dist_utils.barrier()


def _run_eval(evaluate, model, net, iteration, writer):
    model.eval()
    try:
        results = evaluate(model, iteration)
    finally:
        net.train()
    if writer is not None and results:
        flat = {f"{kind}/{k}": v for kind, table in results.items() if isinstance(table, dict)
                for k, v in table.items() if isinstance(v, (int, float))}
        writer.write({"iteration": iteration, **flat})
    return results
