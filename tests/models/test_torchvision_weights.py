"""The torchvision checkpoint converter: on state dicts made here in
torchvision's key layouts (current and first-checkpoint names), and, when
torchvision is importable, detections equal to torchvision's on the same
weights."""

import re

import pytest
import torch

import detcore.models as models
from detcore.models.layers import FrozenBatchNorm2d
from tiny_models import build

# detcore key -> torchvision key, in the current ("v2") and the first ("v1") layouts
TO_TV = [
    (r"backbone\.fpn\.lateral\.(\d+)\.(.*)", r"backbone.fpn.inner_blocks.\1.0.\2", r"backbone.fpn.inner_blocks.\1.\2"),
    (r"backbone\.fpn\.output\.(\d+)\.(.*)", r"backbone.fpn.layer_blocks.\1.0.\2", r"backbone.fpn.layer_blocks.\1.\2"),
    (r"backbone\.fpn\.extra_convs\.(.*)", r"backbone.fpn.extra_blocks.\1", None),
    (r"rpn\.head\.conv\.(.*)", r"rpn.head.conv.0.0.\1", r"rpn.head.conv.\1"),
    (r"rpn\.head\.objectness\.(.*)", r"rpn.head.cls_logits.\1", None),
    (r"rpn\.head\.deltas\.(.*)", r"rpn.head.bbox_pred.\1", None),
    (r"roi_heads\.mask_head\.convs\.(\d+)\.(.*)", r"roi_heads.mask_head.\1.0.\2", "mask_fcn"),
    (r"roi_heads\.mask_predictor\.deconv\.(.*)", r"roi_heads.mask_predictor.conv5_mask.\1", None),
    (r"roi_heads\.mask_predictor\.logits\.(.*)", r"roi_heads.mask_predictor.mask_fcn_logits.\1", None),
    (r"roi_heads\.keypoint_head\.convs\.(\d+)\.(.*)", "double", None),
    (r"roi_heads\.keypoint_predictor\.deconv\.(.*)", r"roi_heads.keypoint_predictor.kps_score_lowres.\1", None),
    (r"head\.cls_tower\.(\d+)\.(.*)", r"head.classification_head.conv.\1.0.\2", "double"),
    (r"head\.box_tower\.(\d+)\.(.*)", r"head.regression_head.conv.\1.0.\2", "double"),
    (r"head\.cls_logits\.(.*)", r"head.classification_head.cls_logits.\1", None),
    (r"head\.box_deltas\.(.*)", r"head.regression_head.bbox_reg.\1", None),
]


def to_torchvision_key(key: str, old: bool) -> str:
    for pattern, new_t, old_t in TO_TV:
        m = re.fullmatch(pattern, key)
        if not m:
            continue
        if new_t == "double":  # keypoint head: Sequential(conv, relu, ...) in every version
            return f"roi_heads.keypoint_head.{2 * int(m[1])}.{m[2]}"
        if old and old_t == "mask_fcn":
            return f"roi_heads.mask_head.mask_fcn{int(m[1]) + 1}.{m[2]}"
        if old and old_t == "double":
            return f"{key.split('.')[0]}.{'classification' if 'cls' in key else 'regression'}_head.conv.{2 * int(m[1])}.{m[2]}"
        return m.expand(old_t if old and old_t else new_t)
    return key  # body, box head and predictor keys are the same


def torchvision_state_dict(model, old: bool, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    sd = {}
    for k, v in model.state_dict().items():
        sd[to_torchvision_key(k, old)] = torch.rand(v.shape, generator=g, dtype=v.dtype) + 0.5
        if k.endswith("running_var"):  # torchvision's batch norms carry a counter
            sd[to_torchvision_key(k, old).replace("running_var", "num_batches_tracked")] = torch.tensor(7)
    return sd


@pytest.mark.parametrize("old", [False, True], ids=["current_keys", "first_checkpoint_keys"])
@pytest.mark.parametrize("name", ["mask_rcnn_r50_fpn", "keypoint_rcnn_r50_fpn", "retinanet_r50_fpn", "faster_rcnn_r50_fpn"])
def test_converter_loads_every_tensor(name, old):
    model = build(name)
    sd = torchvision_state_dict(model, old)
    assert set(sd) != set(model.state_dict())  # the layouts really differ
    missing = models.load_torchvision_weights(model, sd)
    assert missing == []
    for k, v in model.state_dict().items():
        assert torch.equal(v, sd[to_torchvision_key(k, old)]), k
    # torchvision's COCO builders run these checkpoints with batch-norm eps 0
    eps = {m.eps for m in model.modules() if isinstance(m, FrozenBatchNorm2d)}
    assert eps == {0.0}
    models.load_torchvision_weights(model, sd, bn_eps=1e-5)
    assert {m.eps for m in model.modules() if isinstance(m, FrozenBatchNorm2d)} == {1e-5}


def test_converter_rejects_bad_checkpoints():
    model = build("faster_rcnn_r50_fpn")
    sd = torchvision_state_dict(model, old=False)
    with pytest.raises(ValueError, match="unknown torchvision key"):
        models.load_torchvision_weights(model, dict(sd, **{"roi_heads.something.weight": torch.zeros(1)}))
    bad = dict(sd)
    bad["roi_heads.box_predictor.cls_score.weight"] = torch.zeros(7, 32)
    with pytest.raises(ValueError, match="cls_score.weight.*shape"):
        models.load_torchvision_weights(model, bad)
    partial = dict(sd)
    del partial["rpn.head.cls_logits.weight"]
    with pytest.raises(ValueError, match="missing"):
        models.load_torchvision_weights(model, partial)
    with pytest.raises(ValueError, match="not a torchvision"):
        models.load_torchvision_weights(model, {"foo": torch.zeros(1)})


def test_imagenet_resnet_loads_into_the_body():
    model = build("retinanet_r50_fpn")
    body = model.backbone.body.state_dict()
    g = torch.Generator().manual_seed(1)
    sd = {k: torch.rand(v.shape, generator=g) for k, v in body.items()}
    sd["fc.weight"], sd["fc.bias"] = torch.zeros(1000, 256), torch.zeros(1000)
    sd["bn1.num_batches_tracked"] = torch.tensor(3)
    missing = models.load_torchvision_weights(model, sd)
    assert missing and all(not k.startswith("backbone.body.") for k in missing)
    for k, v in model.backbone.body.state_dict().items():
        assert torch.equal(v, sd[k]), k
    assert {m.eps for m in model.modules() if isinstance(m, FrozenBatchNorm2d)} == {1e-5}


def test_imagenet_vgg16_loads_into_backbone_and_fc_head():
    model = build("fast_rcnn_vgg16")
    g = torch.Generator().manual_seed(2)
    sd = {k: torch.rand(v.shape, generator=g) for k, v in model.backbone.state_dict().items()}
    fc6, fc7 = model.roi_heads.box_head.fc6, model.roi_heads.box_head.fc7
    sd["classifier.0.weight"], sd["classifier.0.bias"] = torch.rand(fc6.weight.shape), torch.rand(fc6.bias.shape)
    sd["classifier.3.weight"], sd["classifier.3.bias"] = torch.rand(fc7.weight.shape), torch.rand(fc7.bias.shape)
    sd["classifier.6.weight"], sd["classifier.6.bias"] = torch.zeros(1000, fc7.weight.shape[0]), torch.zeros(1000)
    models.load_torchvision_weights(model, sd)
    assert torch.equal(model.backbone.features[0].weight, sd["features.0.weight"])
    assert torch.equal(fc6.weight, sd["classifier.0.weight"]) and torch.equal(fc7.bias, sd["classifier.3.bias"])


@pytest.mark.parametrize("name, tiny", [("rcnn_vgg16", dict(input_size=224)), ("sppnet_vgg16", {})])
def test_imagenet_vgg16_file_initialises_rcnn_and_sppnet(tmp_path, name, tiny):
    """`detcore train --weights vgg16.pth` for R-CNN (conv layers named
    features.*) and SPP-net (whose pyramid makes fc6 another size than the
    classifier's, so fc6 keeps its initialisation)."""
    from detcore.engine.weights import load_initial_weights

    settings = dict(base_width=8, representation_size=32, **tiny)
    model = models.build(name, 4, **settings)
    g = torch.Generator().manual_seed(3)
    convs = [(i, m) for i, m in enumerate(models.build("fast_rcnn_vgg16", 4, base_width=8).backbone.features)
             if isinstance(m, torch.nn.Conv2d)]
    sd = {}
    for i, conv in convs:
        sd[f"features.{i}.weight"] = torch.rand(conv.weight.shape, generator=g)
        sd[f"features.{i}.bias"] = torch.rand(conv.bias.shape, generator=g)
    sd["classifier.0.weight"], sd["classifier.0.bias"] = torch.rand(32, 64 * 7 * 7, generator=g), torch.rand(32)
    sd["classifier.3.weight"], sd["classifier.3.bias"] = torch.rand(32, 32, generator=g), torch.rand(32)
    path = str(tmp_path / "vgg16.pth")
    torch.save(sd, path)
    fc6_before = model.head.fc6.weight.detach().clone()
    message = load_initial_weights(model, path)
    body = model.features if name == "rcnn_vgg16" else model.backbone.features
    for i, _ in convs:
        assert torch.equal(body[i].weight, sd[f"features.{i}.weight"]) and torch.equal(body[i].bias, sd[f"features.{i}.bias"])
    assert torch.equal(model.head.fc7.weight, sd["classifier.3.weight"])
    if name == "rcnn_vgg16":  # 224 -> a 7x7 pool5: the classifier's fc6 fits
        assert torch.equal(model.head.fc6.weight, sd["classifier.0.weight"])
    else:
        assert torch.equal(model.head.fc6.weight, fc6_before) and "head.fc6 differ in size" in message
