"""What the ``detcore`` commands share: the thread rule, the device check,
model building with one-line errors, checkpoint loading and the evaluation
report. The commands themselves live in ``*_cmd.py`` beside this file."""

from __future__ import annotations

import json
import os
from typing import Optional

import torch

from ..errors import UsageError

DEFAULT_THREADS = 1


def log(*parts) -> None:
    """Prints on the main process only."""
    from .distributed import is_main_process

    if is_main_process():
        print(*parts, flush=True)


def set_threads(threads: Optional[int]) -> int:
    """The thread rule of every command: ``--threads N`` torch and detcore CPU
    threads per process, 1 by default (on a shared machine more threads spin
    against other work and can be several times slower; raise it on an idle
    machine with many cores); 0 leaves torch's and detcore's defaults."""
    threads = DEFAULT_THREADS if threads is None else threads
    if threads < 0:
        raise UsageError(f"--threads: expected a number >= 0, got {threads}")
    if threads:
        torch.set_num_threads(threads)
        import detcore

        detcore.set_num_threads(threads)
    return torch.get_num_threads()


def check_device(name: str) -> torch.device:
    """``--device`` as a torch.device, or a one-line UsageError when it cannot be used here."""
    try:
        device = torch.device(name)
    except (RuntimeError, ValueError):
        raise UsageError(f"--device {name!r}: expected cpu, cuda or cuda:N") from None
    if device.type == "cuda":
        if not torch.cuda.is_available():
            why = ("built without CUDA" if torch.version.cuda is None
                   else f"built for CUDA {torch.version.cuda}, but no GPU or driver is visible")
            raise UsageError(f"--device {name}: CUDA is not available (torch {torch.__version__}, {why})")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise UsageError(f"--device {name}: this machine has {torch.cuda.device_count()} GPU(s)")
    elif device.type != "cpu":
        raise UsageError(f"--device {name!r}: expected cpu, cuda or cuda:N")
    return device


def setup_device(name: str) -> torch.device:
    """Checks ``--device`` and joins the torchrun process group when launched by torchrun."""
    from .distributed import init_distributed

    check_device(name)
    return init_distributed(name)


def split_overrides(items):
    """``key=value`` items -> (``model.*`` overrides as a dict, the other items)."""
    from .config import parse_value

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


def settings_from(base, items):
    from .config import apply_overrides

    try:
        cfg, _ = apply_overrides(base, items)
    except ValueError as e:
        raise UsageError(str(e)) from None
    return cfg


def build_detector(name: str, num_classes: int, overrides: dict):
    from .build import build_model

    try:
        return build_model(name, num_classes, **overrides)
    except (ValueError, TypeError) as e:
        shown = " ".join(f"model.{k}={v!r}" for k, v in overrides.items()) or "no model settings"
        raise UsageError(f"cannot build model {name!r} with {shown}: {e}") from None


def load_checkpoint_model(weights: str, model_name: Optional[str], extra_overrides: dict, device):
    from .checkpoint import load_model_state, read_checkpoint

    payload = read_checkpoint(weights)
    meta = payload.get("meta", {})
    name = model_name or meta.get("model")
    if not name:
        raise UsageError(f"{weights} does not name its model; pass --model")
    num_classes = meta.get("num_classes")
    if not num_classes:
        raise UsageError(f"{weights} does not record num_classes")
    overrides = {**meta.get("model_overrides", {}), **extra_overrides}
    model = build_detector(name, num_classes, overrides)
    load_model_state(model, payload, weights)
    model.to(device).eval()
    return model, meta


def write_json(path: str, payload) -> None:
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        json.dump(payload, f, indent=2)
    os.replace(tmp, path)


def report_metrics(metrics: dict, device, output: Optional[str], extra: Optional[dict] = None) -> None:
    """Prints the AP table (and per-class AP, VOC07 mAP, the speed); writes ``metrics.json``."""
    from .distributed import is_main_process
    from .evaluation import format_ap_table, format_per_class_table

    log(format_ap_table({k: v for k, v in metrics.items() if k in ("bbox", "segm", "keypoints")}))
    if metrics.get("per_class"):
        log(format_per_class_table(metrics["per_class"]))
    if "voc07" in metrics:
        log(f"VOC07 mAP@0.5: {100 * metrics['voc07']['mAP']:.1f}")
    log(f"inference: {1e3 * metrics['inference_time_per_image']:.1f} ms per image "
        f"({metrics['num_images']} images, {device})")
    if output and is_main_process():
        os.makedirs(output, exist_ok=True)
        write_json(os.path.join(output, "metrics.json"), {**metrics, **(extra or {})})


def evaluate_and_report(model, dataset, device, output: Optional[str], *, voc=False, min_size=None,
                        max_size=1333, max_images=None, extra=None, results_file: Optional[str] = None):
    from .evaluation import evaluate

    metrics = evaluate(model, dataset, device, voc=voc, min_size=min_size, max_size=max_size, max_images=max_images,
                       results_file=results_file)
    report_metrics(metrics, device, output, extra)
    return metrics
