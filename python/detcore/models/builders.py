"""`build(name, num_classes, **overrides)`: the detectors by name.

Overrides are the model's settings (`model_settings(name)`, listed by
`detcore train --model NAME --list-settings`): e.g. `min_size`, `max_size`,
`trainable_stages`, `pooler="pool"`. A setting the model does not use is an
error. The same names mean the same thing in every builder; the widths
`base_width` (every backbone), `blocks` and `fpn_channels` (ResNet-FPN) and
`representation_size` (box heads) make tiny models for tests."""

from __future__ import annotations

import inspect

from .backbones.fpn import FPN, BackboneWithFPN
from .backbones.resnet import ResNet
from .backbones.vgg import vgg16_body
from .meta.rcnn import FastRCNN, GeneralizedRCNN
from .meta.retinanet import RetinaNet, RetinaNetHead
from .proposal.anchors import AnchorGenerator
from .proposal.rpn import RPN, RPNHead
from .resnet_c4 import two_stage_c4
from .roi_heads.box_head import BoxPredictor, TwoFCHead
from .roi_heads.keypoint_head import KeypointHead, KeypointPredictor
from .roi_heads.mask_head import MaskHead, MaskPredictor
from .roi_heads.poolers import RoIPooler
from .roi_heads.roi_heads import RoIHeads
from .transform import Transform

_REGISTRY = {}
_SETTINGS = {}  # name -> {setting: default}, or None where the builder takes **kwargs unchecked


def keyword_defaults(fn, drop=()) -> dict:
    """The keyword parameters of ``fn`` with their defaults (``num_classes`` and ``drop`` left out)."""
    return {k: p.default for k, p in inspect.signature(fn).parameters.items()
            if p.default is not inspect.Parameter.empty and k not in drop and not k.startswith("_")}


def register(name, settings=None):
    """Registers a builder ``fn(num_classes, **settings)``. ``settings`` (a dict
    of defaults) lists what the model takes; by default the builder's keyword
    parameters, unchecked when it takes ``**kwargs``."""
    def deco(fn):
        _REGISTRY[name] = fn
        if settings is not None:
            _SETTINGS[name] = dict(settings)
        elif any(p.kind is inspect.Parameter.VAR_KEYWORD for p in inspect.signature(fn).parameters.values()):
            _SETTINGS[name] = None
        else:
            _SETTINGS[name] = keyword_defaults(fn)
        return fn

    return deco


def available():
    """Names accepted by `build`."""
    return sorted(_REGISTRY)


def model_settings(name: str):
    """``{setting: default}`` of model ``name`` (None when its builder does not declare them)."""
    if name not in _REGISTRY:
        raise ValueError(f"name: expected one of {available()}, got {name!r}")
    settings = _SETTINGS[name]
    return None if settings is None else dict(settings)


def check_settings(name: str, overrides: dict) -> None:
    """ValueError naming the first setting ``name`` does not use, or whose value has the wrong type."""
    settings = model_settings(name)
    if settings is None:
        return
    for key, value in overrides.items():
        if key not in settings:
            users = [other for other, s in _SETTINGS.items() if s and key in s]
            where = f" (a setting of {', '.join(users[:3])}{', ...' if len(users) > 3 else ''})" if users else ""
            raise ValueError(f"model.{key}: {name} does not use this setting{where}; its settings are "
                             f"{', '.join(sorted(settings))}")
        problem = _type_problem(key, value, settings[key])
        if problem:
            raise ValueError(f"model.{key}: expected {problem}, got {value!r}")


def _type_problem(key, value, default):
    """What ``value`` should have been, or None when it fits ``default``'s type."""
    def is_int(v):
        return isinstance(v, int) and not isinstance(v, bool)

    if key == "min_size":  # one size, or several for multi-scale training
        ok = is_int(value) or (isinstance(value, (list, tuple)) and value and all(is_int(v) for v in value))
        return None if ok else "an int or a tuple of ints"
    if default is None:
        return None
    if isinstance(default, bool):
        return None if isinstance(value, bool) else "true or false"
    if is_int(default):
        return None if is_int(value) else "an int"
    if isinstance(default, float):
        return None if (is_int(value) or isinstance(value, float)) else "a number"
    if isinstance(default, str):
        return None if isinstance(value, str) else "a string"
    if isinstance(default, (tuple, list)):
        return None if isinstance(value, (tuple, list)) else "a tuple"
    if isinstance(default, dict):
        return None if isinstance(value, dict) else "a dict"
    return None


def build(name: str, num_classes: int, **overrides):
    """Build detector `name` with `num_classes` classes (background included,
    as torchvision: COCO is 91). Randomly initialised; load weights with
    `load_state_dict` or `load_torchvision_weights`."""
    if name not in _REGISTRY:
        raise ValueError(f"name: expected one of {available()}, got {name!r}")
    if not isinstance(num_classes, int) or num_classes < 2:
        raise ValueError(f"num_classes: expected an int >= 2 (background included), got {num_classes!r}")
    check_settings(name, overrides)
    try:
        return _REGISTRY[name](num_classes=num_classes, **overrides)
    except TypeError as e:
        if "unexpected keyword argument" in str(e):
            raise ValueError(f"overrides: {name} does not take {str(e).split('argument')[-1].strip()}") from None
        raise


def _transform(min_size, max_size, mask_threshold=0.5, mask_paste_mode="bilinear"):
    return Transform(min_size=min_size, max_size=max_size, mask_threshold=mask_threshold,
                     mask_paste_mode=mask_paste_mode)


def resnet_fpn_backbone(
    depth=50, trainable_stages=3, stages=(2, 3, 4, 5), extra="maxpool", base_width=64, blocks=None,
    fpn_channels=256, bn_eps=1e-5,
):
    body = ResNet(depth, trainable_stages, stages, base_width, blocks, bn_eps)
    fpn = FPN(body.out_channels, fpn_channels, body.strides, extra)
    return BackboneWithFPN(body, fpn)


def _box_loss_switches(box_cls_loss_weight, box_reg_loss_weight, box_reg_at_test) -> dict:
    """The RoI heads' multi-task switches from the builders' settings (the same in every two-stage builder)."""
    return dict(cls_loss_weight=box_cls_loss_weight, box_reg_loss_weight=box_reg_loss_weight,
                box_reg_at_test=box_reg_at_test)


def _rpn(channels, anchor_sizes, aspect_ratios, pre_nms_top_n, post_nms_top_n, nms_thresh=0.7, **kw):
    anchors = AnchorGenerator(anchor_sizes, aspect_ratios)
    head = RPNHead(channels, anchors.num_anchors_per_location()[0])
    return RPN(anchors, head, pre_nms_top_n, post_nms_top_n, nms_thresh, **kw)


def _two_stage_fpn(
    num_classes, depth=50, min_size=800, max_size=1333, trainable_stages=3, base_width=64, blocks=None,
    fpn_channels=256, representation_size=1024, pooler="align", sampling_ratio=2, aligned=False,
    rpn_pre_nms_top_n=None, rpn_post_nms_top_n=None, rpn_batch_size_per_image=256,
    box_batch_size_per_image=512, box_positive_fraction=0.25, bg_iou_lo=0.0, box_score_thresh=0.05,
    box_nms_thresh=0.5, box_detections_per_img=100, bn_eps=1e-5, mask=False, mask_width=256,
    keypoints=0, keypoint_width=512, mask_threshold=0.5, mask_paste_mode="bilinear", roi_sampler="balanced",
    ohem_nms_thresh=0.7, box_cls_loss_weight=1.0, box_reg_loss_weight=1.0, box_reg_at_test=True,
):
    backbone = resnet_fpn_backbone(depth, trainable_stages, (2, 3, 4, 5), "maxpool", base_width, blocks, fpn_channels, bn_eps)
    rpn = _rpn(
        fpn_channels, ((32,), (64,), (128,), (256,), (512,)), ((0.5, 1.0, 2.0),) * 5,
        rpn_pre_nms_top_n, rpn_post_nms_top_n, batch_size_per_image=rpn_batch_size_per_image,
    )
    names, strides = ["p2", "p3", "p4", "p5"], [4, 8, 16, 32]
    box_head = TwoFCHead(fpn_channels * 7 * 7, representation_size)
    heads = dict(
        box_pooler=RoIPooler(names, strides, 7, pooler, sampling_ratio, aligned),
        box_head=box_head,
        box_predictor=BoxPredictor(representation_size, num_classes),
        batch_size_per_image=box_batch_size_per_image,
        positive_fraction=box_positive_fraction,
        bg_iou_lo=bg_iou_lo,
        score_thresh=box_score_thresh,
        nms_thresh=box_nms_thresh,
        detections_per_img=box_detections_per_img,
        sampler=roi_sampler,
        ohem_nms_thresh=ohem_nms_thresh,
        **_box_loss_switches(box_cls_loss_weight, box_reg_loss_weight, box_reg_at_test),
    )
    if mask:
        heads.update(
            mask_pooler=RoIPooler(names, strides, 14, pooler, sampling_ratio, aligned),
            mask_head=MaskHead(fpn_channels, 4, mask_width),
            mask_predictor=MaskPredictor(mask_width, num_classes, mask_width),
        )
    if keypoints:
        heads.update(
            keypoint_pooler=RoIPooler(names, strides, 14, pooler, sampling_ratio, aligned),
            keypoint_head=KeypointHead(fpn_channels, 8, keypoint_width),
            keypoint_predictor=KeypointPredictor(keypoint_width, keypoints),
        )
    return GeneralizedRCNN(
        _transform(min_size, max_size, mask_threshold, mask_paste_mode), backbone, rpn, RoIHeads(**heads), num_classes
    )


_MASK_KEYS = ("mask_width", "mask_threshold", "mask_paste_mode")
_KEYPOINT_KEYS = ("keypoint_width",)
_FPN_RCNN = keyword_defaults(_two_stage_fpn, drop=("mask", "keypoints") + _MASK_KEYS + _KEYPOINT_KEYS)
_FPN_MASK = {**_FPN_RCNN, **{k: v for k, v in keyword_defaults(_two_stage_fpn).items() if k in _MASK_KEYS}}
_KEYPOINT_MIN_SIZE = (640, 672, 704, 736, 768, 800)
_FPN_KEYPOINT = {**_FPN_RCNN, "min_size": _KEYPOINT_MIN_SIZE, "num_keypoints": 17, "keypoint_width": 512}
_RETINA_HEAD = keyword_defaults(RetinaNet.__init__)


def _retina(num_classes, depth=50, min_size=800, max_size=1333, trainable_stages=3, base_width=64,
            blocks=None, fpn_channels=256, bn_eps=1e-5, **kw):
    backbone = resnet_fpn_backbone(depth, trainable_stages, (3, 4, 5), "p6p7", base_width, blocks, fpn_channels, bn_eps)
    sizes = tuple((x, int(x * 2 ** (1.0 / 3)), int(x * 2 ** (2.0 / 3))) for x in (32, 64, 128, 256, 512))
    anchors = AnchorGenerator(sizes, ((0.5, 1.0, 2.0),) * 5)
    head = RetinaNetHead(fpn_channels, anchors.num_anchors_per_location()[0], num_classes)
    return RetinaNet(_transform(min_size, max_size), backbone, anchors, head, num_classes, **kw)


for _depth in (50, 101):

    @register(f"faster_rcnn_r{_depth}_fpn", settings={**_FPN_RCNN, "depth": _depth})
    def _faster(num_classes, _d=_depth, **kw):
        kw.setdefault("depth", _d)
        return _two_stage_fpn(num_classes, **kw)

    @register(f"mask_rcnn_r{_depth}_fpn", settings={**_FPN_MASK, "depth": _depth})
    def _mask(num_classes, _d=_depth, **kw):
        kw.setdefault("depth", _d)
        return _two_stage_fpn(num_classes, mask=True, **kw)

    @register(f"keypoint_rcnn_r{_depth}_fpn", settings={**_FPN_KEYPOINT, "depth": _depth})
    def _keypoint(num_classes, _d=_depth, num_keypoints=17, **kw):
        kw.setdefault("depth", _d)
        kw.setdefault("min_size", _KEYPOINT_MIN_SIZE)
        return _two_stage_fpn(num_classes, keypoints=num_keypoints, **kw)

    @register(f"retinanet_r{_depth}_fpn", settings={**keyword_defaults(_retina), "depth": _depth, **_RETINA_HEAD})
    def _retina_depth(num_classes, _d=_depth, **kw):
        kw.setdefault("depth", _d)
        return _retina(num_classes, **kw)


# ResNet-C4 Faster / Mask R-CNN (res5 as the RoI head); feature_stride=32: Mask R-CNN's C5 ablation
_C4_RCNN = keyword_defaults(two_stage_c4, drop=("mask",) + _MASK_KEYS)
_C4_MASK = {**_C4_RCNN, **{k: v for k, v in keyword_defaults(two_stage_c4).items() if k in _MASK_KEYS}}

for _depth in (50, 101):

    @register(f"faster_rcnn_r{_depth}_c4", settings={**_C4_RCNN, "depth": _depth})
    def _faster_c4(num_classes, _d=_depth, **kw):
        kw.setdefault("depth", _d)
        return two_stage_c4(num_classes, **kw)

    @register(f"mask_rcnn_r{_depth}_c4", settings={**_C4_MASK, "depth": _depth})
    def _mask_c4(num_classes, _d=_depth, **kw):
        kw.setdefault("depth", _d)
        return two_stage_c4(num_classes, mask=True, **kw)


def _vgg16(
    num_classes, with_rpn, min_size=600, max_size=1000, base_width=64, trainable_stages=3, representation_size=4096,
    pooler="pool", sampling_ratio=2, aligned=False, bg_iou_lo=None, box_batch_size_per_image=512,
    rpn_pre_nms_top_n=None, rpn_post_nms_top_n=None, box_score_thresh=0.05, box_nms_thresh=0.3,
    box_detections_per_img=100, dropout=0.5, svd_ranks=(), roi_sampler="balanced", ohem_nms_thresh=0.7,
    box_cls_loss_weight=1.0, box_reg_loss_weight=1.0, box_reg_at_test=True,
):
    backbone = vgg16_body(base_width, trainable_stages)
    c = backbone.out_channels
    rpn = None
    if with_rpn:
        rpn = _rpn(
            c, ((128, 256, 512),), ((0.5, 1.0, 2.0),),
            rpn_pre_nms_top_n or {"training": 12000, "testing": 6000},
            rpn_post_nms_top_n or {"training": 2000, "testing": 300},
        )
    heads = RoIHeads(
        RoIPooler(["c5"], [16], 7, pooler, sampling_ratio, aligned),
        TwoFCHead(c * 7 * 7, representation_size, dropout, svd_ranks),
        BoxPredictor(representation_size, num_classes),
        batch_size_per_image=box_batch_size_per_image,
        # Fast R-CNN: background IoU in [0.1, 0.5); Faster R-CNN: [0, 0.5)
        bg_iou_lo=(0.0 if with_rpn else 0.1) if bg_iou_lo is None else bg_iou_lo,
        score_thresh=box_score_thresh,
        nms_thresh=box_nms_thresh,
        detections_per_img=box_detections_per_img,
        sampler=roi_sampler,
        ohem_nms_thresh=ohem_nms_thresh,
        **_box_loss_switches(box_cls_loss_weight, box_reg_loss_weight, box_reg_at_test),
    )
    transform = Transform(min_size, max_size, image_mean=(0.485, 0.456, 0.406), image_std=(0.229, 0.224, 0.225))
    if rpn is None:
        return FastRCNN(transform, backbone, heads, num_classes)
    return GeneralizedRCNN(transform, backbone, rpn, heads, num_classes)


_VGG = keyword_defaults(_vgg16, drop=("with_rpn",))


@register("fast_rcnn_vgg16", settings={k: v for k, v in _VGG.items() if not k.startswith("rpn_")})
def _fast_vgg(num_classes, **kw):
    return _vgg16(num_classes, with_rpn=False, **kw)


@register("faster_rcnn_vgg16", settings=_VGG)
def _faster_vgg(num_classes, **kw):
    return _vgg16(num_classes, with_rpn=True, **kw)


def _region_settings(cls, drop=()):
    """The settings of an R-CNN-style region detector: its own and RegionDetector's."""
    from .classic.base import RegionDetector

    return {**keyword_defaults(RegionDetector.__init__, drop=("self", "pool5_features", *drop)),
            **keyword_defaults(cls.__init__, drop=("self",))}


def _rcnn_settings():
    from .classic.rcnn import RCNN

    return _region_settings(RCNN)


def _sppnet_settings():
    from .classic.sppnet import SPPNet

    return _region_settings(SPPNet)


def _overfeat_settings():
    from .meta.overfeat import OverFeat, OverFeatHead, build_overfeat

    return {**keyword_defaults(OverFeatHead.__init__, drop=("self", "in_channels")),
            **keyword_defaults(OverFeat.__init__, drop=("self",)), **keyword_defaults(build_overfeat)}


@register("rcnn_vgg16", settings=_rcnn_settings())
def _rcnn_vgg(num_classes, **kw):
    from .classic.rcnn import RCNN

    return RCNN(num_classes, **kw)


@register("sppnet_vgg16", settings=_sppnet_settings())
def _sppnet_vgg(num_classes, **kw):
    from .classic.sppnet import SPPNet

    return SPPNet(num_classes, **kw)


@register("overfeat", settings=_overfeat_settings())
def _overfeat(num_classes, **kw):
    from .meta.overfeat import build_overfeat

    return build_overfeat(num_classes, **kw)
