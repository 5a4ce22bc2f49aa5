"""Two-stage detectors: transform -> backbone -> RPN (or external proposals)
-> RoI heads -> back to image coordinates. Same contract as torchvision's
detection models: training mode takes images and targets and returns a dict
of losses; eval mode returns one dict per image (boxes, labels, scores, and
masks / keypoints)."""

from __future__ import annotations

import torch
from torch import nn

from ..fuse import fuse
from ..transform import Transform, _scale_xy
from ..validation import check_images, check_targets


class GeneralizedRCNN(nn.Module):
    """Args:
        transform, backbone, rpn, roi_heads: the parts. rpn=None makes a Fast
            R-CNN that takes proposals: ``model(images, targets, proposals=...)``
            with one (Pi, 4) box tensor per image in original image coordinates.
        num_classes: including the background (class 0).
    """

    needs_proposals = False  # True: forward needs ``proposals`` (see FastRCNN)

    def __init__(self, transform: Transform, backbone, rpn, roi_heads, num_classes: int):
        super().__init__()
        self.transform = transform
        self.backbone = backbone
        self.rpn = rpn
        self.roi_heads = roi_heads
        self.num_classes = num_classes

    def _check_proposals(self, proposals, images):
        if proposals is None or len(proposals) != len(images):
            got = "none" if proposals is None else f"{len(proposals)} for {len(images)} images"
            raise ValueError(f"proposals: this detector has no RPN and takes external proposals, one (Pi, 4) box "
                             f"tensor per image ({got}); make them with detcore.proposals (selective search or a "
                             f"proposal file), or on the command line pass --proposals selective_search or FILE")
        for i, p in enumerate(proposals):
            if not isinstance(p, torch.Tensor) or p.dim() != 2 or p.shape[-1] != 4:
                raise ValueError(f"proposals[{i}]: expected a (P, 4) tensor, got {getattr(p, 'shape', type(p))}")

    def fuse(self, channels_last=None, winograd=True):
        """Fold the frozen batch norms into the convolutions for inference;
        on the CPU also channels_last weights and Winograd 3x3 convolutions
        (see detcore.models.fuse); returns the model, in eval mode."""
        return fuse(self, channels_last=channels_last, winograd=winograd)

    def forward(self, images, targets=None, proposals=None):
        check_images(images)
        if self.training:
            check_targets(
                targets,
                len(images),
                self.num_classes,
                need_masks=self.roi_heads.has_mask,
                need_keypoints=self.roi_heads.has_keypoint,
            )
        if self.rpn is None:
            self._check_proposals(proposals, images)
        original_sizes = [tuple(int(s) for s in img.shape[-2:]) for img in images]
        batch, targets = self.transform(images, targets)
        features = self.backbone(batch.tensors)
        losses = {}
        if self.rpn is not None:
            proposals, rpn_losses = self.rpn(batch.shape, batch.image_sizes, features, targets)
            losses.update(rpn_losses)
        else:
            proposals = [
                _scale_xy(p.to(batch.tensors.dtype), o, s) for p, o, s in zip(proposals, original_sizes, batch.image_sizes)
            ]
        detections, head_losses = self.roi_heads(features, proposals, batch.image_sizes, targets)
        losses.update(head_losses)
        if self.training:
            return losses
        return self.transform.postprocess(detections, batch.image_sizes, original_sizes)


class FastRCNN(GeneralizedRCNN):
    """A GeneralizedRCNN without an RPN: ``model(images, targets, proposals=...)``
    with one (Pi, 4) box tensor per image in the input image's pixels (selective
    search, a proposal file: see :mod:`detcore.proposals`)."""

    needs_proposals = True

    def __init__(self, transform: Transform, backbone, roi_heads, num_classes: int):
        super().__init__(transform, backbone, None, roi_heads, num_classes)
