"""Keypoint decoding inside the exported graph.

Eager Keypoint R-CNN resizes each detection's (K, S, S) heatmaps to the
box's size in pixels (bicubic, align_corners=False), takes each map's
maximum and maps its pixel centre back to the image
(`heatmaps_to_keypoints`). The output size differs per box, so the decode is
one op for the exporters: ``detcore::heatmaps_to_keypoints``, a torch custom
op whose kernel is the eager function (torch.export's program computes
exactly what eager does), and whose ONNX translation (in `onnx_ops`) is a
Loop over the detections with standard operators:

    Resize(mode="cubic", cubic_coeff_a=-0.75, coordinate_transformation_mode=
    "half_pixel", exclude_outside=0)  # torch's bicubic: the same kernel,
                                      # source (dst + 0.5) * in / out - 0.5,
                                      # taps past the border read the edge
    ArgMax (first maximum, as torch) and ReduceMax over each map, then the
    pixel index back to image coordinates.

The loop carries the keypoints found so far and appends one detection's per
step, so zero detections give (0, K, 3) and (0, K).
"""

from __future__ import annotations

import torch

from ..models.roi_heads.keypoint_head import heatmaps_to_keypoints


@torch.library.custom_op("detcore::heatmaps_to_keypoints", mutates_args=())
def heatmaps_to_keypoints_op(maps: torch.Tensor, boxes: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(D, K, S, S) heatmaps and (D, 4) boxes -> (D, K, 3) keypoints and
    (D, K) scores, as the eager model decodes them."""
    if maps.dim() != 4 or boxes.dim() != 2 or boxes.shape[-1] != 4 or boxes.shape[0] != maps.shape[0]:
        raise ValueError(f"maps, boxes: expected (D, K, S, S) and (D, 4), got {tuple(maps.shape)} and "
                         f"{tuple(boxes.shape)}")
    return heatmaps_to_keypoints(maps, boxes)


@heatmaps_to_keypoints_op.register_fake
def _(maps, boxes):
    d, k = maps.shape[0], maps.shape[1]
    return maps.new_empty((d, k, 3)), maps.new_empty((d, k))
