"""SGD and the learning-rate schedule: linear warmup, then multi-step or cosine."""

from __future__ import annotations

import math

import torch

from .config import TrainConfig

_NORM_TYPES = (torch.nn.modules.batchnorm._NormBase, torch.nn.GroupNorm, torch.nn.LayerNorm)


def build_optimizer(model: torch.nn.Module, cfg: TrainConfig) -> torch.optim.SGD:
    """SGD with momentum; normalisation layers get ``weight_decay_norm``."""
    decay, no_decay, seen = [], [], set()
    for module in model.modules():
        for param in module.parameters(recurse=False):
            if not param.requires_grad or id(param) in seen:
                continue
            seen.add(id(param))
            (no_decay if isinstance(module, _NORM_TYPES) else decay).append(param)
    groups = [{"params": decay, "weight_decay": cfg.weight_decay}]
    if no_decay:
        groups.append({"params": no_decay, "weight_decay": cfg.weight_decay_norm})
    if not decay and not no_decay:
        raise ValueError("the model has no trainable parameter (everything is frozen)")
    return torch.optim.SGD(groups, lr=cfg.base_lr, momentum=cfg.momentum, nesterov=cfg.nesterov)


class LRFactor:
    """The lr multiplier at an iteration (a picklable object, so the scheduler's
    state_dict round-trips)."""

    def __init__(self, cfg: TrainConfig):
        self.max_iter, self.schedule = cfg.max_iter, cfg.schedule
        self.milestones, self.gamma = cfg.milestones(), cfg.gamma
        self.min_lr_factor = cfg.min_lr_factor
        self.warmup_iters, self.warmup_factor = cfg.warmup_iters, cfg.warmup_factor

    def __call__(self, iteration: int) -> float:
        if self.schedule == "cosine":
            progress = min(iteration, self.max_iter) / self.max_iter
            factor = self.min_lr_factor + (1 - self.min_lr_factor) * 0.5 * (1 + math.cos(math.pi * progress))
        else:
            factor = self.gamma ** sum(iteration >= m for m in self.milestones)
        if iteration < self.warmup_iters:
            alpha = iteration / self.warmup_iters
            factor *= self.warmup_factor * (1 - alpha) + alpha
        return factor


def build_scheduler(optimizer, cfg: TrainConfig) -> torch.optim.lr_scheduler.LambdaLR:
    return torch.optim.lr_scheduler.LambdaLR(optimizer, LRFactor(cfg))
