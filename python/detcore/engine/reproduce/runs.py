"""Running an experiment's pieces through the code a user runs: ``detcore train``
and ``detcore eval`` in-process, each in its own folder under the experiment's
work folder. A finished run is reused, an interrupted one resumed, so rerunning
``detcore reproduce`` continues where it stopped."""

from __future__ import annotations

import json
import os
import time
from typing import Dict, Iterable, Optional, Tuple

from .base import Log, ReproduceError

QUICK_DATA = "synthetic:12:6"  # tiny: the quick preset only checks that everything runs
SMALL_DATA = "synthetic-hard:300:60"  # shapes at several scales, thin shapes, clutter, occlusion
# Where the paper presets look by default (--data/--val-data override); a dry run plans with these.
PAPER_VOC07 = ("voc:datasets/VOCdevkit/VOC2007:trainval", "voc:datasets/VOCdevkit/VOC2007:test")
PAPER_COCO = ("coco:datasets/coco/annotations/instances_train2017.json:datasets/coco/train2017",
              "coco:datasets/coco/annotations/instances_val2017.json:datasets/coco/val2017")


def data_specs(preset: str, data: Optional[str], val_data: Optional[str], paper: Tuple[str, str]) -> Tuple[str, str]:
    """The (train, validation) specs a plan records: the user's, else the preset's
    (``paper``: the paper's dataset at its default place). Synthetic specs are
    made into files when the run starts (:func:`prepare_data`)."""
    if data:
        return data, val_data or ""
    if preset == "paper":
        return paper
    return (QUICK_DATA if preset == "quick" else SMALL_DATA), val_data or ""
FINAL_CHECKPOINT = "model_final.pth"
_TIME_FILE = "reproduce_time.json"


def prepare_data(spec: str, val_spec: Optional[str], workdir: str) -> Tuple[str, str]:
    """The (train, validation) dataset specs of a run. A synthetic spec is made
    once under ``workdir/data`` and returned as ``coco:`` specs, so every run of
    the experiment reads the same files; a VOC spec validates on its test split;
    any other spec needs ``val_spec``."""
    from ...data import build_dataset

    kind = spec.partition(":")[0]
    if kind.startswith("synthetic"):
        cache = os.path.join(workdir, "data")
        train = build_dataset(spec, train=True, cache_dir=cache)
        val = build_dataset(spec, train=False, cache_dir=cache)
        return (f"coco:{train.annotation_file}:{train.image_dir}",
                val_spec or f"coco:{val.annotation_file}:{val.image_dir}")
    if val_spec:
        return spec, val_spec
    if kind == "voc":
        root = spec.split(":")[1]
        return spec, f"voc:{root}:test"
    raise ReproduceError(f"--data {spec}: give the validation set with --val-data")


def settings_args(settings: Dict[str, object], prefix: str = "") -> list:
    """``{"max_iter": 100, "steps": (0.7,)}`` -> ``["max_iter=100", "steps=[0.7]"]``."""
    out = []
    for key, value in settings.items():
        if isinstance(value, (list, tuple)):
            value = "[" + ",".join(repr(v) if isinstance(v, str) else str(v) for v in value) + "]"
        out.append(f"{prefix}{key}={value}")
    return out


def _cli(argv: list, what: str) -> None:
    import torch

    from ...cli import main

    # the inner command keeps the thread count `detcore reproduce --threads` set
    code = main([str(a) for a in argv] + ["--threads", str(torch.get_num_threads())])
    if code:
        raise ReproduceError(f"{what} failed (exit {code}): detcore {' '.join(str(a) for a in argv)}")


def train_run(workdir: str, name: str, *, model: str, data: str, settings: Dict[str, object],
              model_settings: Optional[Dict[str, object]] = None, proposals: Optional[str] = None,
              weights: Optional[str] = None, extra_args: Iterable[str] = (), device: str = "cpu",
              log: Log = print) -> Dict[str, object]:
    """``detcore train`` into ``workdir/name``; returns ``{"checkpoint", "seconds", "output"}``.
    ``seconds`` is the wall time of training, kept beside the run, so a reused
    run still reports it."""
    out = os.path.join(workdir, name)
    final = os.path.join(out, FINAL_CHECKPOINT)
    time_file = os.path.join(out, _TIME_FILE)
    if os.path.exists(final) and os.path.exists(time_file):
        log(f"reproduce: reusing the finished run {out}")
        with open(time_file) as f:
            return {"checkpoint": final, "seconds": json.load(f)["seconds"], "output": out}
    argv = ["train", "--model", model, "--data", data, "-o", out, "--device", device, *extra_args]
    if proposals:
        argv += ["--proposals", proposals]
    if weights:
        argv += ["--weights", weights]
    argv += settings_args(settings) + settings_args(model_settings or {}, "model.")
    if os.path.isdir(out) and os.listdir(out):
        argv.append("--resume")  # an interrupted run of the same plan: continue it
    log(f"reproduce: training {name} ({model})")
    t0 = time.perf_counter()
    _cli(argv, f"training {name}")
    seconds = time.perf_counter() - t0
    with open(time_file, "w") as f:
        json.dump({"seconds": seconds}, f)
    return {"checkpoint": final, "seconds": seconds, "output": out}


def eval_run(workdir: str, name: str, *, checkpoint: str, data: str, proposals: Optional[str] = None,
             voc: bool = False, model_settings: Optional[Dict[str, object]] = None,
             max_images: Optional[int] = None, device: str = "cpu", log: Log = print) -> dict:
    """``detcore eval`` into ``workdir/name``; returns its ``metrics.json``
    (``bbox``/``segm`` AP dicts in [0, 1], ``voc07``, ``inference_time_per_image``)."""
    out = os.path.join(workdir, name)
    metrics_file = os.path.join(out, "metrics.json")
    if os.path.exists(metrics_file) and os.path.getmtime(metrics_file) >= os.path.getmtime(checkpoint):
        log(f"reproduce: reusing the evaluation {out}")
    else:
        argv = ["eval", "--weights", checkpoint, "--data", data, "-o", out, "--device", device]
        if proposals:
            argv += ["--proposals", proposals]
        if voc:
            argv.append("--voc")
        if max_images:
            argv += ["--max-images", max_images]
        argv += settings_args(model_settings or {}, "model.")
        log(f"reproduce: evaluating {name}")
        _cli(argv, f"evaluating {name}")
    with open(metrics_file) as f:
        return json.load(f)


def percent(value: Optional[float]) -> Optional[float]:
    """A metric in [0, 1] as a percentage rounded to 0.1 (None stays None)."""
    return None if value is None else round(100.0 * float(value), 1)


# Below this AP50 (points) in every arm of a comparison, the detector learnt too little for its
# differences to test a published effect (fixed before any run; see too_weak).
MIN_AP50 = 5.0


def too_weak(ap50_values: Iterable[Optional[float]], floor: float = MIN_AP50) -> bool:
    """Whether every arm's AP50 (points) is below ``floor``: then a verdict
    says the run does not test the claim, instead of reading noise as an effect."""
    values = [v for v in ap50_values if v is not None]
    return bool(values) and max(values) < floor


def too_weak_sentence(ap50_values: Iterable[Optional[float]], what: str = "detectors") -> str:
    """The sentence a verdict starts with when :func:`too_weak` holds, else ""."""
    if not too_weak(ap50_values):
        return ""
    return (f"Every arm stays below {MIN_AP50:.0f} AP50 (VOC07 mAP): the {what} learnt too little at this scale for "
            f"this run to test the published effect either way; what follows reads numbers of untrained detectors. ")


def same_direction(published_a: float, published_b: float, measured_a: float, measured_b: float,
                   tolerance: float = 0.0) -> bool:
    """Whether the measured pair orders like the published pair; differences
    within ``tolerance`` count as no effect (and so as not reproduced)."""
    published = published_b - published_a
    measured = measured_b - measured_a
    return abs(measured) > tolerance and (measured > 0) == (published > 0)
