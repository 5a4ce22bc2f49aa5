"""The public operators. Each takes numpy arrays, torch tensors (with
autograd and torch.compile support) or any DLPack array, and returns the
same kind (numpy for DLPack inputs)."""

from .box_iou import box_iou
from .roi_align import RoIAlign, roi_align

__all__ = ["box_iou", "roi_align", "RoIAlign"]
