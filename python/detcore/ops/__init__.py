"""The public operators. Each takes numpy arrays, torch tensors (with
autograd and torch.compile support) or any DLPack array, and returns the
same kind (numpy for DLPack inputs)."""

from .box_iou import box_iou
from .paste_masks import paste_masks

__all__ = ["box_iou", "paste_masks"]
