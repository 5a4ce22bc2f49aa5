"""A training run's settings from three layers, later ones winning: a
``--config`` file, the ``config.json`` of the run being resumed, and the
command line.

A config file is JSON or YAML with the keys of ``config.json``: ``model``,
``data``, ``val_data``, ``weights``, ``config`` (the training settings) and
``model_overrides`` (the model's settings). Flat files work too: a top-level
training setting (``max_iter: 100``) or ``model.KEY`` (``model.min_size: 600``).
Keys that ``config.json`` records about the data (``class_names``,
``num_classes``, ...) are ignored: they come from the dataset.
"""

from __future__ import annotations

import dataclasses
import json
import os
from typing import Dict, List, Optional

from ..errors import UsageError
from .config import TrainConfig, apply_settings, parse_value

RUN_KEYS = ("model", "data", "val_data", "weights")
# what config.json records about the run's data, not settings
INFORMATIONAL_KEYS = ("num_classes", "class_names", "category_ids", "keypoint_names", "world_size")


@dataclasses.dataclass
class RunSettings:
    model: Optional[str] = None
    data: Optional[str] = None
    val_data: Optional[str] = None
    weights: Optional[str] = None
    settings: Dict[str, object] = dataclasses.field(default_factory=dict)
    model_overrides: Dict[str, object] = dataclasses.field(default_factory=dict)


def read_config_file(path: str) -> RunSettings:
    """A JSON or YAML config file (by extension; ``.yaml`` / ``.yml`` need PyYAML)."""
    if not os.path.isfile(path):
        raise UsageError(f"--config: file not found: {path}")
    with open(path) as f:
        text = f.read()
    if path.endswith((".yaml", ".yml")):
        try:
            import yaml
        except ImportError:
            raise UsageError(f"--config {path}: reading YAML needs PyYAML: pip install 'detcore[train]'") from None
        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError as e:
            raise UsageError(f"--config {path} is not valid YAML: {str(e).splitlines()[0]}") from None
    else:
        try:
            data = json.loads(text)
        except json.JSONDecodeError as e:
            raise UsageError(f"--config {path} is not valid JSON: {e}") from None
    if not isinstance(data, dict):
        raise UsageError(f"--config {path}: expected a mapping of settings, got {type(data).__name__}")
    return parse_config(data, f"--config {path}")


def parse_config(data: dict, where: str) -> RunSettings:
    fields = {f.name for f in dataclasses.fields(TrainConfig)}
    run = RunSettings()
    for key, value in data.items():
        if key in RUN_KEYS:
            setattr(run, key, value)
        elif key == "config":
            if not isinstance(value, dict):
                raise UsageError(f"{where}: 'config' must be a mapping of training settings")
            run.settings.update(value)
        elif key == "model_overrides":
            if not isinstance(value, dict):
                raise UsageError(f"{where}: 'model_overrides' must be a mapping of model settings")
            run.model_overrides.update(value)
        elif key.startswith("model."):
            run.model_overrides[key[len("model."):]] = value
        elif key in fields:
            run.settings[key] = value
        elif key not in INFORMATIONAL_KEYS:
            raise UsageError(f"{where}: unknown key {key!r}; expected {', '.join(RUN_KEYS)}, config, "
                             f"model_overrides, a training setting or model.KEY")
    return run


def merge(base: RunSettings, top: RunSettings) -> RunSettings:
    return RunSettings(**{k: getattr(top, k) or getattr(base, k) for k in RUN_KEYS},
                       settings={**base.settings, **top.settings},
                       model_overrides={**base.model_overrides, **top.model_overrides})


def from_command_line(args, settings_items: List[str], model_overrides: dict) -> RunSettings:
    settings = {}
    for item in settings_items:
        key, _, text = item.partition("=")
        settings[key.strip().replace("-", "_")] = parse_value(text)
    return RunSettings(model=args.model, data=args.data, val_data=args.val_data, weights=args.weights,
                       settings=settings, model_overrides=dict(model_overrides))


def changed_on_resume(saved: RunSettings, given: RunSettings) -> List[str]:
    """``key=new (the run had old)`` for what the command line changes in a resumed run."""
    out = []
    for key in RUN_KEYS:
        new, old = getattr(given, key), getattr(saved, key)
        if new is not None and old is not None and new != old:
            out.append(f"--{key.replace('_', '-')} {new} (the run had {old})")
    for prefix, new_map, old_map in (("", given.settings, saved.settings),
                                     ("model.", given.model_overrides, saved.model_overrides)):
        for key, value in new_map.items():
            old = old_map.get(key)
            if _normal(old) != _normal(value):
                out.append(f"{prefix}{key}={value!r} (the run had {old!r})")
    return out


def _normal(value):
    return json.loads(json.dumps(value, default=str)) if value is not None else None


def training_config(run: RunSettings, base: Optional[TrainConfig] = None) -> TrainConfig:
    try:
        return apply_settings(base or TrainConfig(), run.settings)
    except ValueError as e:
        raise UsageError(str(e)) from None
