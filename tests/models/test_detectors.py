"""Every builder: training forward/backward, eval outputs, negative images,
overfitting one batch, bad input."""

import math

import pytest
import torch

import detcore.models as models
from tiny_models import NUM_CLASSES, NUM_KEYPOINTS, TINY, batch, build, needs_proposals, proposals_for, run

# the tiny r101 builders differ from the r50 ones only in the depth they ignore
R50_NAMES = sorted(n for n in TINY if "r101" not in n)


def test_registry_lists_every_builder():
    assert set(TINY) <= set(models.available())
    with pytest.raises(ValueError, match="name"):
        models.build("no_such_detector", 3)
    with pytest.raises(ValueError, match="num_classes"):
        models.build("faster_rcnn_r50_fpn", 1)
    with pytest.raises(ValueError, match=r"model\.no_such_option: retinanet_r50_fpn does not use this setting"):
        models.build("retinanet_r50_fpn", 3, no_such_option=1)


def test_r101_has_the_resnet101_stages():
    m = models.build("faster_rcnn_r101_fpn", 3, min_size=64, max_size=96)
    assert [len(getattr(m.backbone.body, f"layer{i}")) for i in range(1, 5)] == [3, 4, 23, 3]
    m = models.build("retinanet_r50_fpn", 3, min_size=64, max_size=96)
    assert [len(getattr(m.backbone.body, f"layer{i}")) for i in range(1, 5)] == [3, 4, 6, 3]


def expected_losses(name):
    if name.startswith("retinanet"):
        return {"classification", "bbox_regression"}
    keys = {"loss_classifier", "loss_box_reg"}
    if not needs_proposals(name):
        keys |= {"loss_objectness", "loss_rpn_box_reg"}
    if name.startswith("mask"):
        keys.add("loss_mask")
    if name.startswith("keypoint"):
        keys.add("loss_keypoint")
    return keys


@pytest.mark.parametrize("name", R50_NAMES)
def test_train_forward_backward(name, rng):
    model = build(name).train()
    images, targets = batch(rng)
    losses = run(model, name, images, targets, rng)
    assert set(losses) == expected_losses(name)
    for k, v in losses.items():
        assert v.dim() == 0 and torch.isfinite(v), k
    sum(losses.values()).backward()
    trainable = [p for p in model.parameters() if p.requires_grad]
    assert trainable and all(p.grad is not None for p in trainable[-4:])
    assert any(p.grad.abs().sum() > 0 for p in trainable if p.grad is not None)


@pytest.mark.parametrize("name", R50_NAMES)
def test_eval_outputs_in_image_coordinates(name, rng):
    model = build(name).eval()
    # no score threshold so every builder returns detections from random weights
    for attr in ("score_thresh",):
        for mod in (model, getattr(model, "roi_heads", None)):
            if mod is not None and hasattr(mod, attr):
                setattr(mod, attr, 0.0)
    sizes = ((50, 120), (90, 70))
    images, targets = batch(rng, sizes)
    with torch.no_grad():
        out = run(model, name, images, targets, rng)
    assert len(out) == 2
    for r, (h, w) in zip(out, sizes):
        n = r["boxes"].shape[0]
        assert n > 0
        assert r["boxes"].shape == (n, 4) and r["boxes"].dtype == torch.float32
        assert r["labels"].shape == (n,) and r["labels"].dtype == torch.int64
        assert r["scores"].shape == (n,)
        assert ((r["labels"] >= 0) & (r["labels"] < NUM_CLASSES)).all()
        # boxes are in the input image's pixels, not the resized image's
        b = r["boxes"]
        assert (b[:, 0] >= 0).all() and (b[:, 1] >= 0).all()
        assert (b[:, 2] <= w + 1e-3).all() and (b[:, 3] <= h + 1e-3).all()
        assert (b[:, 2] >= b[:, 0]).all() and (b[:, 3] >= b[:, 1]).all()
        assert (r["scores"][:-1] >= r["scores"][1:]).all() or name.startswith(("faster", "mask", "keypoint", "fast"))
        if name.startswith("mask"):
            assert r["masks"].shape == (n, 1, h, w)
            assert set(r["masks"].unique().tolist()) <= {0.0, 1.0}
        if name.startswith("keypoint"):
            kp = r["keypoints"]
            assert kp.shape == (n, NUM_KEYPOINTS, 3) and r["keypoints_scores"].shape == (n, NUM_KEYPOINTS)
            # each keypoint lies inside (the pixel grid of) its box
            assert (kp[..., 0] >= b[:, None, 0] - 1e-3).all() and (kp[..., 0] <= b[:, None, 2] + 1).all()
            assert (kp[..., 1] >= b[:, None, 1] - 1e-3).all() and (kp[..., 1] <= b[:, None, 3] + 1).all()


@pytest.mark.parametrize("name", R50_NAMES)
def test_negative_images_train(name, rng):
    model = build(name).train()
    images, targets = batch(rng, counts=(0, 0))
    losses = run(model, name, images, targets, rng, proposals=proposals_for(batch(rng)[1], rng))
    for k, v in losses.items():
        assert torch.isfinite(v), k
    sum(losses.values()).backward()
    # one negative and one positive image in a batch also train
    images, targets = batch(rng, counts=(0, 2))
    losses = run(model, name, images, targets, rng)
    sum(losses.values()).backward()


@pytest.mark.parametrize("name", R50_NAMES)
def test_loss_falls_when_overfitting_one_batch(name, rng):
    model = build(name).train()
    images, targets = batch(rng, counts=(2, 1))
    proposals = proposals_for(targets, rng) if needs_proposals(name) else None
    params = [p for p in model.parameters() if p.requires_grad]
    # the keypoint heatmap loss needs a gentler rate; it and the small VGG learn slower
    opt = torch.optim.Adam(params, lr=1e-3 if name.startswith("keypoint") else 5e-3)
    history = []
    for _ in range(40 if name.startswith(("keypoint", "fast_rcnn")) else 25):
        losses = run(model, name, images, targets, rng, proposals=proposals)
        total = sum(losses.values())
        opt.zero_grad()
        total.backward()
        torch.nn.utils.clip_grad_norm_(params, 5.0)
        opt.step()
        history.append(total.item())
    assert all(math.isfinite(h) for h in history)
    # the median resists the spikes that a changing RoI sample gives the small heads
    assert sorted(history[-5:])[2] < 0.85 * sum(history[:3]) / 3, [round(h, 2) for h in history]


BAD_CASES = [
    ("image not 3 channels", lambda im, t: ([im[0], im[1][:1]], t), r"images\[1\]"),
    ("image not float", lambda im, t: ([im[0], (im[1] * 255).to(torch.uint8)], t), r"images\[1\].*float"),
    ("image 2-d", lambda im, t: ([im[0][0], im[1]], t), r"images\[0\]"),
    ("x2 < x1", lambda im, t: (im, [t[0], dict(t[1], boxes=t[1]["boxes"][:, [2, 1, 0, 3]])]), r"targets\[1\]\['boxes'\]"),
    ("zero-width box", lambda im, t: (im, [dict(t[0], boxes=t[0]["boxes"][:, [0, 1, 0, 3]]), t[1]]), r"targets\[0\]\['boxes'\]"),
    ("label out of range", lambda im, t: (im, [dict(t[0], labels=t[0]["labels"] + NUM_CLASSES), t[1]]), r"targets\[0\]\['labels'\]"),
    ("label background", lambda im, t: (im, [dict(t[0], labels=t[0]["labels"] * 0), t[1]]), r"targets\[0\]\['labels'\]"),
    ("labels count", lambda im, t: (im, [dict(t[0], labels=t[0]["labels"][:1]), t[1]]), r"targets\[0\]\['labels'\]"),
    ("masks count", lambda im, t: (im, [t[0], dict(t[1], masks=t[1]["masks"].repeat(2, 1, 1))]), r"targets\[1\]\['masks'\]"),
    ("keypoints count", lambda im, t: (im, [dict(t[0], keypoints=t[0]["keypoints"][:1]), t[1]]), r"targets\[0\]\['keypoints'\]"),
    ("missing boxes", lambda im, t: (im, [t[0], {"labels": t[1]["labels"]}]), r"targets\[1\]\['boxes'\]"),
]


@pytest.mark.parametrize("case", BAD_CASES, ids=[c[0] for c in BAD_CASES])
@pytest.mark.parametrize("name", ["mask_rcnn_r50_fpn", "keypoint_rcnn_r50_fpn", "retinanet_r50_fpn", "fast_rcnn_vgg16"])
def test_bad_input_names_image_and_field(name, case, rng):
    label, mutate, pattern = case
    if "masks" in label and not name.startswith("mask") or "keypoints" in label and not name.startswith("keypoint"):
        pytest.skip("field not used by this detector")
    model = build(name).train()
    images, targets = batch(rng, counts=(2, 2))
    images, targets = mutate(images, targets)
    with pytest.raises(ValueError, match=pattern):
        run(model, name, images, targets, rng, proposals=proposals_for(batch(rng)[1], rng))
    if label.startswith("image"):
        with pytest.raises(ValueError, match=pattern):
            run(model.eval(), name, images, None, rng, proposals=proposals_for(batch(rng)[1], rng))


def test_fast_rcnn_needs_proposals(rng):
    model = build("fast_rcnn_vgg16").eval()
    images, _ = batch(rng)
    with pytest.raises(ValueError, match="proposals"):
        model(images)
    with pytest.raises(ValueError, match=r"proposals\[1\]"):
        model(images, proposals=[torch.zeros(3, 4), torch.zeros(3, 5)])


@pytest.mark.parametrize("name", ["mask_rcnn_r50_fpn", "keypoint_rcnn_r50_fpn", "fast_rcnn_vgg16"])
def test_no_detections_and_no_proposals(name, rng):
    model = build(name).eval()
    model.roi_heads.score_thresh = 1.0  # nothing passes
    images, targets = batch(rng)
    with torch.no_grad():
        out = run(model, name, images, targets, rng, proposals=[torch.zeros(0, 4), torch.zeros(0, 4)])
    for r, img in zip(out, images):
        assert r["boxes"].shape == (0, 4) and r["scores"].shape == (0,) and r["labels"].shape == (0,)
        if "masks" in r:
            assert r["masks"].shape == (0, 1) + tuple(img.shape[-2:])
        if "keypoints" in r:
            assert r["keypoints"].shape == (0, NUM_KEYPOINTS, 3)
    if needs_proposals(name):  # training with no proposals: the ground truth is still sampled
        losses = run(model.train(), name, images, targets, rng, proposals=[torch.zeros(0, 4), torch.zeros(0, 4)])
        sum(losses.values()).backward()


@pytest.mark.cuda
@pytest.mark.parametrize("name", R50_NAMES)
def test_cuda_train_and_eval(name, rng):
    model = build(name).cuda().train()
    images, targets = batch(rng)
    proposals = [p.cuda() for p in proposals_for(targets, rng)]
    images = [im.cuda() for im in images]
    targets = [{k: v.cuda() for k, v in t.items()} for t in targets]
    losses = run(model, name, images, targets, rng, proposals=proposals)
    sum(losses.values()).backward()
    assert all(torch.isfinite(v) for v in losses.values())
    model.eval()
    with torch.no_grad():
        out = run(model, name, images, None, rng, proposals=proposals)
    for r in out:
        assert all(v.device.type == "cuda" for v in r.values())


@pytest.mark.parametrize("overrides", [{"pooler": "pool"}, {"aligned": True, "sampling_ratio": 0}])
def test_roi_pooling_switches(overrides, rng):
    model = build("mask_rcnn_r50_fpn", **overrides).train()
    assert model.roi_heads.box_pooler.kind == overrides.get("pooler", "align")
    assert model.roi_heads.mask_pooler.aligned == overrides.get("aligned", False)
    images, targets = batch(rng)
    sum(model(images, targets).values()).backward()
    with torch.no_grad():
        out = model.eval()(images)
    assert out[0]["masks"].shape[-2:] == images[0].shape[-2:]


def test_paper_settings_of_the_builders():
    fast = models.build("fast_rcnn_vgg16", 21)
    assert fast.rpn is None and fast.roi_heads.box_pooler.kind == "pool"
    assert fast.roi_heads.matcher.ignore_below == 0.1  # background IoU in [0.1, 0.5)
    assert fast.roi_heads.box_coder.weights == (10.0, 10.0, 5.0, 5.0)
    faster = build("faster_rcnn_vgg16")
    assert faster.rpn.anchor_generator.num_anchors_per_location() == [9]
    r = build("retinanet_r50_fpn")
    assert r.anchor_generator.num_anchors_per_location() == [9] * 5
    assert r.backbone.fpn.level_names == ["p3", "p4", "p5", "p6", "p7"]
    torch.testing.assert_close(r.head.cls_logits.bias, torch.full_like(r.head.cls_logits.bias, -math.log(99)))
    f = build("faster_rcnn_r50_fpn")
    assert f.backbone.fpn.level_names == ["p2", "p3", "p4", "p5", "p6"]
    assert f.rpn.matcher.high == 0.7 and f.rpn.matcher.low == 0.3 and f.rpn.nms_thresh == 0.7
    assert f.rpn.sampler.batch_size == 256 and f.rpn.sampler.positive_fraction == 0.5
    assert f.roi_heads.sampler.batch_size == 64 and f.roi_heads.sampler.positive_fraction == 0.25  # tiny override
    assert models.build("faster_rcnn_r50_fpn", 3).roi_heads.sampler.batch_size == 512


def test_rpn_proposals_are_top_n_inside_the_image(rng):
    model = build("faster_rcnn_r50_fpn").eval()
    images, _ = batch(rng)
    batch_, _ = model.transform(images)
    with torch.no_grad():
        feats = model.backbone(batch_.tensors)
        proposals, losses = model.rpn(batch_.shape, batch_.image_sizes, feats)
    assert losses == {}
    for p, (h, w) in zip(proposals, batch_.image_sizes):
        assert 0 < p.shape[0] <= model.rpn.post_nms_top_n["testing"]
        assert (p[:, 0] >= 0).all() and (p[:, 2] <= w).all() and (p[:, 1] >= 0).all() and (p[:, 3] <= h).all()
