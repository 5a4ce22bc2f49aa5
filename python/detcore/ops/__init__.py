"""The public operators. Each takes numpy arrays, torch tensors (with
autograd and torch.compile support) or any DLPack array, and returns the
same kind (numpy for DLPack inputs)."""

from .box_iou import box_iou
from .focal_loss import sigmoid_focal_loss

__all__ = ["box_iou", "sigmoid_focal_loss"]
