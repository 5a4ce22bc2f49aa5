"""Online hard example mining: the selection (NMS by loss, the highest-loss
survivors, the foreground:background ratio) against a plain reference, the RoI
heads' read-only pass and RetinaNet's OHEM loss (gradients reach only the
picked examples), and tiny training runs of each setting."""

import json
import math

import numpy as np
import pytest
import torch

import detcore.models as models
from detcore import cli
from detcore.models.ohem import hardest_examples
from detcore.models.roi_heads.box_head import box_loss, box_loss_per_roi
from tiny_models import NUM_CLASSES, batch, build, proposals_for


def ref_iou(a, b):
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    w = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    h = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = w * h
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else math.nan


def ref_hardest(boxes, losses, batch_size, nms_thresh, positive=None, positive_fraction=None):
    """Greedy NMS by decreasing loss (ties: lower index first), then the first
    batch_size survivors; with a fraction f: the first int(B f) surviving
    positives and (1 - f) / f negatives per positive taken."""
    boxes, losses = np.asarray(boxes, np.float64), np.asarray(losses, np.float64)
    kept = []
    for i in sorted(range(len(losses)), key=lambda i: (-losses[i], i)):
        if not any(ref_iou(boxes[i], boxes[j]) > nms_thresh for j in kept):
            kept.append(i)
    if positive_fraction is None:
        return kept[:batch_size]
    pos = [i for i in kept if positive[i]][:int(batch_size * positive_fraction)]
    num_neg = min(batch_size - len(pos), int(round(len(pos) * (1 - positive_fraction) / positive_fraction)))
    return pos + [i for i in kept if not positive[i]][:num_neg]


def random_boxes(rng, n, extent=100.0):
    xy = rng.uniform(0, extent, (n, 2))
    return np.concatenate([xy, xy + rng.uniform(2, extent / 3, (n, 2))], 1)


def pick(boxes, losses, batch_size, nms_thresh, positive=None, positive_fraction=None):
    out = hardest_examples(torch.tensor(np.asarray(boxes, np.float64)), torch.tensor(np.asarray(losses, np.float64)),
                           batch_size, nms_thresh, None if positive is None else torch.tensor(positive),
                           positive_fraction)
    assert out.dtype == torch.int64
    return out.tolist()


@pytest.mark.parametrize("batch_size", [1, 7, 64, 500])
@pytest.mark.parametrize("nms_thresh", [0.3, 0.7, 1.0])
@pytest.mark.parametrize("positive_fraction", [None, 0.25, 0.5])
def test_matches_the_reference_on_random_losses(rng, batch_size, nms_thresh, positive_fraction):
    n = 120
    boxes = random_boxes(rng, n, 60.0)
    # ties: a few distinct loss values among many examples
    losses = rng.integers(0, 6, n) + (rng.uniform(0, 1, n) if rng.uniform() < 0.5 else 0.0)
    positive = rng.uniform(0, 1, n) < 0.1
    got = pick(boxes, losses, batch_size, nms_thresh, positive, positive_fraction)
    assert got == ref_hardest(boxes, losses, batch_size, nms_thresh, positive, positive_fraction)


@pytest.mark.parametrize("positive_fraction", [None, 0.25])
def test_near_copies_of_a_hard_example_do_not_fill_the_batch(rng, positive_fraction):
    # the 100 highest losses all sit on one box: the first candidates looked at
    # collapse to one survivor and the search has to go further down
    n = 400
    boxes = random_boxes(rng, n)
    boxes[:100] = np.array([10.0, 10.0, 40.0, 40.0]) + rng.normal(0, 0.3, (100, 4))
    losses = rng.uniform(0, 1, n)
    losses[:100] += 10
    positive = rng.uniform(0, 1, n) < 0.05
    got = pick(boxes, losses, 8, 0.5, positive, positive_fraction)
    assert got == ref_hardest(boxes, losses, 8, 0.5, positive, positive_fraction)
    assert sum(i < 100 for i in got) == 1


def test_nms_suppresses_an_overlapping_lower_loss_box():
    boxes = [[0, 0, 10, 10], [0, 0, 10, 9], [50, 50, 60, 60], [100, 100, 110, 110]]  # IoU(0, 1) = 0.9
    losses = [5.0, 4.0, 3.0, 1.0]
    assert pick(boxes, losses, 2, 0.7) == [0, 2]
    assert pick(boxes, losses, 2, 0.95) == [0, 1]  # at this threshold 0.9 does not suppress
    assert pick(boxes, losses, 2, 1.0) == [0, 1]  # >= 1: no suppression
    assert pick(boxes, [4.0, 5.0, 3.0, 1.0], 3, 0.7) == [1, 2, 3]  # the higher loss wins whatever its index


def test_equal_losses_keep_the_lower_index_first():
    boxes = [[i * 20, 0, i * 20 + 10, 10] for i in range(4)]
    assert pick(boxes, [1.0, 2.0, 2.0, 1.0], 2, 0.7) == [1, 2]
    assert pick(boxes, [1.0, 2.0, 2.0, 1.0], 3, 0.7) == [1, 2, 0]
    assert pick(boxes, [0.0] * 4, 4, 0.7) == [0, 1, 2, 3]


def test_nan_losses_rank_last_and_nan_boxes_suppress_nothing():
    boxes = [[0, 0, 10, 10], [30, 0, 40, 10], [0, 0, 10, 10], [math.nan] * 4]
    assert pick(boxes, [math.nan, 1.0, 2.0, 3.0], 4, 0.5) == [3, 2, 1]  # 0 is a copy of 2, which ranks higher
    assert pick(boxes, [math.nan, 1.0, math.nan, 3.0], 4, 0.5) == [3, 1, 0]


def test_the_foreground_background_ratio():
    boxes = [[i * 20, 0, i * 20 + 10, 10] for i in range(12)]
    losses = [0.1, 0.2] + [float(i) for i in range(1, 11)]  # the two positives are the easiest examples
    positive = [True, True] + [False] * 10
    # 1:3 with B = 8: both positives, then 3 negatives each, the hardest ones
    assert pick(boxes, losses, 8, 0.7, positive, 0.25) == [1, 0, 11, 10, 9, 8, 7, 6]
    # a quota of int(4 * 0.25) = 1 positive, then 3 negatives
    assert pick(boxes, losses, 4, 0.7, positive, 0.25) == [1, 11, 10, 9]
    # one positive only: 1 + 3
    assert pick(boxes, losses, 8, 0.7, [True] + [False] * 11, 0.25) == [0, 11, 10, 9]
    # no positive: nothing to balance against
    assert pick(boxes, losses, 8, 0.7, [False] * 12, 0.25) == []
    # without a ratio the positives lose to harder negatives
    assert pick(boxes, losses, 8, 0.7) == [11, 10, 9, 8, 7, 6, 5, 4]
    # a suppressed positive is not counted: it overlaps a harder negative
    boxes[0] = [200, 0, 210, 10]  # = box 10, whose loss is 9
    assert pick(boxes, losses, 8, 0.7, positive, 0.25) == [1, 11, 10, 9]


def test_the_easiest_positives_are_found_far_down_the_loss_order():
    boxes = [[i % 20 * 20, i // 20 * 20, i % 20 * 20 + 10, i // 20 * 20 + 10] for i in range(400)]  # disjoint
    losses = np.linspace(10, 0, 400)
    positive = np.zeros(400, bool)
    positive[[397, 399]] = True
    assert pick(boxes, losses, 8, 0.5, positive, 0.25) == [397, 399, 0, 1, 2, 3, 4, 5]


def test_fewer_candidates_than_the_batch():
    boxes = [[0, 0, 10, 10], [20, 0, 30, 10], [40, 0, 50, 10]]
    assert pick(boxes, [1.0, 3.0, 2.0], 128, 0.7) == [1, 2, 0]
    assert pick(boxes, [1.0, 3.0, 2.0], 128, 0.7, [True, False, False], 0.25) == [0, 1, 2]
    assert pick(np.zeros((0, 4)), np.zeros(0), 128, 0.7) == []
    assert pick(np.zeros((0, 4)), np.zeros(0), 128, 0.7, np.zeros(0, bool), 0.25) == []


@pytest.mark.parametrize("kwargs, message", [
    (dict(batch_size=0), "batch_size: expected an int >= 1, got 0"),
    (dict(batch_size=2.0), "batch_size: expected an int >= 1"),
    (dict(nms_thresh=-0.1), "ohem_nms_thresh: expected a number >= 0"),
    (dict(nms_thresh=math.nan), "ohem_nms_thresh: expected a number >= 0"),
    (dict(positive_fraction=1.5, positive=torch.ones(3, dtype=torch.bool)), "ohem_positive_fraction: expected None"),
    (dict(positive_fraction=0.25), "positive: expected a bool mask"),
    (dict(losses=torch.zeros(2)), "boxes, losses: expected shapes"),
])
def test_bad_arguments_are_named(kwargs, message):
    args = dict(boxes=torch.zeros(3, 4), losses=torch.zeros(3), batch_size=2, nms_thresh=0.7)
    args.update(kwargs)
    with pytest.raises(ValueError, match=message):
        hardest_examples(**args)


@pytest.mark.parametrize("overrides, message", [
    (dict(dense_loss="hard"), "dense_loss: expected 'focal' or 'ohem', got 'hard'"),
    (dict(dense_loss="ohem", ohem_batch_size_per_image=0), "ohem_batch_size_per_image: expected an int >= 1"),
    (dict(dense_loss="ohem", ohem_positive_fraction=0.0), "ohem_positive_fraction: expected None"),
])
def test_bad_retinanet_settings_are_named(overrides, message):
    with pytest.raises(ValueError, match=message):
        build("retinanet_r50_fpn", **overrides)


def test_bad_roi_sampler_settings_are_named():
    with pytest.raises(ValueError, match="roi_sampler: expected 'balanced' or 'ohem', got 'random'"):
        build("faster_rcnn_r50_fpn", roi_sampler="random")
    with pytest.raises(ValueError, match="ohem_nms_thresh: expected a number >= 0"):
        build("fast_rcnn_vgg16", roi_sampler="ohem", ohem_nms_thresh=-1.0)


def ref_sigmoid_ce(logits, labels, num_classes):
    """Per-anchor sigmoid cross entropy summed over the classes; label C is background."""
    x = np.asarray(logits, np.float64)
    t = np.zeros_like(x)
    rows = np.where(labels < num_classes)[0]
    t[rows, labels[rows]] = 1.0
    log_p, log_not_p = -np.logaddexp(0, -x), -np.logaddexp(0, x)
    return -(t * log_p + (1 - t) * log_not_p).sum(1)


@pytest.mark.parametrize("positive_fraction", [None, 0.25])
def test_retinanet_ohem_trains_only_the_picked_anchors(rng, positive_fraction):
    model = build("retinanet_r50_fpn", dense_loss="ohem", ohem_batch_size_per_image=16, ohem_nms_thresh=0.5,
                  ohem_positive_fraction=positive_fraction)
    n, c = 200, NUM_CLASSES
    anchors = torch.tensor(random_boxes(rng, n, 80.0))
    logits = torch.tensor(rng.normal(0, 2, (n, c)), requires_grad=True)
    labels = rng.choice([-1, c, 1, 2, 3], n, p=[0.1, 0.6, 0.1, 0.1, 0.1])
    loss, picked = model._ohem_loss(logits, torch.tensor(labels), anchors)
    loss.backward()

    candidates = np.where(labels >= 0)[0]
    ce = ref_sigmoid_ce(logits.detach().numpy(), labels, c)
    expected = candidates[ref_hardest(anchors.numpy()[candidates], ce[candidates], 16, 0.5,
                                      labels[candidates] < c, positive_fraction)]
    assert picked.tolist() == expected.tolist() and len(expected) > 0
    assert loss.item() == pytest.approx(ce[expected].mean(), rel=1e-12)
    touched = np.where(logits.grad.abs().sum(1).numpy() > 0)[0]
    assert sorted(touched.tolist()) == sorted(expected.tolist())


def ref_box_loss_per_roi(logits, deltas, labels, reg_targets):
    x = np.asarray(logits, np.float64)
    ce = -(x[np.arange(len(x)), labels] - np.log(np.exp(x - x.max(1, keepdims=True)).sum(1)) - x.max(1))
    d = np.asarray(deltas, np.float64).reshape(len(x), -1, 4)
    out = ce.copy()
    beta = 1 / 9
    for i in np.where(labels > 0)[0]:
        diff = np.abs(d[i, labels[i]] - np.asarray(reg_targets[i], np.float64))
        out[i] += np.where(diff < beta, 0.5 * diff ** 2 / beta, diff - 0.5 * beta).sum()
    return out


def test_box_loss_per_roi_is_each_rois_share_of_box_loss(rng):
    n, c = 40, 5
    logits = torch.tensor(rng.normal(0, 2, (n, c)))
    deltas = torch.tensor(rng.normal(0, 0.3, (n, 4 * c)))
    labels = torch.tensor(rng.integers(0, c, n))
    targets = torch.tensor(rng.normal(0, 0.3, (n, 4)))
    per_roi = box_loss_per_roi(logits, deltas, labels, targets)
    np.testing.assert_allclose(per_roi.numpy(), ref_box_loss_per_roi(logits, deltas, labels.numpy(), targets), rtol=1e-12)
    losses = box_loss(logits, deltas, labels, targets)
    assert per_roi.mean().item() == pytest.approx(sum(losses.values()).item(), rel=1e-12)
    # the same weights as box_loss's
    weighted = box_loss_per_roi(logits, deltas, labels, targets, cls_weight=0.5, reg_weight=2.0)
    losses = box_loss(logits, deltas, labels, targets, cls_weight=0.5, reg_weight=2.0)
    assert weighted.mean().item() == pytest.approx(sum(losses.values()).item(), rel=1e-12)


def test_roi_heads_ohem_trains_on_the_hardest_rois_of_a_read_only_pass(rng, monkeypatch):
    name = "fast_rcnn_vgg16"  # proposals given: every candidate is known; fc6/fc7 dropout: switched off read-only
    model = build(name, roi_sampler="ohem", dropout=0.5, box_batch_size_per_image=12)
    model.train()
    heads = model.roi_heads
    sampled, pooled, predicted = [], [], []
    original_sample = heads._sample
    monkeypatch.setattr(heads, "_sample", lambda *a: sampled.append(original_sample(*a)) or sampled[-1])
    heads.box_pooler.register_forward_hook(lambda m, inp, out: pooled.append([p.clone() for p in inp[1]]))
    heads.box_predictor.register_forward_hook(
        lambda m, inp, out: predicted.append((out, torch.is_grad_enabled(), heads.box_head.training)))
    images, targets = batch(rng, counts=(3, 2))
    losses = model(images, targets, proposals=proposals_for(targets, rng, per_image=30))

    boxes, labels, _, reg_targets = sampled[0]
    (logits, deltas), grad_enabled, dropout_on = predicted[0]
    assert not grad_enabled and not dropout_on and not logits.requires_grad
    assert [p.shape[0] for p in pooled[0]] == [b.shape[0] for b in boxes]  # every candidate, read-only
    per_roi = ref_box_loss_per_roi(logits, deltas, torch.cat(labels).numpy(), torch.cat(reg_targets))
    (train_logits, _), grad_enabled, dropout_on = predicted[1]
    assert grad_enabled and dropout_on and train_logits.requires_grad
    start = 0
    for image_boxes, image_labels, trained_boxes in zip(boxes, labels, pooled[1]):
        loss = per_roi[start:start + image_boxes.shape[0]]
        start += image_boxes.shape[0]
        assert (image_labels >= 0).all()
        expected = ref_hardest(image_boxes.numpy(), loss, 12, 0.7)
        torch.testing.assert_close(trained_boxes, image_boxes[expected], rtol=0, atol=0)
    assert all(torch.isfinite(v) for v in losses.values())


@pytest.fixture(scope="module")
def tiny_data(tmp_path_factory):
    from detcore.data import SyntheticSpec, make_synthetic_dataset

    root = tmp_path_factory.mktemp("ohem_data")
    paths = make_synthetic_dataset(str(root), SyntheticSpec(num_train=4, num_val=2, image_size=(48, 64),
                                                            object_size=(14, 30), seed=5))
    return f"coco:{paths['train'][0]}:{paths['train'][1]}"


TINY_RESNET = ["model.base_width=8", "model.blocks=[1,1,1,1]", "model.fpn_channels=16", "model.min_size=64",
               "model.max_size=96"]


@pytest.mark.parametrize("model, settings, expected", [
    ("retinanet_r50_fpn", ["model.dense_loss=ohem", "model.ohem_batch_size_per_image=32", "model.ohem_nms_thresh=0.7"],
     ("ohem", None, 2.0)),
    ("retinanet_r50_fpn", ["model.dense_loss=ohem", "model.ohem_positive_fraction=0.25"], ("ohem", 0.25, 2.0)),
    # alpha-balanced cross entropy
    ("retinanet_r50_fpn", ["model.focal_gamma=0", "model.focal_alpha=0.75"], ("focal", None, 0)),
    ("faster_rcnn_r50_fpn", ["model.roi_sampler=ohem", "model.box_batch_size_per_image=16",
                             "model.representation_size=32"], True),
])
def test_a_tiny_training_run_with_each_setting(tiny_data, tmp_path, model, settings, expected):
    out = tmp_path / "run"
    assert cli.main(["train", "--model", model, "--data", tiny_data, "-o", str(out), "max_iter=2",
                     "images_per_batch=2", "log_period=1", "warmup_iters=1", "tensorboard=false", "--threads", "1",
                     *TINY_RESNET, *settings]) == 0
    records = [json.loads(line) for line in open(out / "train_metrics.jsonl")]
    losses = [r["loss"] for r in records if "loss" in r]
    assert len(losses) == 2 and all(math.isfinite(v) for v in losses)
    assert (out / "model_final.pth").exists()
    # the settings reached the model with their types (a string, numbers)
    config = json.loads((out / "config.json").read_text())
    built = models.build(model, config["num_classes"], **config["model_overrides"])
    assert (built.dense_loss, built.ohem_positive_fraction, built.focal_gamma) == expected if model.startswith(
        "retinanet") else built.roi_heads.ohem == expected
