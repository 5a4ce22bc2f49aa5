"""What an experiment is: published numbers, a plan per preset, a run, an outcome."""

from __future__ import annotations

import dataclasses
import importlib
from typing import Callable, Dict, List, Optional

PRESETS = ("quick", "small", "paper")

# The experiments in the order of the line's papers (the order); `--list` and
# `reproduce all` follow it.
ORDER = ("fast_rcnn_main", "svd", "finetune_layers", "multitask", "proposals", "focal_loss", "roialign", "paste")

# What each preset promises (printed by `--list` and written into results.md).
PRESET_HELP = {
    "quick": "at most 2 minutes on a 2-core CPU, for tests and CI; the numbers mean nothing",
    "small": "the default: the synthetic dataset, tiny networks, at most 30 minutes per experiment on a 2-core "
             "CPU; enough to see whether the effect shows",
    "paper": "the paper's setting (dataset, backbone, schedule) for users with the data and a GPU",
}

Log = Callable[[str], None]


class ReproduceError(ValueError):
    """A user mistake (unknown experiment or preset, missing data): one line on the command line."""


@dataclasses.dataclass
class Row:
    """One line of the results table: a setting, a metric, the paper's number and detcore's."""

    setting: str  # what varies, e.g. "Fast R-CNN", "RoIAlign", "2000 proposals"
    metric: str  # e.g. "VOC07 mAP", "test time per image"
    published: Optional[float]  # None where the paper gives no number for it
    measured: Optional[float]  # None where the run could not measure it (the verdict says why)
    unit: str = ""  # "%", "s", "h", "ms", "" (written after the numbers)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


@dataclasses.dataclass
class Outcome:
    """What a run found. ``verdict`` is one to three sentences: does the published
    effect show at this scale, and if not, why (scale, data, schedule)."""

    rows: List[Row]
    published_setting: str
    measured_setting: str
    verdict: str
    plots: List[str] = dataclasses.field(default_factory=list)  # files written beside results.md
    details: Dict[str, object] = dataclasses.field(default_factory=dict)  # further JSON-able numbers

    def to_dict(self) -> dict:
        return {"rows": [r.to_dict() for r in self.rows], "published_setting": self.published_setting,
                "measured_setting": self.measured_setting, "verdict": self.verdict, "plots": list(self.plots),
                "details": self.details}


class Experiment:
    """Subclass, set the class attributes, implement :meth:`plan` and :meth:`run`,
    and decorate with :func:`register`.

    ``plan`` returns everything the run will use as a JSON-able dict (models,
    settings, data specs, schedules), chosen before running and never changed
    by what a run measures; ``detcore reproduce NAME --dry-run`` prints it, and
    the ``paper`` preset must plan without its data being present. ``run``
    executes the plan under ``workdir`` (rerunning it continues: finished runs
    are reused) and returns an :class:`Outcome`."""

    name: str = ""
    title: str = ""  # e.g. "Fast R-CNN vs SPP-net vs R-CNN"
    paper: str = ""  # e.g. "Girshick, Fast R-CNN, ICCV 2015, Table 4"
    claim: str = ""  # the published effect in one sentence

    def plan(self, preset: str, data: Optional[str] = None, val_data: Optional[str] = None) -> dict:
        raise NotImplementedError

    def run(self, plan: dict, workdir: str, log: Log) -> Outcome:
        raise NotImplementedError


_REGISTRY: Dict[str, type] = {}


def register(cls: type) -> type:
    if cls.name not in ORDER:
        raise ValueError(f"experiment {cls.name!r}: add it to detcore.engine.reproduce.base.ORDER")
    _REGISTRY[cls.name] = cls
    return cls


def _load(name: str) -> None:
    if name not in _REGISTRY:
        try:
            importlib.import_module(f"{__package__}.experiments.{name}")
        except ModuleNotFoundError as e:
            if e.name != f"{__package__}.experiments.{name}":
                raise


def available() -> List[str]:
    """The experiments this installation has, in ORDER."""
    for name in ORDER:
        _load(name)
    return [name for name in ORDER if name in _REGISTRY]


def get(name: str) -> Experiment:
    _load(name) if name in ORDER else None
    if name not in _REGISTRY:
        raise ReproduceError(f"unknown experiment {name!r}; expected one of {', '.join(available())} or 'all'")
    return _REGISTRY[name]()


def check_preset(preset: str) -> None:
    if preset not in PRESETS:
        raise ReproduceError(f"--preset: expected one of {', '.join(PRESETS)}, got {preset!r}")
