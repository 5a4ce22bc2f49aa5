"""The ResNet-C4 detectors (res5 as the RoI head on res4) and their stride-32
C5 variant: the parts where the papers put them, the RoIPool / RoIAlign
switch, ImageNet ResNet weights in torchvision's key names, training and
evaluation through the command, bad settings. (Training and inference of the
tiny models, fusion and the settings' names run in test_detectors.py,
test_fuse.py and test_model_settings.py, which cover every builder.)"""

import json

import numpy as np
import pytest
import torch

import detcore.models as models
from detcore import ops
from detcore.models.roi_heads.res5_head import Res5Head
from tiny_models import TINY, batch, build

BASE = 8  # the tiny models' stem width


def test_c4_parts_are_where_the_papers_put_them():
    model = build("mask_rcnn_r50_c4")
    body = model.backbone.body
    assert not hasattr(body, "layer4") and model.backbone.strides == [16]
    x = torch.rand(1, 3, 64, 96)
    with torch.no_grad():
        features = model.backbone(x)
    assert list(features) == ["c4"] and features["c4"].shape == (1, BASE * 16, 4, 6)
    # 15 anchors per location on the one map: sizes 32..512 x ratios 0.5, 1, 2
    assert model.rpn.anchor_generator.num_anchors_per_location() == [15]
    heads = model.roi_heads
    assert heads.box_pooler.output_size == (14, 14) and heads.box_pooler.level_names == ["c4"]
    assert heads.box_pooler.scales == [1 / 16] and heads.box_pooler.kind == "align"
    assert heads.box_pooler.sampling_ratio == 0 and heads.box_pooler.aligned
    assert isinstance(heads.box_head, Res5Head) and heads.mask_on_box_features
    assert heads.mask_pooler is None and heads.mask_head is None
    pooled = torch.rand(3, BASE * 16, 14, 14)
    with torch.no_grad():
        res5 = heads.box_head.trunk(pooled)
        # res5's first block has stride 2: 14x14 -> 7x7, 2048 channels at full width (here 8x32)
        assert res5.shape == (3, BASE * 32, 7, 7)
        torch.testing.assert_close(heads.box_head(pooled), res5.mean(dim=(2, 3)))
        assert heads.box_predictor.cls_score.in_features == BASE * 32
        # the mask branch: a 2x deconv of the 7x7 map and a 1x1 conv: one 14x14 mask per class
        assert heads.mask_predictor(res5).shape == (3, 4, 14, 14)
    # the paper's C4 sampling: 64 RoIs, 300 test proposals (the tiny config overrides the proposals)
    full = models.build("faster_rcnn_r50_c4", 3)
    assert full.roi_heads.sampler.batch_size == 64 and full.rpn.post_nms_top_n["testing"] == 300
    assert [len(getattr(full.backbone.body, f"layer{i}")) for i in (1, 2, 3)] == [3, 4, 6]
    assert len(full.roi_heads.box_head.res5) == 3 and full.roi_heads.box_head.res5[0].conv2.stride == (2, 2)
    deep = models.build("faster_rcnn_r101_c4", 3)
    assert [len(getattr(deep.backbone.body, f"layer{i}")) for i in (1, 2, 3)] == [3, 4, 23]


def test_trainable_stages_count_res5_as_the_last_stage():
    def trainable(model):
        names = [n for n, p in model.named_parameters() if p.requires_grad]
        return {"res5": any(".res5." in n for n in names), "res4": any(".layer3." in n for n in names),
                "res3": any(".layer2." in n for n in names), "res2": any(".layer1." in n for n in names),
                "stem": "backbone.body.conv1.weight" in names}

    assert trainable(build("faster_rcnn_r50_c4", trainable_stages=0)) == dict.fromkeys(
        ("res5", "res4", "res3", "res2", "stem"), False)
    assert trainable(build("faster_rcnn_r50_c4", trainable_stages=1)) == {
        "res5": True, "res4": False, "res3": False, "res2": False, "stem": False}
    assert trainable(build("faster_rcnn_r50_c4", trainable_stages=3)) == {
        "res5": True, "res4": True, "res3": True, "res2": False, "stem": False}
    assert all(trainable(build("faster_rcnn_r50_c4", trainable_stages=5)).values())
    # the heads' own layers always train
    frozen = build("mask_rcnn_r50_c4", trainable_stages=0)
    assert frozen.rpn.head.conv.weight.requires_grad and frozen.roi_heads.mask_predictor.deconv.weight.requires_grad


def test_stride_32_reads_res5_with_the_fpn_style_head():
    model = build("mask_rcnn_r50_c4", feature_stride=32, representation_size=32)
    assert model.backbone.strides == [32] and hasattr(model.backbone.body, "layer4")
    with torch.no_grad():
        features = model.backbone(torch.rand(1, 3, 64, 96))
    assert list(features) == ["c5"] and features["c5"].shape == (1, BASE * 32, 2, 3)
    heads = model.roi_heads
    assert heads.box_pooler.scales == [1 / 32] and heads.box_pooler.output_size == (7, 7)
    assert heads.mask_pooler.scales == [1 / 32] and heads.mask_pooler.output_size == (14, 14)
    assert heads.box_head.fc6.in_features == BASE * 32 * 49 and heads.box_head.fc6.out_features == 32
    assert not heads.mask_on_box_features and len(heads.mask_head.convs) == 4
    with torch.no_grad():
        masks = heads.mask_predictor(heads.mask_head(torch.rand(2, BASE * 32, 14, 14)))
    assert masks.shape == (2, 4, 28, 28)


@pytest.mark.parametrize("stride", [16, 32])
def test_pooler_switch_pools_as_the_chosen_op(stride):
    extra = {"feature_stride": stride, "representation_size": 16} if stride == 32 else {}
    features = {f"c{4 if stride == 16 else 5}": torch.rand(2, BASE * (16 if stride == 16 else 32), 6, 7)}
    boxes = [torch.tensor([[3.0, 4.0, 50.5, 33.0], [0.0, 0.0, 90.0, 60.0]]), torch.tensor([[10.0, 7.0, 19.0, 40.0]])]
    rois = torch.tensor([[0, 3.0, 4.0, 50.5, 33.0], [0, 0.0, 0.0, 90.0, 60.0], [1, 10.0, 7.0, 19.0, 40.0]])
    size = 14 if stride == 16 else 7
    pooled = {}
    for pooler in ("roi_pool", "roi_align", "pool", "align"):
        model = build("mask_rcnn_r50_c4", pooler=pooler, **extra)
        poolers = [model.roi_heads.box_pooler] + ([model.roi_heads.mask_pooler] if stride == 32 else [])
        assert {p.kind for p in poolers} == {pooler.replace("roi_", "")}
        pooled[pooler] = model.roi_heads.box_pooler(features, boxes)
    (x,) = features.values()
    torch.testing.assert_close(pooled["roi_pool"], ops.roi_pool(x, rois, size, 1 / stride))
    torch.testing.assert_close(pooled["roi_align"], ops.roi_align(x, rois, size, 1 / stride, 0, True))
    torch.testing.assert_close(pooled["pool"], pooled["roi_pool"])
    torch.testing.assert_close(pooled["align"], pooled["roi_align"])
    assert not torch.allclose(pooled["roi_pool"], pooled["roi_align"])


def imagenet_resnet_state_dict(base: int, blocks, generator) -> dict:
    """A torchvision ``resnet50()``-style state dict of a ResNet with stem width
    ``base`` and ``blocks`` per stage, the names written out as torchvision
    has them (fc and num_batches_tracked included), random values of a
    trained network's scale (He-initialised convs, batch norms near identity)."""
    sd = {}

    def conv(name, cout, cin, k):
        sd[name + ".weight"] = torch.randn(cout, cin, k, k, generator=generator) * (1.0 / (cin * k * k)) ** 0.5

    def bn(name, c):
        sd[name + ".weight"] = torch.rand(c, generator=generator) + 0.5
        sd[name + ".bias"] = torch.randn(c, generator=generator) * 0.1
        sd[name + ".running_mean"] = torch.randn(c, generator=generator) * 0.1
        sd[name + ".running_var"] = torch.rand(c, generator=generator) + 0.5
        sd[name + ".num_batches_tracked"] = torch.tensor(7)

    conv("conv1", base, 3, 7)
    bn("bn1", base)
    cin = base
    for stage, n in enumerate(blocks, start=1):
        width = base * 2 ** (stage - 1)
        for b in range(n):
            p = f"layer{stage}.{b}"
            conv(p + ".conv1", width, cin, 1)
            bn(p + ".bn1", width)
            conv(p + ".conv2", width, width, 3)
            bn(p + ".bn2", width)
            conv(p + ".conv3", width * 4, width, 1)
            bn(p + ".bn3", width * 4)
            if b == 0:
                conv(p + ".downsample.0", width * 4, cin, 1)
                bn(p + ".downsample.1", width * 4)
            cin = width * 4
    sd["fc.weight"] = torch.randn(1000, cin, generator=generator)
    sd["fc.bias"] = torch.randn(1000, generator=generator)
    return sd


def expected_c4_key(torchvision_key: str):
    """Where a torchvision ImageNet key lands in a C4 detector (None: not used)."""
    if torchvision_key.startswith("fc.") or torchvision_key.endswith("num_batches_tracked"):
        return None
    if torchvision_key.startswith("layer4."):
        return "roi_heads.box_head.res5." + torchvision_key[len("layer4."):]
    return "backbone.body." + torchvision_key


@pytest.mark.parametrize("stride", [16, 32])
def test_imagenet_resnet_loads_into_backbone_and_res5(stride):
    extra = {"feature_stride": stride, "representation_size": 16} if stride == 32 else {}
    model = build("mask_rcnn_r50_c4", **extra)
    sd = imagenet_resnet_state_dict(BASE, (1, 1, 1, 1), torch.Generator().manual_seed(5))
    missing = models.load_torchvision_weights(model, sd)
    own = model.state_dict()
    for key, value in sd.items():
        target = expected_c4_key(key)
        if stride == 32 and target and target.startswith("roi_heads.box_head.res5."):
            target = key.replace("layer4.", "backbone.body.layer4.", 1)  # C5: res5 is in the backbone
        if target is not None:
            assert torch.equal(own[target], value), key
    # only the RPN and the heads' own layers are left to their initialisation
    assert missing and all(k.startswith(("rpn.", "roi_heads.box_predictor.", "roi_heads.mask_", "roi_heads.box_head.fc"))
                           for k in missing), missing
    assert not any("res5" in k or k.startswith("backbone.") for k in missing)


def test_train_and_eval_through_the_command_with_imagenet_weights(tmp_path):
    """`detcore train --weights resnet.pth` loads the backbone and res5, trains
    a few steps; `detcore eval` reads the checkpoint and writes box and mask AP."""
    from detcore import cli

    weights = tmp_path / "resnet_imagenet.pth"
    sd = imagenet_resnet_state_dict(BASE, (1, 1, 1, 1), torch.Generator().manual_seed(6))
    torch.save(sd, weights)
    out = tmp_path / "run"
    settings = [f"model.{k}={json.dumps(v).replace(' ', '')}" for k, v in TINY["mask_rcnn_r50_c4"].items()
                if k not in ("rpn_pre_nms_top_n", "rpn_post_nms_top_n")]
    threads = torch.get_num_threads()
    try:
        assert cli.main(["train", "--model", "mask_rcnn_r50_c4", "--data", "synthetic:4:2", "-o", str(out),
                         "--weights", str(weights), "max_iter=2", "images_per_batch=2", "warmup_iters=1",
                         "log_period=1", "tensorboard=false", "model.pooler=roi_pool", *settings,
                         "--threads", "1"]) == 0
        start = torch.load(out / "model_final.pth", map_location="cpu", weights_only=True)["model"]
        # the stem and res2 are frozen (trainable_stages 3): still the ImageNet values after training
        assert torch.equal(start["backbone.body.conv1.weight"], sd["conv1.weight"])
        assert torch.equal(start["backbone.body.layer1.0.conv2.weight"], sd["layer1.0.conv2.weight"])
        # res5 trains: it started from layer4 and moved
        assert not torch.equal(start["roi_heads.box_head.res5.0.conv2.weight"], sd["layer4.0.conv2.weight"])
        assert torch.equal(start["roi_heads.box_head.res5.0.bn2.running_var"], sd["layer4.0.bn2.running_var"])
        assert cli.main(["eval", "--weights", str(out / "model_final.pth"), "--data", "synthetic:4:2",
                         "-o", str(tmp_path / "eval"), "--threads", "1"]) == 0
    finally:
        torch.set_num_threads(threads)
    metrics = json.load(open(tmp_path / "eval" / "metrics.json"))
    assert {"AP", "AP50", "AP75"} <= set(metrics["bbox"]) and {"AP", "AP50", "AP75"} <= set(metrics["segm"])


def test_training_runs_res5_once_per_step_for_boxes_and_masks(rng):
    """The C4 mask branch reuses the box branch's res5 map of the foreground RoIs (no second res5 pass)."""
    model = build("mask_rcnn_r50_c4").train()
    calls = []
    model.roi_heads.box_head.res5.register_forward_hook(lambda m, i, o: calls.append(i[0].shape[0]))
    images, targets = batch(rng)
    losses = model(images, targets)
    assert len(calls) == 1 and losses["loss_mask"] > 0
    sum(losses.values()).backward()
    assert model.roi_heads.mask_predictor.deconv.weight.grad.abs().sum() > 0
    assert model.roi_heads.box_head.res5[0].conv1.weight.grad.abs().sum() > 0


@pytest.mark.parametrize("settings, message", [
    ({"feature_stride": 8}, "feature_stride: expected 16 .* or 32"),
    ({"representation_size": 256}, "representation_size: the C4 box head .* has no fc layers"),
    ({"blocks": (1, 1, 1)}, r"blocks: expected 4 positive ints \(res2..res5\)"),
    ({"pooler": "bilinear"}, "pooler: expected 'align' .* or 'pool'"),
    ({"anchor_sizes": ()}, "anchor_sizes: expected positive"),
    ({"aspect_ratios": (1.0, -2.0)}, "aspect_ratios: expected positive"),
    ({"depth": 34}, r"depth: expected one of \[50, 101\]"),
    ({"fpn_channels": 16}, r"model\.fpn_channels: faster_rcnn_r50_c4 does not use this setting"),
    ({"feature_stride": "16"}, r"model\.feature_stride: expected an int"),
])
def test_bad_settings_are_clear_errors(settings, message):
    kw = {"min_size": 64, "max_size": 96}
    if "depth" not in settings:
        kw.update(base_width=BASE, blocks=settings.get("blocks", (1, 1, 1, 1)))
    with pytest.raises(ValueError, match=message):
        models.build("faster_rcnn_r50_c4", 3, **{**kw, **settings})


def test_export_wrapper_gives_the_eager_masks(rng):
    """The export wrapper's C4 mask branch (res5 again on the detections) computes what the eager model does."""
    from detcore.export.wrapper import ExportWrapper

    model = build("mask_rcnn_r50_c4", min_size=96, max_size=160, box_score_thresh=0.0).eval()
    image = torch.tensor(np.random.default_rng(4).uniform(0, 1, (1, 3, 96, 160)), dtype=torch.float32)
    with torch.no_grad():
        boxes, labels, scores, masks = ExportWrapper(model)(image)
        ref = model([image[0]])[0]
    torch.testing.assert_close(boxes, ref["boxes"])
    torch.testing.assert_close(scores, ref["scores"])
    assert boxes.shape[0] > 0 and masks.shape == (boxes.shape[0], 1, 14, 14)
    pasted = ops.paste_masks(masks, boxes, (96, 160), threshold=0.5).reshape(ref["masks"].shape)
    assert (pasted.to(ref["masks"].dtype) == ref["masks"]).float().mean() > 0.999
