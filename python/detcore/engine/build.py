"""Building a detector by name.

A name from ``detcore.models`` (``mask_rcnn_r50_fpn``, ``faster_rcnn_r50_fpn``, ...), or
``package.module:function`` for a detector of your own, built as
``function(num_classes, **overrides)`` and obeying the same contract
(train: ``model(images, targets) -> dict of losses``; eval:
``model(images) -> list of dicts with boxes, labels, scores[, masks, keypoints]``).
"""

from __future__ import annotations

import importlib


def build_model(name: str, num_classes: int, **overrides):
    if ":" in name:
        module_name, _, attr = name.partition(":")
        try:
            builder = getattr(importlib.import_module(module_name), attr)
        except (ImportError, AttributeError) as e:
            raise ValueError(f"model {name!r}: cannot import {attr!r} from {module_name!r}: {e}") from e
        return builder(num_classes, **overrides)
    try:
        from detcore import models
    except ImportError as e:
        raise ValueError(f"model {name!r}: detcore.models is not available ({e})") from e
    return models.build(name, num_classes, **overrides)


def proposal_inputs(model, targets, device=None) -> dict:
    """The keyword arguments that hand a dataset's proposals to a model with
    ``needs_proposals`` (``{"proposals": [(Pi, 4) per image]}``); ``{}`` for others."""
    if not getattr(model, "needs_proposals", False):
        return {}
    from ..proposals import ProposalError, SPEC_HELP

    if any("proposals" not in t for t in targets):
        raise ProposalError(f"{type(model).__name__} takes external proposals but the dataset carries none: "
                            f"pass --proposals {SPEC_HELP} (in Python: detcore.proposals.attach_proposals)")
    return {"proposals": [t["proposals"] if device is None else t["proposals"].to(device) for t in targets]}
