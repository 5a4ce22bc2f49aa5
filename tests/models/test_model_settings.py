"""Model settings: declared per builder with one-line descriptions, unused or
mistyped ones refused, the same tiny-model names in every builder; initial
weights (``--weights``) that load all but the class-specific layers."""

import pytest
import torch

import detcore.models as models
from detcore.models.builders import model_settings
from detcore.models.setting_help import MODEL_SETTING_HELP
from test_torchvision_weights import torchvision_state_dict
from classic_data import RCNN_TINY, SPP_TINY
from test_overfeat import TINY as OVERFEAT_TINY
from tiny_models import TINY, build

# every builder's tiny configuration
ALL_TINY = {**TINY, "rcnn_vgg16": RCNN_TINY, "sppnet_vgg16": SPP_TINY, "overfeat": OVERFEAT_TINY}

# the names that make any detector small, whatever its family
COMMON_TINY = dict(base_width=8, trainable_stages=5, min_size=64, max_size=96)


def test_every_setting_is_described():
    for name in models.available():
        settings = model_settings(name)
        assert settings, name
        assert not [k for k in settings if not MODEL_SETTING_HELP.get(k)], name


def test_a_setting_the_model_does_not_use_is_an_error():
    with pytest.raises(ValueError, match=r"model\.mask_width: faster_rcnn_r50_fpn does not use this setting "
                                         r"\(a setting of mask_rcnn"):
        models.build("faster_rcnn_r50_fpn", 3, mask_width=16)
    with pytest.raises(ValueError, match=r"model\.rpn_pre_nms_top_n: fast_rcnn_vgg16 does not use"):
        models.build("fast_rcnn_vgg16", 3, rpn_pre_nms_top_n={"training": 10, "testing": 5})
    with pytest.raises(ValueError, match=r"model\.base_width: expected an int, got 'abc'"):
        models.build("retinanet_r50_fpn", 3, base_width="abc")
    with pytest.raises(ValueError, match=r"model\.min_size: expected an int or a tuple of ints"):
        models.build("mask_rcnn_r50_fpn", 3, min_size="big")


def test_the_tiny_settings_have_the_same_names_in_every_builder():
    for name in models.available():
        common = set(COMMON_TINY)
        if name == "rcnn_vgg16":  # warps each region from the original image: no image resize to set
            common -= {"min_size", "max_size"}
        assert common <= set(model_settings(name)), name
        assert set(ALL_TINY[name]) <= set(model_settings(name)), name
    for name in ("faster_rcnn_r50_fpn", "retinanet_r50_fpn"):
        assert {"blocks", "fpn_channels"} <= set(model_settings(name))
    for name in ("faster_rcnn_r50_fpn", "fast_rcnn_vgg16"):
        assert "representation_size" in model_settings(name)


def test_vgg_base_width_and_trainable_stages():
    model = models.build("faster_rcnn_vgg16", 3, base_width=8, trainable_stages=3, representation_size=32,
                         min_size=64, max_size=96)
    convs = [m for m in model.backbone.features if isinstance(m, torch.nn.Conv2d)]
    assert [c.out_channels for c in convs][:3] == [8, 8, 16] and convs[-1].out_channels == 64
    # three trainable stages: conv3_1 on; conv1_x and conv2_x (four convs) frozen, as the papers
    assert [c.weight.requires_grad for c in convs] == [False] * 4 + [True] * 9
    assert all(c.weight.requires_grad for c in [m for m in build("fast_rcnn_vgg16").backbone.features
                                                 if isinstance(m, torch.nn.Conv2d)])
    with pytest.raises(ValueError, match="base_width: expected a divisor of 64"):
        models.build("fast_rcnn_vgg16", 3, base_width=48)


def test_initial_weights_skip_only_the_class_specific_layers(tmp_path):
    from detcore.engine import CheckpointError, save_checkpoint
    from detcore.engine.weights import load_initial_weights

    source = build("mask_rcnn_r50_fpn")  # 4 classes
    path = save_checkpoint(str(tmp_path / "coco.pth"), model=source, meta={"model": "mask_rcnn_r50_fpn"})
    target = models.build("mask_rcnn_r50_fpn", 7, **TINY["mask_rcnn_r50_fpn"])
    fresh = {k: v.clone() for k, v in target.state_dict().items()}
    message = load_initial_weights(target, path)
    assert "the class-specific layers roi_heads.box_predictor.bbox_pred, roi_heads.box_predictor.cls_score, " \
           "roi_heads.mask_predictor.logits differ in size (the checkpoint has 4 classes, the model 7)" in message
    for key, value in target.state_dict().items():
        expected = fresh[key] if value.shape != source.state_dict()[key].shape else source.state_dict()[key]
        assert torch.equal(value, expected), key
    # any other mismatch is an error, and nothing is loaded
    other = models.build("mask_rcnn_r50_fpn", 4, **dict(TINY["mask_rcnn_r50_fpn"], fpn_channels=8))
    before = {k: v.clone() for k, v in other.state_dict().items()}
    with pytest.raises(CheckpointError, match="does not fit this model: .* shape mismatches"):
        load_initial_weights(other, path)
    assert all(torch.equal(v, before[k]) for k, v in other.state_dict().items())


def test_initial_weights_from_a_torchvision_detection_checkpoint(tmp_path):
    from detcore.engine.weights import load_initial_weights

    source = build("faster_rcnn_r50_fpn")
    torch.save(torchvision_state_dict(source, old=False), tmp_path / "tv.pth")
    target = models.build("faster_rcnn_r50_fpn", 3, **TINY["faster_rcnn_r50_fpn"])
    message = load_initial_weights(target, str(tmp_path / "tv.pth"))
    assert "torchvision detection checkpoint" in message and "the checkpoint has 4 classes, the model 3" in message
    tv = torchvision_state_dict(source, old=False)
    assert torch.equal(target.state_dict()["backbone.body.conv1.weight"], tv["backbone.body.conv1.weight"])
    assert torch.equal(target.state_dict()["rpn.head.objectness.weight"], tv["rpn.head.cls_logits.weight"])


def test_train_list_settings_shows_the_model_settings(capsys):
    from detcore import cli

    assert cli.main(["train", "--model", "faster_rcnn_r50_fpn", "--list-settings"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert "model.fpn_channels = 256  # FPN output channels (256 in the papers)" in lines
    assert not any(line.startswith("model.mask_width") for line in lines)
    training = [line for line in lines if not line.startswith(("#", "model."))]
    assert any(line.startswith("eval_period = 0  # evaluate on --val-data") for line in training)
    assert all(line.split("#", 1)[1].strip() for line in training)
