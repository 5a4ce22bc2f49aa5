"""The public operators. Each takes numpy arrays, torch tensors (with
autograd and torch.compile support) or any DLPack array, and returns the
same kind (numpy for CPU DLPack inputs)."""

from .box_iou import box_iou
from .nms import batched_nms, nms
from .roi_align import RoIAlign, roi_align
from .roi_pool import RoIPool, roi_pool
from .anchors import cell_anchors, make_anchors
from .box_coding import decode_boxes, encode_boxes
from .focal_loss import sigmoid_focal_loss
from .paste_masks import paste_masks
from .spp_pool import SPPPool, spp_pool

__all__ = ["box_iou", "nms", "batched_nms", "roi_align", "RoIAlign", "roi_pool", "RoIPool", "make_anchors", "cell_anchors", "encode_boxes", "decode_boxes", "sigmoid_focal_loss", "paste_masks", "spp_pool", "SPPPool"]
