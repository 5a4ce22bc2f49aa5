"""Loading torchvision checkpoints into detcore's detectors.

Accepts the state dicts of torchvision's fasterrcnn / maskrcnn /
keypointrcnn / retinanet resnet50_fpn (current key names and the old ones of
the first checkpoints), and ImageNet ResNet and VGG16 classification
checkpoints (loaded into the backbone; VGG16's fc6/fc7 into the box head, as
the Fast R-CNN paper initialises them)."""

from __future__ import annotations

import re

import torch
from torch import nn

from .layers import set_frozen_bn_eps

# (torchvision key pattern, detcore key template), tried in order; the
# first pattern that matches the whole key wins.
_DETECTION_RULES = [
    (r"backbone\.body\.(.*)", r"backbone.body.\1"),
    (r"backbone\.fpn\.inner_blocks\.(\d+)(?:\.0)?\.(weight|bias)", r"backbone.fpn.lateral.\1.\2"),
    (r"backbone\.fpn\.layer_blocks\.(\d+)(?:\.0)?\.(weight|bias)", r"backbone.fpn.output.\1.\2"),
    (r"backbone\.fpn\.extra_blocks\.(p6|p7)\.(weight|bias)", r"backbone.fpn.extra_convs.\1.\2"),
    (r"rpn\.head\.conv(?:\.0\.0)?\.(weight|bias)", r"rpn.head.conv.\1"),
    (r"rpn\.head\.cls_logits\.(weight|bias)", r"rpn.head.objectness.\1"),
    (r"rpn\.head\.bbox_pred\.(weight|bias)", r"rpn.head.deltas.\1"),
    (r"roi_heads\.box_head\.(fc6|fc7)\.(weight|bias)", r"roi_heads.box_head.\1.\2"),
    (r"roi_heads\.box_predictor\.(cls_score|bbox_pred)\.(weight|bias)", r"roi_heads.box_predictor.\1.\2"),
    (r"roi_heads\.mask_head\.(\d+)\.0\.(weight|bias)", r"roi_heads.mask_head.convs.\1.\2"),
    (r"roi_heads\.mask_predictor\.conv5_mask\.(weight|bias)", r"roi_heads.mask_predictor.deconv.\1"),
    (r"roi_heads\.mask_predictor\.mask_fcn_logits\.(weight|bias)", r"roi_heads.mask_predictor.logits.\1"),
    (r"roi_heads\.keypoint_predictor\.kps_score_lowres\.(weight|bias)", r"roi_heads.keypoint_predictor.deconv.\1"),
    (r"head\.classification_head\.conv\.(\d+)\.0\.(weight|bias)", r"head.cls_tower.\1.\2"),
    (r"head\.classification_head\.cls_logits\.(weight|bias)", r"head.cls_logits.\1"),
    (r"head\.regression_head\.conv\.(\d+)\.0\.(weight|bias)", r"head.box_tower.\1.\2"),
    (r"head\.regression_head\.bbox_reg\.(weight|bias)", r"head.box_deltas.\1"),
]


def _halve(m):
    """Old Sequential(conv, relu, conv, relu, ...) index -> conv number."""
    return str(int(m) // 2)


def _convert_detection_key(key: str):
    # old layouts whose indices count the ReLUs too
    m = re.fullmatch(r"roi_heads\.mask_head\.mask_fcn(\d+)\.(weight|bias)", key)
    if m:
        return f"roi_heads.mask_head.convs.{int(m[1]) - 1}.{m[2]}"
    m = re.fullmatch(r"roi_heads\.keypoint_head\.(\d+)\.(weight|bias)", key)
    if m:
        return f"roi_heads.keypoint_head.convs.{_halve(m[1])}.{m[2]}"
    m = re.fullmatch(r"head\.(classification|regression)_head\.conv\.(\d+)\.(weight|bias)", key)
    if m:
        tower = "cls_tower" if m[1] == "classification" else "box_tower"
        return f"head.{tower}.{_halve(m[2])}.{m[3]}"
    for pattern, template in _DETECTION_RULES:
        m = re.fullmatch(pattern, key)
        if m:
            return m.expand(template)
    return None


def _kind(state_dict) -> str:
    keys = list(state_dict)
    if any(k.startswith("backbone.") for k in keys):
        return "detection"
    if any(k.startswith("features.") for k in keys):
        return "vgg16"
    if "conv1.weight" in state_dict and any(k.startswith("layer1.") for k in keys):
        return "resnet"
    raise ValueError("state_dict: not a torchvision detection, ResNet or VGG16 checkpoint")


def convert_torchvision_state_dict(state_dict) -> tuple[dict, str]:
    """(detcore state dict, kind) for a torchvision state dict; kind is
    "detection", "resnet" or "vgg16"."""
    kind = _kind(state_dict)
    out = {}
    for key, value in state_dict.items():
        if key.endswith("num_batches_tracked"):
            continue
        if kind == "detection":
            new = _convert_detection_key(key)
        elif kind == "resnet":
            new = None if key.startswith("fc.") else "backbone.body." + key
        else:
            m = re.fullmatch(r"classifier\.(0|3)\.(weight|bias)", key)
            new = (
                "backbone." + key
                if key.startswith("features.")
                else (f"roi_heads.box_head.{'fc6' if m[1] == '0' else 'fc7'}.{m[2]}" if m else None)
            )
        if new is None:
            if kind == "detection":
                raise ValueError(f"state_dict: unknown torchvision key {key!r}")
            continue  # a classifier's last layer: not used by detectors
        out[new] = value
    return out, kind


def place_backbone_stages(state: dict, model: nn.Module) -> dict:
    """``state`` (converted ImageNet ResNet keys, "backbone.body.layerN.*")
    with the stages that ``model`` holds outside its backbone renamed to where
    they are: a module with ``torchvision_stages = {"layer4": "res5"}`` (the
    ResNet-C4 detectors' res5 RoI head) takes ``layer4.*`` as its ``res5.*``."""
    renames = {}
    for name, module in model.named_modules():
        for stage, child in (getattr(module, "torchvision_stages", None) or {}).items():
            renames[f"backbone.body.{stage}."] = f"{name}.{child}." if name else f"{child}."
    if not renames:
        return state
    out = {}
    for key, value in state.items():
        for old, new in renames.items():
            if key.startswith(old):
                key = new + key[len(old):]
                break
        out[key] = value
    return out


def load_torchvision_weights(model: nn.Module, state_dict, bn_eps="auto"):
    """Load a torchvision state dict into a detcore detector.

    Args:
        model: a detector from `detcore.models.build`.
        state_dict: torchvision's state dict (a detection model's, or an
            ImageNet ResNet's / VGG16's for the backbone).
        bn_eps: eps of the frozen batch norms afterwards. "auto": 0.0 for
            detection checkpoints (what torchvision's COCO builders set for
            these checkpoints), left as is for ImageNet backbones.

    Returns:
        the list of model keys the checkpoint did not provide (empty for a
        detection checkpoint of the same architecture). Raises ValueError on
        unknown keys or shape mismatches.
    """
    converted, kind = convert_torchvision_state_dict(state_dict)
    if kind == "resnet":
        converted = place_backbone_stages(converted, model)
    own = model.state_dict()
    for key, value in converted.items():
        if key not in own:
            raise ValueError(f"state_dict: {key!r} (from the torchvision checkpoint) is not in this model")
        if tuple(own[key].shape) != tuple(value.shape):
            raise ValueError(
                f"state_dict: {key!r} has shape {tuple(value.shape)}, the model expects {tuple(own[key].shape)}"
            )
    missing = [k for k in own if k not in converted]
    if kind == "detection" and missing:
        raise ValueError(f"state_dict: missing {len(missing)} keys of this model, e.g. {missing[:3]}")
    with torch.no_grad():
        for key, value in converted.items():
            own[key].copy_(value)
    if bn_eps == "auto":
        bn_eps = 0.0 if kind == "detection" else None
    if bn_eps is not None:
        set_frozen_bn_eps(model, bn_eps)
    return missing
