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
from .boxes import box_area, box_convert, clip_boxes_to_image, masks_to_boxes, remove_small_boxes
from .box_iou_variants import complete_box_iou, distance_box_iou, generalized_box_iou
from .box_iou_losses import complete_box_iou_loss, distance_box_iou_loss, generalized_box_iou_loss
from .soft_nms import batched_soft_nms, soft_nms

try:  # the nn.Module needs PyTorch
    from .poolers import MultiScaleRoIAlign
except ImportError:
    pass

__all__ = ["box_iou", "nms", "batched_nms", "roi_align", "RoIAlign", "roi_pool", "RoIPool", "make_anchors", "cell_anchors", "encode_boxes", "decode_boxes", "sigmoid_focal_loss", "paste_masks", "spp_pool", "SPPPool"]
__all__ += ["box_area", "box_convert", "clip_boxes_to_image", "remove_small_boxes", "masks_to_boxes", "generalized_box_iou", "distance_box_iou", "complete_box_iou", "generalized_box_iou_loss", "distance_box_iou_loss", "complete_box_iou_loss", "soft_nms", "batched_soft_nms"]
if "MultiScaleRoIAlign" in globals():
    __all__ += ["MultiScaleRoIAlign"]
