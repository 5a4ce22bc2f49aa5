"""Checkpoints: written atomically, validated on load.

A checkpoint holds the model, optimizer, scheduler and AMP scaler states, the
iteration, the RNG states and the run's metadata (model name, classes,
config). It is written to a temporary file in the same folder, fsynced and
renamed over the target, so a crash never leaves a half-written checkpoint
under the real name. Loading refuses a file that is not a detcore checkpoint,
cannot be read, or does not match the model (other classes, other
parameters): :class:`CheckpointError` says what is wrong, and nothing is
loaded partially.
"""

from __future__ import annotations

import glob
import os
import random
import re
from typing import List, Optional

import numpy as np
import torch

FORMAT = "detcore-checkpoint"
VERSION = 1


class CheckpointError(RuntimeError):
    """A checkpoint that is unreadable, corrupt or does not match the model."""


def rng_state() -> dict:
    np_state = np.random.get_state()
    state = {
        "python": random.getstate(),
        "numpy": {"key": np_state[0], "state": torch.from_numpy(np_state[1].astype(np.int64)),
                  "pos": int(np_state[2]), "has_gauss": int(np_state[3]), "cached_gaussian": float(np_state[4])},
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict) -> None:
    random.setstate(_to_tuple(state["python"]))
    n = state["numpy"]
    np.random.set_state((n["key"], n["state"].numpy().astype(np.uint32), n["pos"], n["has_gauss"],
                         n["cached_gaussian"]))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available() and len(state["cuda"]) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(state["cuda"])


def _to_tuple(x):
    return tuple(_to_tuple(v) for v in x) if isinstance(x, (list, tuple)) else x


def save_checkpoint(path: str, *, model, optimizer=None, scheduler=None, scaler=None, iteration: int = 0,
                    meta: Optional[dict] = None) -> str:
    model = getattr(model, "module", model)  # unwrap DDP
    payload = {
        "format": FORMAT,
        "version": VERSION,
        "iteration": int(iteration),
        "model": model.state_dict(),
        "optimizer": optimizer.state_dict() if optimizer is not None else None,
        "scheduler": scheduler.state_dict() if scheduler is not None else None,
        "scaler": scaler.state_dict() if scaler is not None else None,
        "rng": rng_state(),
        "meta": meta or {},
    }
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    tmp = os.path.join(directory, f".{os.path.basename(path)}.tmp{os.getpid()}")
    try:
        with open(tmp, "wb") as f:
            torch.save(payload, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
    return path


def read_checkpoint(path: str) -> dict:
    """The checkpoint's contents, checked to be a whole detcore checkpoint."""
    if not os.path.isfile(path):
        raise CheckpointError(f"checkpoint not found: {path}")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # truncated / corrupt / not a torch file
        raise CheckpointError(f"{path} is not a readable checkpoint (corrupt or truncated?): "
                              f"{type(e).__name__}: {str(e)[:200]}") from e
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise CheckpointError(f"{path} is not a detcore checkpoint (no '{FORMAT}' marker)")
    if payload.get("version") != VERSION:
        raise CheckpointError(f"{path} has checkpoint version {payload.get('version')}; this detcore reads {VERSION}")
    for key in ("model", "iteration", "rng", "meta"):
        if key not in payload:
            raise CheckpointError(f"{path} lacks '{key}'")
    return payload


def load_model_state(model, payload: dict, path: str = "checkpoint") -> None:
    """Loads the model weights strictly: all or nothing."""
    model = getattr(model, "module", model)
    state = payload["model"]
    own = model.state_dict()
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    shape_mismatch = [f"{k}: checkpoint {tuple(state[k].shape)} vs model {tuple(own[k].shape)}"
                      for k in own if k in state and tuple(state[k].shape) != tuple(own[k].shape)]
    if missing or unexpected or shape_mismatch:
        def head(items):
            return ", ".join(items[:5]) + (f" (+{len(items) - 5} more)" if len(items) > 5 else "")
        parts = []
        if missing:
            parts.append(f"missing {len(missing)} tensors: {head(missing)}")
        if unexpected:
            parts.append(f"unexpected {len(unexpected)} tensors: {head(unexpected)}")
        if shape_mismatch:
            parts.append(f"{len(shape_mismatch)} shape mismatches: {head(shape_mismatch)}")
        meta = payload.get("meta", {})
        hint = (f" (the checkpoint is a {meta.get('model')} with {meta.get('num_classes')} classes)"
                if meta.get("model") else "")
        raise CheckpointError(f"{path} does not match the model{hint}: " + "; ".join(parts))
    model.load_state_dict(state, strict=True)


def check_meta(payload: dict, path: str, **expected) -> None:
    meta = payload.get("meta", {})
    for key, value in expected.items():
        if key in meta and value is not None and meta[key] != value:
            raise CheckpointError(f"{path} was written for {key}={meta[key]!r}, but this run has {key}={value!r}")


def checkpoint_name(iteration: int) -> str:
    return f"model_{iteration:07d}.pth"


def periodic_checkpoints(directory: str) -> List[str]:
    """The ``model_XXXXXXX.pth`` files of ``directory``, by increasing iteration."""
    found = []
    for path in glob.glob(os.path.join(directory, "model_*.pth")):
        m = re.fullmatch(r"model_(\d+)\.pth", os.path.basename(path))
        if m:
            found.append((int(m.group(1)), path))
    return [path for _, path in sorted(found)]


def latest_checkpoint(directory: str) -> Optional[str]:
    """The checkpoint with the highest iteration in ``directory`` (None if none)."""
    found = periodic_checkpoints(directory)
    return found[-1] if found else None
