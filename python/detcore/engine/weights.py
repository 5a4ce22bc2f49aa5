"""Initial weights for training (``detcore train --weights``): a detcore
checkpoint, or a torchvision state dict (a COCO detection model, or an
ImageNet ResNet / VGG16 for the backbone).

Fine-tuning on a dataset with other classes is the common case: the layers
whose shape depends on the number of classes (the box classifier and
regressor, the mask logits, RetinaNet's class logits) are then left as
initialised, and everything else is loaded. Any other mismatch is an error;
nothing is loaded partially then.
"""

from __future__ import annotations

import os
import re
from typing import List, Tuple

import torch

from .checkpoint import FORMAT, CheckpointError

# parameters whose shape follows the number of classes
CLASS_SPECIFIC = re.compile(r"(^|\.)(box_predictor\.(cls_score|bbox_pred)|mask_predictor\.logits|head\.cls_logits)"
                            r"\.(weight|bias)$")


def _state_dict_of(path: str) -> Tuple[dict, str]:
    """(state dict in detcore's names, what it is: "detcore", "detection", "resnet" or "vgg16")."""
    if not os.path.isfile(path):
        raise CheckpointError(f"--weights: file not found: {path}")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:
        raise CheckpointError(f"--weights {path} is not a readable checkpoint: {type(e).__name__}: {str(e)[:200]}") from e
    if isinstance(payload, dict) and payload.get("format") == FORMAT:
        return payload["model"], "detcore"
    if isinstance(payload, dict):
        for key in ("model", "state_dict"):  # checkpoints that wrap the state dict
            if isinstance(payload.get(key), dict):
                payload = payload[key]
                break
    if not isinstance(payload, dict) or not all(torch.is_tensor(v) for v in payload.values()):
        raise CheckpointError(f"--weights {path}: expected a detcore checkpoint or a torchvision state dict")
    from ..models.torchvision_weights import convert_torchvision_state_dict

    try:
        state, kind = convert_torchvision_state_dict(payload)
    except ValueError as e:
        raise CheckpointError(f"--weights {path}: {e}") from None
    return state, kind


def _imagenet_vgg16_names(state: dict, own: dict) -> dict:
    """An ImageNet VGG16's tensors under the names of the detector at hand:
    R-CNN keeps its conv layers as ``features.*`` and R-CNN / SPP-net their
    fc6/fc7 as ``head.fc*`` (Fast R-CNN's names are ``backbone.features.*``
    and ``roi_heads.box_head.fc*``)."""
    out = {}
    for key, value in state.items():
        if key not in own:
            for old, new in (("backbone.", ""), ("roi_heads.box_head.", "head.")):
                if key.startswith(old) and new + key[len(old):] in own:
                    key = new + key[len(old):]
                    break
        out[key] = value
    return out


# an ImageNet classifier's fc6/fc7 fit a detector only when its pooled grid is 7x7 (SPP-net's
# pyramid is not): other shapes keep their initialisation
IMAGENET_FC = re.compile(r"(^|\.)fc[67]\.(weight|bias)$")


def load_initial_weights(model: torch.nn.Module, path: str) -> str:
    """Loads ``path`` into ``model``; returns one line saying what was loaded and what was left out."""
    state, kind = _state_dict_of(path)
    if kind == "resnet":  # e.g. the C4 detectors' res5 head takes the checkpoint's layer4
        from ..models.torchvision_weights import place_backbone_stages

        state = place_backbone_stages(state, model)
    own = model.state_dict()
    if kind == "vgg16":
        state = _imagenet_vgg16_names(state, own)
    unexpected = sorted(k for k in state if k not in own)
    skipped: List[str] = []
    mismatched = []
    for key in state:
        if key in own and tuple(state[key].shape) != tuple(own[key].shape):
            lenient = CLASS_SPECIFIC.search(key) or (kind == "vgg16" and IMAGENET_FC.search(key))
            (skipped if lenient else mismatched).append(key)
    missing = sorted(k for k in own if k not in state)
    whole_model = kind in ("detcore", "detection")
    problems = []
    if unexpected:
        problems.append(f"{len(unexpected)} tensors the model does not have ({', '.join(unexpected[:3])})")
    if mismatched:
        problems.append(f"{len(mismatched)} shape mismatches ("
                        + ", ".join(f"{k}: {tuple(state[k].shape)} vs {tuple(own[k].shape)}" for k in mismatched[:3])
                        + ")")
    if whole_model and missing:
        problems.append(f"{len(missing)} tensors of the model missing ({', '.join(missing[:3])})")
    if problems:
        raise CheckpointError(f"--weights {path} does not fit this model: " + "; ".join(problems))
    loaded = {k: v for k, v in state.items() if k not in skipped}
    with torch.no_grad():
        for key, value in loaded.items():
            own[key].copy_(value)
    if kind == "detection":  # torchvision's COCO builders use eps 0 for these checkpoints
        from ..models import set_frozen_bn_eps

        set_frozen_bn_eps(model, 0.0)
    what = {"detcore": "detcore checkpoint", "detection": "torchvision detection checkpoint",
            "resnet": "ImageNet ResNet backbone", "vgg16": "ImageNet VGG16"}[kind]
    message = f"loaded {len(loaded)} of {len(own)} tensors from {path} ({what})"
    if skipped:
        cls = [k for k in skipped if k.endswith("cls_score.weight")]
        detail = (f" (the checkpoint has {state[cls[0]].shape[0]} classes, the model {own[cls[0]].shape[0]})"
                  if cls else "")
        by_class = sorted({k.rsplit('.', 1)[0] for k in skipped if CLASS_SPECIFIC.search(k)})
        other = sorted({k.rsplit('.', 1)[0] for k in skipped if not CLASS_SPECIFIC.search(k)})
        if by_class:
            message += (f"; the class-specific layers {', '.join(by_class)} differ in size{detail} and keep their "
                        f"initialisation")
        if other:
            message += f"; {', '.join(other)} differ in size from the ImageNet classifier's and keep their initialisation"
    return message
