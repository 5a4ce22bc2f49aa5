"""The public operators. Each takes numpy arrays, torch tensors (with
autograd and torch.compile support) or any DLPack array, and returns the
same kind (numpy for DLPack inputs)."""

from .anchors import cell_anchors, make_anchors
from .box_coding import decode_boxes, encode_boxes
from .box_iou import box_iou

__all__ = ["box_iou", "cell_anchors", "make_anchors", "decode_boxes", "encode_boxes"]
