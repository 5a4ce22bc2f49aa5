"""MultiScaleRoIAlign: torchvision.ops.MultiScaleRoIAlign on detcore's roi_align."""

from __future__ import annotations

from typing import Dict, List, Tuple

import torch
from torch import Tensor, nn

from ._interop import MAX_IMAGE_SIDE, check_dense_tensor, check_int
from ._rois import pooled_size, sampling_ratio_arg
from .boxes import box_area
from .roi_align import roi_align


def _infer_scale(feature: Tensor, original_size: List[int]) -> float:
    """The scale 2**-k of a feature map, from its height over the padded
    image height (torchvision's rule, rounding log2 in float32)."""
    approx = float(feature.shape[-2]) / float(original_size[0])
    return 2 ** float(torch.tensor(approx).log2().round())


@torch.jit.unused
def _fx_tracing(x: Dict[str, Tensor], boxes: List[Tensor]) -> bool:
    """Whether torch.fx traces this call (proxies stand for the tensors)."""
    values = [x] + (list(x.values()) if isinstance(x, dict) else []) + [boxes]
    values += list(boxes) if isinstance(boxes, (list, tuple)) else []
    return any(isinstance(v, torch.fx.Proxy) for v in values)


@torch.jit.unused
def _check_inputs(x: Dict[str, Tensor], boxes: List[Tensor], image_shapes: List[Tuple[int, int]]) -> None:
    """TypeError / ValueError naming the argument for what forward cannot
    pool (eager only: TorchScript checks the types itself)."""
    if not isinstance(x, dict):
        raise TypeError(f"x: expected a dict of feature maps (str -> Tensor), got {type(x).__name__}")
    for name, value in x.items():
        where = f"x[{name!r}]"
        if not isinstance(value, Tensor):
            raise TypeError(f"{where}: expected a Tensor (N, C, H, W), got {type(value).__name__}")
        check_dense_tensor(value, where)
        if value.dim() != 4:
            raise ValueError(f"{where}: expected a 4-D tensor (N, C, H, W), got shape {tuple(value.shape)}")
        if not value.is_floating_point():
            raise TypeError(f"{where}: expected a floating dtype, got {value.dtype}")
    if not isinstance(boxes, (list, tuple)):
        raise TypeError(f"boxes: expected a list of (Ki, 4) tensors, one per image, got {type(boxes).__name__}")
    if len(boxes) == 0:
        raise ValueError("boxes: expected one (Ki, 4) tensor per image, got an empty list")
    for i, b in enumerate(boxes):
        if not isinstance(b, Tensor):
            raise TypeError(f"boxes[{i}]: expected a Tensor (Ki, 4), got {type(b).__name__}")
        check_dense_tensor(b, f"boxes[{i}]")
        if b.dim() != 2 or b.shape[1] != 4:
            raise ValueError(f"boxes[{i}]: expected shape (Ki, 4), got {tuple(b.shape)}")
        if not b.is_floating_point():
            raise TypeError(f"boxes[{i}]: expected a floating dtype, got {b.dtype}")
    if not isinstance(image_shapes, (list, tuple)):
        raise TypeError(f"image_shapes: expected a list of (height, width) pairs, got {type(image_shapes).__name__}")
    for shape in image_shapes:
        if not isinstance(shape, (list, tuple, torch.Size)) or len(shape) != 2:
            raise TypeError(f"image_shapes: expected a list of (height, width) pairs, got {shape!r}")
        for side in shape:
            check_int(side, "image_shapes", 1, MAX_IMAGE_SIDE)


def _level_bounds(scales: List[float]) -> Tuple[int, int]:
    k_min = int(-torch.log2(torch.tensor(scales[0], dtype=torch.float32)).item())
    k_max = int(-torch.log2(torch.tensor(scales[-1], dtype=torch.float32)).item())
    return k_min, k_max


class MultiScaleRoIAlign(nn.Module):
    """RoIAlign over the maps of a feature pyramid, as
    ``torchvision.ops.MultiScaleRoIAlign``: each box is pooled from level
    ``k = floor(canonical_level + log2(sqrt(area) / canonical_scale) + 1e-6)``
    (the FPN paper's rule), clamped to the levels present.

    The level scales are inferred at the first call from the feature sizes
    and the largest image size (``2**-round(log2(feature_h / image_h))``)
    and kept, as torchvision does. ``torch.fx`` traces the module once they
    are known (after a first call); before, tracing raises ValueError.

    Args:
        featmap_names: the keys of the feature maps to pool from; the maps
            are taken in the order of the features dict, finest first.
        output_size: the pooled size, an int or (height, width).
        sampling_ratio: as `roi_align` (<= 0: adaptive).
        canonical_scale, canonical_level: the level rule's constants.
    """

    __annotations__ = {"scales": List[float], "k_min": int, "k_max": int}

    def __init__(
        self,
        featmap_names: List[str],
        output_size,
        sampling_ratio: int,
        *,
        canonical_scale: int = 224,
        canonical_level: int = 4,
    ):
        super().__init__()
        output_size = pooled_size(output_size)
        if isinstance(featmap_names, str) or not all(isinstance(n, str) for n in featmap_names):
            raise TypeError(f"featmap_names: expected a list of str, got {featmap_names!r}")
        self.featmap_names = list(featmap_names)
        self.sampling_ratio = sampling_ratio_arg(sampling_ratio)
        self.output_size = (int(output_size[0]), int(output_size[1]))
        self.canonical_scale = check_int(canonical_scale, "canonical_scale", 1)
        self.canonical_level = check_int(canonical_level, "canonical_level", 0, 64)
        self.scales: List[float] = []
        self.k_min = 0
        self.k_max = 0

    def _setup_scales(self, features: List[Tensor], image_shapes: List[Tuple[int, int]]) -> None:
        if len(image_shapes) == 0:
            raise ValueError("image_shapes: expected one (height, width) per image, got an empty list")
        max_h, max_w = 0, 0
        for shape in image_shapes:
            max_h = max(shape[0], max_h)
            max_w = max(shape[1], max_w)
        self.scales = [_infer_scale(f, [max_h, max_w]) for f in features]
        self.k_min, self.k_max = _level_bounds(self.scales)

    def _levels(self, boxes: List[Tensor]) -> Tensor:
        s = torch.sqrt(torch.cat([box_area(b) for b in boxes]))
        k = torch.floor(self.canonical_level + torch.log2(s / self.canonical_scale) + torch.tensor(1e-6, dtype=s.dtype))
        k = torch.clamp(k, min=self.k_min, max=self.k_max)
        return k.to(torch.int64) - self.k_min

    def forward(self, x: Dict[str, Tensor], boxes: List[Tensor], image_shapes: List[Tuple[int, int]]) -> Tensor:
        """Pools (K, C, output_size) features for the per-image boxes (Ki, 4)
        in image coordinates (K = sum Ki, in image order)."""
        if not torch.jit.is_scripting():
            if not _fx_tracing(x, boxes):
                _check_inputs(x, boxes, image_shapes)
            elif len(self.scales) == 0:
                raise ValueError(
                    "x: the level scales are inferred from the feature sizes at the first call; "
                    "call the module once on example inputs before torch.fx tracing it"
                )
        features: List[Tensor] = []
        for name, value in x.items():
            if name in self.featmap_names:
                features.append(value)
        if len(features) == 0:
            raise ValueError(f"x: expected feature maps named {self.featmap_names}, got {list(x.keys())}")
        if len(self.scales) == 0:
            self._setup_scales(features, image_shapes)
        rois_list: List[Tensor] = []
        for i, b in enumerate(boxes):
            rois_list.append(torch.cat([torch.full_like(b[:, :1], i), b], dim=1))
        rois = torch.cat(rois_list, dim=0)
        if len(features) == 1:
            return roi_align(features[0], rois, self.output_size, self.scales[0], self.sampling_ratio)
        levels = self._levels(boxes)
        first = features[0]
        result = torch.zeros(
            (rois.shape[0], first.shape[1], self.output_size[0], self.output_size[1]),
            dtype=first.dtype,
            device=first.device,
        )
        for level, feature in enumerate(features):
            idx = torch.where(levels == level)[0]
            pooled = roi_align(feature, rois[idx], self.output_size, self.scales[level], self.sampling_ratio)
            result.index_put_((idx,), pooled.to(result.dtype))
        return result

    def extra_repr(self) -> str:
        return (
            f"featmap_names={self.featmap_names}, output_size={self.output_size}, "
            f"sampling_ratio={self.sampling_ratio}, canonical_scale={self.canonical_scale}, "
            f"canonical_level={self.canonical_level}"
        )
