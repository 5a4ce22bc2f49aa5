"""The ResNet-C4 two-stage detectors: Faster R-CNN with ResNets (He et al.,
Deep Residual Learning, 2016, Appendix A) and Mask R-CNN's "ResNet-C4"
backbone (He et al., Mask R-CNN, 2017, Figure 4 left), as detectron2's
R50-C4.

- Backbone: the stem and res2..res4 (stride 16). The RPN runs on res4 with
  5 anchor sizes x 3 aspect ratios (32..512, 0.5/1/2: Mask R-CNN Sec. 3.1,
  detectron2's 15 anchors).
- Box head: 14x14 RoI features on res4 (RoIAlign, sampling_ratio 0 and
  aligned=True as detectron2; or Fast R-CNN's RoIPool with ``pooler="pool"``),
  then res5 (first block stride 2, 7x7 out), average pooling, the class and
  box predictors.
- Mask head (Mask R-CNN): on res5's 7x7 map of each foreground RoI, a 2x2
  stride-2 deconv to 14x14 (``mask_width`` channels, 256) and a 1x1 conv to
  one 14x14 mask per class.

``feature_stride=32``: the "ResNet-50-C5, stride 32" variant of the Mask R-CNN
RoIAlign ablation (Table 2d): the backbone runs through res5 and every head
reads the stride-32 res5 map. The paper says that the res5 head is then not
applicable and that it used the head of its Figure 4 (right), the FPN-style
head; so here: 7x7 RoI features -> two fc layers (``representation_size``,
1024) -> predictors, and 14x14 RoI features -> four 3x3 convs (``mask_width``)
-> 2x deconv -> 28x28 masks. The RPN then runs on res5 with the same anchors.

Proposal and sampling defaults are Mask R-CNN's for C4 (Sec. 3.1): 64 RoIs per
image with 1:3 positives to negatives in training, 300 proposals per image at
test time (12000 / 6000 before NMS, 2000 after in training, as Faster R-CNN).
detectron2's R50-C4 samples 512 RoIs and keeps 1000 test proposals:
``box_batch_size_per_image=512 rpn_post_nms_top_n={'training': 2000, 'testing': 1000}``.
"""

from __future__ import annotations

from torch import nn

from .backbones.resnet import DEPTHS, ResNet
from .meta.rcnn import GeneralizedRCNN
from .proposal.anchors import AnchorGenerator
from .proposal.rpn import RPN, RPNHead
from .roi_heads.box_head import BoxPredictor, TwoFCHead
from .roi_heads.mask_head import MaskHead, MaskPredictor
from .roi_heads.poolers import RoIPooler
from .roi_heads.res5_head import Res5Head
from .roi_heads.roi_heads import RoIHeads
from .transform import Transform

FEATURE_STRIDES = (16, 32)


class SingleMapBackbone(nn.Module):
    """A ResNet body that returns one map ("c4" or "c5"). The body sits under
    ``body`` so ImageNet ResNet checkpoints load as into the FPN backbones."""

    def __init__(self, body: ResNet):
        super().__init__()
        self.body = body
        self.out_channels = body.out_channels[0]
        self.strides = body.strides
        self.name = f"c{body.return_stages[0]}"

    def forward(self, x):
        return self.body(x)


def _is_int(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _check(depth, blocks, base_width, feature_stride, representation_size, anchor_sizes, aspect_ratios):
    """ValueError naming the first setting out of range; returns the four blocks counts."""
    if feature_stride not in FEATURE_STRIDES or not _is_int(feature_stride):
        raise ValueError(f"feature_stride: expected 16 (res4, the C4 detectors) or 32 (res5, Mask R-CNN's "
                         f"C5 ablation), got {feature_stride!r}")
    if not _is_int(base_width) or base_width < 1:
        raise ValueError(f"base_width: expected a positive int, got {base_width!r}")
    if blocks is None:
        if depth not in DEPTHS:
            raise ValueError(f"depth: expected one of {sorted(DEPTHS)}, got {depth!r}")
        blocks = DEPTHS[depth]
    if len(blocks) != 4 or not all(_is_int(b) and b >= 1 for b in blocks):
        raise ValueError(f"blocks: expected 4 positive ints (res2..res5), got {blocks!r}")
    if representation_size is not None:
        if feature_stride == 16:
            raise ValueError("representation_size: the C4 box head (res5, then average pooling) has no fc layers; "
                             "only the feature_stride=32 head takes it")
        if not _is_int(representation_size) or representation_size < 1:
            raise ValueError(f"representation_size: expected a positive int, got {representation_size!r}")
    if not anchor_sizes or not all(isinstance(s, (int, float)) and s > 0 for s in anchor_sizes):
        raise ValueError(f"anchor_sizes: expected positive anchor sizes in pixels, got {anchor_sizes!r}")
    if not aspect_ratios or not all(isinstance(r, (int, float)) and r > 0 for r in aspect_ratios):
        raise ValueError(f"aspect_ratios: expected positive height/width ratios, got {aspect_ratios!r}")
    return tuple(blocks)


def two_stage_c4(
    num_classes, depth=50, min_size=800, max_size=1333, trainable_stages=3, base_width=64, blocks=None,
    feature_stride=16, pooler="align", sampling_ratio=0, aligned=True, representation_size=None,
    anchor_sizes=(32, 64, 128, 256, 512), aspect_ratios=(0.5, 1.0, 2.0), rpn_pre_nms_top_n=None,
    rpn_post_nms_top_n=None, rpn_batch_size_per_image=256, box_batch_size_per_image=64,
    box_positive_fraction=0.25, bg_iou_lo=0.0, box_score_thresh=0.05, box_nms_thresh=0.5,
    box_detections_per_img=100, bn_eps=1e-5, mask=False, mask_width=256, mask_threshold=0.5,
    mask_paste_mode="bilinear", roi_sampler="balanced", ohem_nms_thresh=0.7, box_cls_loss_weight=1.0,
    box_reg_loss_weight=1.0, box_reg_at_test=True,
) -> GeneralizedRCNN:
    """Faster R-CNN (``mask=False``) or Mask R-CNN on ResNet-C4 (or C5 with
    ``feature_stride=32``); see the module docstring."""
    blocks = _check(depth, blocks, base_width, feature_stride, representation_size, anchor_sizes, aspect_ratios)
    last = 4 if feature_stride == 16 else 5
    body = ResNet(depth, trainable_stages, (last,), base_width, blocks[: last - 1], bn_eps)
    backbone = SingleMapBackbone(body)
    channels = backbone.out_channels
    anchors = AnchorGenerator((tuple(anchor_sizes),), (tuple(aspect_ratios),))
    rpn = RPN(anchors, RPNHead(channels, anchors.num_anchors_per_location()[0]),
              rpn_pre_nms_top_n or {"training": 12000, "testing": 6000},
              rpn_post_nms_top_n or {"training": 2000, "testing": 300},
              batch_size_per_image=rpn_batch_size_per_image)
    names, strides = [backbone.name], [feature_stride]
    heads = dict(batch_size_per_image=box_batch_size_per_image, positive_fraction=box_positive_fraction,
                 bg_iou_lo=bg_iou_lo, score_thresh=box_score_thresh, nms_thresh=box_nms_thresh,
                 detections_per_img=box_detections_per_img, sampler=roi_sampler, ohem_nms_thresh=ohem_nms_thresh,
                 cls_loss_weight=box_cls_loss_weight, box_reg_loss_weight=box_reg_loss_weight,
                 box_reg_at_test=box_reg_at_test)
    if feature_stride == 16:
        # res5 trains unless the whole network is frozen (it is the last of the stages counted)
        box_head = Res5Head(channels, base_width * 8, blocks[3], trainable_stages >= 1, bn_eps)
        heads.update(box_pooler=RoIPooler(names, strides, 14, pooler, sampling_ratio, aligned), box_head=box_head,
                     box_predictor=BoxPredictor(box_head.out_features, num_classes))
        if mask:
            heads.update(mask_predictor=MaskPredictor(box_head.out_channels, num_classes, mask_width),
                         mask_on_box_features=True)
    else:
        hidden = representation_size or 1024
        heads.update(box_pooler=RoIPooler(names, strides, 7, pooler, sampling_ratio, aligned),
                     box_head=TwoFCHead(channels * 7 * 7, hidden), box_predictor=BoxPredictor(hidden, num_classes))
        if mask:
            heads.update(mask_pooler=RoIPooler(names, strides, 14, pooler, sampling_ratio, aligned),
                         mask_head=MaskHead(channels, 4, mask_width),
                         mask_predictor=MaskPredictor(mask_width, num_classes, mask_width))
    transform = Transform(min_size=min_size, max_size=max_size, mask_threshold=mask_threshold,
                          mask_paste_mode=mask_paste_mode)
    return GeneralizedRCNN(transform, backbone, rpn, RoIHeads(**heads), num_classes)
