"""The box head's multi-task switches (Fast R-CNN, Table 6): the loss weights,
box regression off at test, and the post-hoc regressor stage (train_only)."""

import copy

import numpy as np
import pytest
import torch

from detcore import models
from detcore.models.roi_heads.box_head import box_loss
from tiny_models import NUM_CLASSES, TINY, batch, build, proposals_for

@pytest.fixture(scope="module")
def tiny_train_set(tmp_path_factory):
    from detcore.data import CocoDetection, SyntheticSpec, make_synthetic_dataset

    spec = SyntheticSpec(num_train=4, num_val=1, image_size=(48, 64), object_size=(12, 30), seed=2)
    paths = make_synthetic_dataset(str(tmp_path_factory.mktemp("shapes")), spec)
    return CocoDetection(*paths["train"], remove_empty=True, skip_crowd=True)


SWITCHES = {"box_cls_loss_weight": 1.0, "box_reg_loss_weight": 1.0, "box_reg_at_test": True}


def _two_stage_names():
    return [n for n in models.available() if n in TINY and hasattr(build(n), "roi_heads")]


@pytest.mark.parametrize("name", _two_stage_names())
def test_every_two_stage_detector_has_the_switches(name):
    settings = models.builders.model_settings(name)
    assert {k: settings.get(k) for k in SWITCHES} == SWITCHES
    heads = build(name, box_cls_loss_weight=0.5, box_reg_loss_weight=0.0, box_reg_at_test=False).roi_heads
    assert (heads.cls_loss_weight, heads.box_reg_loss_weight, heads.box_reg_at_test) == (0.5, 0.0, False)


def _reference(logits, deltas, labels, targets):
    """Log loss + smooth L1 (beta 1/9) of the foreground's class deltas / RoI count, in float64."""
    logits, deltas, targets = (np.asarray(a, np.float64) for a in (logits, deltas, targets))
    shifted = logits - logits.max(1, keepdims=True)
    log_p = shifted - np.log(np.exp(shifted).sum(1, keepdims=True))
    cls = -log_p[np.arange(len(labels)), labels].mean()
    fg = np.nonzero(labels > 0)[0]
    d = deltas.reshape(len(labels), -1, 4)[fg, labels[fg]] - targets[fg]
    beta = 1 / 9
    smooth = np.where(np.abs(d) < beta, 0.5 * d ** 2 / beta, np.abs(d) - 0.5 * beta)
    return cls, smooth.sum() / max(1, len(labels))


@pytest.mark.parametrize("weights", [(1.0, 1.0), (0.3, 2.5), (1.0, 0.0), (0.0, 1.0)])
@pytest.mark.parametrize("all_background", [False, True])
def test_box_loss_weights_against_a_reference(weights, all_background):
    rng = np.random.default_rng(7)
    n = 37
    labels = np.zeros(n, np.int64) if all_background else rng.integers(0, NUM_CLASSES, n)
    logits, deltas, targets = rng.normal(0, 2, (n, NUM_CLASSES)), rng.normal(0, 0.2, (n, NUM_CLASSES * 4)), \
        rng.normal(0, 0.2, (n, 4))
    losses = box_loss(*(torch.tensor(a) for a in (logits, deltas, labels, targets)), *weights)
    cls, reg = _reference(logits, deltas, labels, targets)
    expected = {k: w * v for k, w, v in (("loss_classifier", weights[0], cls), ("loss_box_reg", weights[1], reg)) if w}
    assert set(losses) == set(expected)
    for key, value in expected.items():
        np.testing.assert_allclose(float(losses[key]), value, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("name", ["fast_rcnn_vgg16", "faster_rcnn_r50_fpn"])
@pytest.mark.parametrize("zero", ["box_reg_loss_weight", "box_cls_loss_weight"])
def test_a_zero_weight_leaves_its_loss_and_gradient_out(name, zero, rng):
    model = build(name, **{zero: 0.0}).train()
    images, targets = batch(rng)
    kwargs = {"proposals": proposals_for(targets, rng)} if name.startswith("fast") else {}
    losses = model(images, targets, **kwargs)
    gone, kept = ("loss_box_reg", "loss_classifier") if zero == "box_reg_loss_weight" else \
        ("loss_classifier", "loss_box_reg")
    assert gone not in losses and kept in losses
    sum(losses.values()).backward()
    predictor = model.roi_heads.box_predictor
    silent, trained = (predictor.bbox_pred, predictor.cls_score) if zero == "box_reg_loss_weight" else \
        (predictor.cls_score, predictor.bbox_pred)
    assert silent.weight.grad is None and silent.bias.grad is None
    assert trained.weight.grad is not None and trained.weight.grad.abs().sum() > 0


def test_weights_scale_the_losses(rng):
    model = build("fast_rcnn_vgg16").train()
    images, targets = batch(rng)
    proposals = proposals_for(targets, rng)
    torch.manual_seed(3)
    plain = model(images, targets, proposals=proposals)
    model.roi_heads.cls_loss_weight, model.roi_heads.box_reg_loss_weight = 0.25, 4.0
    torch.manual_seed(3)  # the same RoI sample
    weighted = model(images, targets, proposals=proposals)
    torch.testing.assert_close(weighted["loss_classifier"], 0.25 * plain["loss_classifier"])
    torch.testing.assert_close(weighted["loss_box_reg"], 4.0 * plain["loss_box_reg"])


@pytest.mark.parametrize("change, message", [
    ({"box_cls_loss_weight": -1.0}, "cls_loss_weight"),
    ({"box_reg_loss_weight": float("nan")}, "box_reg_loss_weight"),
    ({"box_cls_loss_weight": 0.0, "box_reg_loss_weight": 0}, "at least one"),
    ({"box_reg_at_test": "no"}, "box_reg_at_test"),
])
def test_bad_switches(change, message):
    with pytest.raises(ValueError, match=message):
        build("faster_rcnn_r50_fpn", **change)


def test_roi_heads_refuse_a_non_bool_switch():
    from detcore.models.roi_heads.roi_heads import RoIHeads

    with pytest.raises(ValueError, match="box_reg_at_test: expected true or false"):
        RoIHeads(None, None, None, box_reg_at_test="no")


def _matches_a_proposal(boxes, proposals):
    return torch.cdist(boxes.double(), proposals.double(), p=float("inf")).min(1).values


def test_regression_off_at_test_returns_the_proposals(rng):
    # images at the model's own size (64 x 96), so the boxes stay in the same pixels
    images, targets = batch(rng, sizes=((64, 96), (64, 96)))
    proposals = [p.clamp(min=0).minimum(torch.tensor([96.0, 64.0, 96.0, 64.0])) for p in proposals_for(targets, rng)]
    proposals = [p[(p[:, 2] > p[:, 0] + 1) & (p[:, 3] > p[:, 1] + 1)] for p in proposals]
    model = build("fast_rcnn_vgg16", box_score_thresh=0.0).eval()
    with torch.no_grad():
        model.roi_heads.box_predictor.bbox_pred.bias.fill_(0.5)  # deltas that move and grow every box
        regressed = model(images, proposals=proposals)
        model.roi_heads.box_reg_at_test = False
        plain = model(images, proposals=proposals)
    for r, p, q in zip(plain, regressed, proposals):
        assert r["boxes"].shape[0] > 0
        assert float(_matches_a_proposal(r["boxes"], q).max()) < 1e-4
        assert float(_matches_a_proposal(p["boxes"], q).median()) > 0.5  # the regressor did move them


def test_post_hoc_stage_trains_only_the_regressor(tiny_train_set, tmp_path):
    from detcore.engine import TrainConfig, train

    cfg = dict(max_iter=3, images_per_batch=2, base_lr=0.05, warmup_iters=1, log_period=1, tensorboard=False)
    torch.manual_seed(0)
    model = models.build("faster_rcnn_r50_fpn", tiny_train_set.num_classes, **TINY["faster_rcnn_r50_fpn"],
                         box_reg_loss_weight=0.0)
    start = copy.deepcopy(model.state_dict())
    train(model, tiny_train_set, TrainConfig(**cfg), str(tmp_path / "cls"), show_progress=False)
    stage1 = copy.deepcopy(model.state_dict())
    changed = {k for k in start if not torch.equal(start[k], stage1[k])}
    assert "roi_heads.box_predictor.cls_score.weight" in changed
    assert not {k for k in changed if "bbox_pred" in k}  # no gradient, and so no weight decay either

    model.roi_heads.cls_loss_weight, model.roi_heads.box_reg_loss_weight = 0.0, 1.0
    train(model, tiny_train_set, TrainConfig(**cfg, train_only=("roi_heads.box_predictor.bbox_pred",)),
          str(tmp_path / "reg"), show_progress=False)
    stage2 = model.state_dict()
    changed = {k for k in stage1 if not torch.equal(stage1[k], stage2[k])}
    assert changed == {"roi_heads.box_predictor.bbox_pred.weight", "roi_heads.box_predictor.bbox_pred.bias"}


def test_train_only_names_a_missing_prefix(tiny_train_set, tmp_path):
    from detcore.engine import TrainConfig, train

    model = build("faster_rcnn_r50_fpn")
    with pytest.raises(ValueError, match="train_only"):
        train(model, tiny_train_set, TrainConfig(max_iter=1, train_only=("no_such.layer",), tensorboard=False),
              str(tmp_path), show_progress=False)
