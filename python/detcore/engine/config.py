"""Training hyperparameters and their command-line overrides.

Every field of :class:`TrainConfig` can be set on the command line as
``key=value`` (``max_iter=2000 base_lr=0.01 steps=[0.6,0.9]``); ``model.key=value``
goes to the model builder (``detcore.models.build(name, num_classes, key=value)``).
Values are read as Python literals when they parse as one, else as strings.
"""

from __future__ import annotations

import ast
import dataclasses
from typing import Dict, List, Optional, Tuple


@dataclasses.dataclass
class TrainConfig:
    # data
    images_per_batch: int = 2  # N images per iteration, summed over processes (Fast R-CNN hierarchical sampling)
    min_size: Optional[int] = None  # data-side resize of the shorter side (None: the model's own transform)
    max_size: int = 1333
    flip_prob: float = 0.5
    jitter: float = 0.0  # photometric jitter strength (0 = off)
    group_by_aspect_ratio: bool = True
    num_workers: int = 0
    # optimisation
    max_iter: int = 1000
    base_lr: float = 0.02
    momentum: float = 0.9
    weight_decay: float = 1e-4
    weight_decay_norm: float = 0.0  # for normalisation layers' weights and biases
    nesterov: bool = False
    schedule: str = "multistep"  # "multistep" or "cosine"
    steps: Tuple[float, ...] = (0.67, 0.89)  # multistep milestones: iterations, or fractions of max_iter when < 1
    gamma: float = 0.1
    min_lr_factor: float = 0.0  # cosine: the final lr as a fraction of base_lr
    warmup_iters: int = 100
    warmup_factor: float = 0.001
    clip_grad_norm: float = 0.0  # 0 = no clipping
    amp: bool = False  # mixed precision (CUDA only)
    freeze: Tuple[str, ...] = ()  # parameter-name prefixes to freeze, on top of the model's frozen stages
    train_only: Tuple[str, ...] = ()  # parameter-name prefixes to train; every other parameter frozen (): all
    # bookkeeping
    seed: int = 0
    log_period: int = 20
    checkpoint_period: int = 500  # 0 = only at the end (and when interrupted)
    keep_checkpoints: int = 3  # periodic checkpoints kept besides model_final.pth (0 = all)
    eval_period: int = 0  # 0 = only at the end (when a validation set is given)
    tensorboard: bool = True  # when TensorBoard is installed
    find_unused_parameters: bool = False  # DDP

    def milestones(self) -> List[int]:
        return sorted(int(round(s * self.max_iter)) if s < 1 else int(s) for s in self.steps)

    def validate(self) -> None:
        problems = []
        if self.images_per_batch <= 0:
            problems.append("images_per_batch must be > 0")
        if self.max_iter <= 0:
            problems.append("max_iter must be > 0")
        if self.base_lr <= 0:
            problems.append("base_lr must be > 0")
        if self.schedule not in ("multistep", "cosine"):
            problems.append(f"schedule must be 'multistep' or 'cosine', got {self.schedule!r}")
        if not 0 < self.warmup_factor <= 1:
            problems.append("warmup_factor must be in (0, 1]")
        if (self.warmup_iters < 0 or self.log_period <= 0 or self.checkpoint_period < 0 or self.eval_period < 0
                or self.keep_checkpoints < 0):
            problems.append("warmup_iters, checkpoint_period, keep_checkpoints and eval_period must be >= 0, "
                            "log_period > 0")
        if problems:
            raise ValueError("invalid training config: " + "; ".join(problems))

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


# One line per setting, for `detcore train --list-settings` and the docs.
SETTING_HELP: Dict[str, str] = {
    "images_per_batch": "images per iteration, summed over all processes",
    "min_size": "data-side resize of the shorter side (None: the model's own resize only)",
    "max_size": "data-side cap on the longer side (with min_size)",
    "flip_prob": "probability of a horizontal flip of a training image",
    "jitter": "photometric jitter strength: brightness, contrast, saturation (0 = off)",
    "group_by_aspect_ratio": "batch portrait and landscape images separately",
    "num_workers": "data-loading worker processes (0 = in the training process)",
    "max_iter": "number of training iterations",
    "base_lr": "learning rate after warmup",
    "momentum": "SGD momentum",
    "weight_decay": "L2 weight decay",
    "weight_decay_norm": "weight decay of normalisation layers' weights and biases",
    "nesterov": "Nesterov momentum",
    "schedule": "learning-rate schedule after warmup: multistep or cosine",
    "steps": "multistep milestones: iterations, or fractions of max_iter when < 1",
    "gamma": "multistep: the lr factor at each milestone",
    "min_lr_factor": "cosine: the final lr as a fraction of base_lr",
    "warmup_iters": "iterations of linear warmup",
    "warmup_factor": "the lr factor at the first warmup iteration",
    "clip_grad_norm": "clip the gradients' total norm to this (0 = no clipping)",
    "amp": "mixed precision (CUDA only)",
    "freeze": "parameter-name prefixes to freeze, on top of the model's frozen stages",
    "train_only": "parameter-name prefixes to train, every other parameter frozen, e.g. "
                  "roi_heads.box_predictor.bbox_pred for post-hoc box regressors (empty: no such limit)",
    "seed": "seeds the weight initialisation, the batches, augmentations and samplers",
    "log_period": "log losses and lr every N iterations",
    "checkpoint_period": "write model_XXXXXXX.pth every N iterations (0 = only at the end)",
    "keep_checkpoints": "periodic checkpoints kept besides model_final.pth (0 = keep all)",
    "eval_period": "evaluate on --val-data every N iterations (0 = only at the end)",
    "tensorboard": "also log to <output>/tensorboard when TensorBoard is installed",
    "find_unused_parameters": "DDP's find_unused_parameters (models with branches unused in a step)",
}


def format_settings(config: "TrainConfig") -> List[str]:
    """``key = default  # description`` lines of every training setting."""
    return [f"{f.name} = {getattr(config, f.name)!r}  # {SETTING_HELP.get(f.name, '')}"
            for f in dataclasses.fields(config)]


def parse_value(text: str):
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return text


def apply_overrides(config: TrainConfig, overrides: List[str]) -> Tuple[TrainConfig, Dict[str, object]]:
    """``key=value`` strings -> (a new TrainConfig, the ``model.*`` overrides)."""
    changes, model_overrides = {}, {}
    for item in overrides:
        key, sep, text = item.partition("=")
        key = key.strip().replace("-", "_")
        if not sep or not key:
            raise ValueError(f"override {item!r}: expected key=value")
        value = parse_value(text)
        if key.startswith("model."):
            model_overrides[key[len("model."):]] = value
        else:
            changes[key] = value
    return apply_settings(config, changes), model_overrides


def apply_settings(config: TrainConfig, changes: Dict[str, object]) -> TrainConfig:
    """A new TrainConfig with ``changes`` (setting -> value, checked and
    coerced to the setting's type) applied; a ValueError names an unknown
    setting or a value of the wrong type."""
    fields = {f.name: f for f in dataclasses.fields(TrainConfig)}
    coerced = {}
    for key, value in changes.items():
        if key not in fields:
            raise ValueError(f"unknown setting {key!r}; the settings are: {', '.join(sorted(fields))} "
                             f"(and model.<name> for the model builder)")
        coerced[key] = _coerce(key, value, getattr(TrainConfig(), key))
    config = dataclasses.replace(config, **coerced)
    config.validate()
    return config


def _coerce(key, value, default):
    if isinstance(default, bool):
        if isinstance(value, str) and value.lower() in ("true", "false", "yes", "no", "on", "off"):
            return value.lower() in ("true", "yes", "on")
        if isinstance(value, (bool, int)):
            return bool(value)
    elif isinstance(default, tuple):
        if isinstance(value, (list, tuple)):
            return tuple(value)
        if isinstance(value, str):
            return tuple(v for v in value.split(",") if v)
        return (value,)
    elif isinstance(default, float) and isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    elif isinstance(default, int) and isinstance(value, int) and not isinstance(value, bool):
        return value
    elif isinstance(default, str) and isinstance(value, str):
        return value
    elif default is None:
        return value
    raise ValueError(f"setting {key}: expected a {type(default).__name__}, got {value!r}")
