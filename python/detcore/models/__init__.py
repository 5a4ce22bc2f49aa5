"""The detectors, in PyTorch, on detcore.ops: Fast/Faster R-CNN (VGG16,
ResNet-50/101-FPN), RetinaNet, Mask R-CNN, Keypoint R-CNN.

Same contract as torchvision's detection models: in training mode
``model(images, targets)`` returns a dict of losses; in eval mode
``model(images)`` returns one dict per image with "boxes" (x1, y1, x2, y2 in
the input image's pixels), "labels", "scores", and "masks" (N, 1, H, W) /
"keypoints" (N, K, 3) + "keypoints_scores" for those models."""

from .builders import available, build, resnet_fpn_backbone
from .layers import FrozenBatchNorm2d, set_frozen_bn_eps
from .meta.rcnn import GeneralizedRCNN
from .meta.retinanet import RetinaNet
from .svd import compress_fc_svd
from .torchvision_weights import load_torchvision_weights

__all__ = [
    "build",
    "available",
    "resnet_fpn_backbone",
    "load_torchvision_weights",
    "compress_fc_svd",
    "FrozenBatchNorm2d",
    "set_frozen_bn_eps",
    "GeneralizedRCNN",
    "RetinaNet",
]
