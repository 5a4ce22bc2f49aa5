"""OverFeat: training and eval contract, the location assignment rule, the
greedy merge against a plain reference, overfitting one batch, the command
line, bad input."""

import json
import math

import numpy as np
import pytest
import torch

import detcore.models as models
from detcore import cli
from detcore.models.meta.greedy_merge import greedy_merge, match_scores
from tiny_models import NUM_CLASSES, batch

TINY = dict(
    backbone="resnet", base_width=8, blocks=(1, 1, 1), trainable_stages=5, window_cells=3, representation_size=32,
    regression_size=32, dropout=0.0, min_size=64, max_size=96, train_scales=(1.0, 0.5), test_scales=(1.0, 0.5),
)


def build(**overrides):
    return models.build("overfeat", NUM_CLASSES, **{**TINY, **overrides})


def test_train_forward_backward(rng):
    model = build().train()
    images, targets = batch(rng)
    losses = model(images, targets)
    assert set(losses) == {"loss_classifier", "loss_box_reg"}
    for k, v in losses.items():
        assert v.dim() == 0 and torch.isfinite(v), k
    sum(losses.values()).backward()
    head = list(model.head.parameters())
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in head)


def test_eval_outputs_in_image_coordinates_for_both_merges(rng):
    sizes = ((50, 120), (90, 70))
    images, _ = batch(rng, sizes)
    for merge in ("greedy", "nms"):
        model = build(merge=merge, score_thresh=0.0).eval()
        with torch.no_grad():
            out = model(images)
        assert len(out) == 2
        for r, (h, w) in zip(out, sizes):
            n = r["boxes"].shape[0]
            assert 0 < n <= model.detections_per_img
            assert r["boxes"].shape == (n, 4) and r["boxes"].dtype == torch.float32
            assert r["labels"].dtype == torch.int64 and ((r["labels"] >= 1) & (r["labels"] < NUM_CLASSES)).all()
            assert (r["scores"][:-1] >= r["scores"][1:]).all() and ((r["scores"] >= 0) & (r["scores"] <= 1)).all()
            b = r["boxes"]
            assert (b[:, :2] >= 0).all() and (b[:, 2] <= w + 1e-3).all() and (b[:, 3] <= h + 1e-3).all()
            assert (b[:, 2:] >= b[:, :2]).all()


def test_every_scale_runs_one_fully_convolutional_pass(rng):
    model = build(test_scales=(1.0, 0.7, 0.5)).eval()
    calls = []
    model.backbone.register_forward_hook(lambda m, i, o: calls.append(tuple(i[0].shape)))
    images, _ = batch(rng, ((64, 96), (64, 96)))
    with torch.no_grad():
        model(images)
    # one backbone pass per scale on the whole (batched) image
    assert [c[0] for c in calls] == [2, 2, 2] and calls[0][-2:] == (64, 96)
    assert calls[1][-1] == int(96 * 0.7) and calls[2][-1] == 48


def test_locations_follow_the_assignment_rule():
    model = build(min_coverage=0.5)
    windows = torch.tensor([[0.0, 0, 48, 48], [16, 16, 64, 64], [100, 100, 148, 148], [0, 0, 48, 48]])
    centres = (windows[:, :2] + windows[:, 2:]) / 2
    gt = torch.tensor([[10.0, 10, 40, 40], [20, 20, 100, 100]])
    matched = model._assign(windows, centres, gt)
    # window 0: centre (24, 24) inside both; covers all of box 0 and 28^2 / 80^2 of box 1
    # window 1: centre (40, 40) on box 0's edge (not strictly inside), inside box 1 but covers 44^2 / 80^2 of it
    # window 2: centre outside both
    assert matched.tolist() == [0, -1, -1, 0]
    assert model._assign(windows, centres, gt[:0]).tolist() == [-1] * 4
    # coverage exactly at the threshold counts
    gt_half = torch.tensor([[0.0, 0, 48, 96]])  # window 0 covers half of it, centre (24, 24) inside
    assert model._assign(windows[:1], centres[:1], gt_half).tolist() == [0]


def _plain_match(a, b):
    ca, cb = (a[:2] + a[2:]) / 2, (b[:2] + b[2:]) / 2
    area_a = (a[2] - a[0]) * (a[3] - a[1])
    area_b = (b[2] - b[0]) * (b[3] - b[1])
    iw = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    ih = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    iou = iw * ih / (area_a + area_b - iw * ih)
    return np.linalg.norm(ca - cb) / math.sqrt((area_a + area_b) / 2) + 1 - iou


def _plain_greedy_merge(boxes, scores, threshold):
    """The paper's loop, written plainly: clusters of member indices."""
    clusters = [[i] for i in range(len(boxes))]
    while len(clusters) > 1:
        means = [boxes[c].mean(0) for c in clusters]
        best, pair = math.inf, None
        for i in range(len(clusters)):
            for j in range(len(clusters)):
                if i != j and _plain_match(means[i], means[j]) < best:
                    best, pair = _plain_match(means[i], means[j]), (i, j)
        if best > threshold:
            break
        i, j = pair
        clusters[i] = clusters[i] + clusters[j]
        del clusters[j]
    merged = np.array([boxes[c].mean(0) for c in clusters])
    merged_scores = np.array([1 - np.prod(1 - scores[c]) for c in clusters])
    order = np.argsort(-merged_scores, kind="stable")
    return merged[order], merged_scores[order]


def test_match_score_matches_a_plain_computation(rng):
    a = rng.uniform(0, 50, (6, 2))
    a = np.concatenate([a, a + rng.uniform(1, 30, (6, 2))], 1)
    got = match_scores(torch.from_numpy(a), torch.from_numpy(a)).numpy()
    expected = np.array([[_plain_match(x, y) for y in a] for x in a])
    np.testing.assert_allclose(got, expected, rtol=1e-9, atol=1e-9)
    assert np.allclose(np.diag(got), 0)


def test_greedy_merge_matches_a_plain_reference(rng):
    # three groups of jittered boxes and a few strays: the groups merge, the strays stay
    centres = np.array([[20.0, 20.0, 40, 40], [60, 10, 90, 50], [10, 60, 30, 95]])
    boxes = np.concatenate([centres[rng.integers(0, 3, 15)] + rng.normal(0, 1.5, (15, 4)),
                            np.tile(rng.uniform(0, 100, (3, 2)), 2) + [0, 0, 5, 5]])
    scores = rng.uniform(0.05, 0.9, len(boxes))
    original = boxes.copy()
    got_boxes, got_scores = greedy_merge(torch.from_numpy(boxes), torch.from_numpy(scores), 0.6)
    np.testing.assert_array_equal(boxes, original)  # the input is not modified
    want_boxes, want_scores = _plain_greedy_merge(boxes, scores, 0.6)
    assert len(got_boxes) == len(want_boxes) < len(boxes)
    np.testing.assert_allclose(got_boxes.numpy(), want_boxes, rtol=1e-9, atol=1e-9)
    np.testing.assert_allclose(got_scores.numpy(), want_scores, rtol=1e-9, atol=1e-9)


def test_greedy_merge_edge_cases():
    empty = torch.zeros((0, 4))
    b, s = greedy_merge(empty, torch.zeros(0), 0.6)
    assert b.shape == (0, 4) and s.shape == (0,)
    same = torch.tensor([[0.0, 0, 10, 10]] * 3)
    b, s = greedy_merge(same, torch.tensor([0.5, 0.5, 0.5]), 0.6)
    torch.testing.assert_close(b, same[:1])
    torch.testing.assert_close(s, torch.tensor([1 - 0.5**3]))
    far = torch.tensor([[0.0, 0, 10, 10], [50, 50, 60, 60]])
    b, s = greedy_merge(far, torch.tensor([0.2, 0.7]), 0.6)
    torch.testing.assert_close(b, far[[1, 0]])
    # degenerate (zero-area) boxes neither crash nor produce NaN
    b, s = greedy_merge(torch.tensor([[5.0, 5, 5, 5], [5, 5, 5, 5], [0, 0, 4, 4]]), torch.tensor([0.3, 0.3, 0.3]), 0.6)
    assert torch.isfinite(b).all() and torch.isfinite(s).all()


def test_negative_images_train(rng):
    model = build().train()
    images, targets = batch(rng, counts=(0, 0))
    losses = model(images, targets)
    assert all(torch.isfinite(v) for v in losses.values()) and losses["loss_box_reg"] == 0
    sum(losses.values()).backward()


def test_loss_falls_when_overfitting_one_batch(rng):
    model = build().train()
    images, targets = batch(rng, counts=(2, 1))
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.Adam(params, lr=5e-3)
    history = []
    for _ in range(25):
        total = sum(model(images, targets).values())
        opt.zero_grad()
        total.backward()
        torch.nn.utils.clip_grad_norm_(params, 5.0)
        opt.step()
        history.append(total.item())
    assert all(math.isfinite(h) for h in history)
    assert sorted(history[-5:])[2] < 0.6 * sum(history[:3]) / 3, [round(h, 2) for h in history]


def test_paper_defaults_and_vgg16_backbone():
    with torch.device("meta"):  # the full-size layers, without spending time on their initialisation
        model = models.build("overfeat", 21)
    assert type(model.backbone).__name__ == "VGG16"
    # VGG16's fc6 as a 7 x 7 convolution over conv5_3, fc7 as 1 x 1
    assert model.head.classifier[0].kernel_size == (7, 7) and model.head.classifier[0].out_channels == 4096
    assert model.head.regressor[-1].out_channels == 21 * 4
    assert model.merge == "greedy" and len(model.test_scales) > 1


@pytest.mark.parametrize(
    "overrides,words",
    [
        (dict(backbone="alexnet"), "backbone"),
        (dict(window_cells=4), "window_cells"),
        (dict(test_scales=()), "test_scales"),
        (dict(train_scales=(1.0, -1)), "train_scales"),
        (dict(merge="soft"), "merge"),
    ],
)
def test_bad_settings_are_refused(overrides, words):
    with pytest.raises(ValueError, match=words):
        build(**overrides)


def test_bad_targets_name_the_image_and_field(rng):
    model = build().train()
    images, targets = batch(rng)
    targets[1] = dict(targets[1], boxes=targets[1]["boxes"][:, [2, 1, 0, 3]])
    with pytest.raises(ValueError, match=r"targets\[1\]\['boxes'\]"):
        model(images, targets)
    with pytest.raises(ValueError, match=r"images\[0\]"):
        model([images[0][:1]], targets[:1])


CLI_MODEL = ["model.backbone=resnet", "model.base_width=8", "model.blocks=(1, 1, 1)", "model.trainable_stages=5",
             "model.window_cells=3", "model.representation_size=32", "model.regression_size=32", "model.min_size=64",
             "model.max_size=96", "model.train_scales=(1.0, 0.5)", "model.test_scales=(1.0, 0.5)"]


def test_train_eval_predict_through_the_command_line(tmp_path, capsys):
    out = tmp_path / "train"
    assert cli.main(["train", "--model", "overfeat", "--data", "synthetic:4:2", "-o", str(out), "max_iter=2",
                     "images_per_batch=2", "log_period=1", "warmup_iters=1", "tensorboard=false", *CLI_MODEL]) == 0
    weights = str(out / "model_final.pth")
    assert cli.main(["eval", "--weights", weights, "--data", "synthetic:4:2", "-o", str(tmp_path / "eval")]) == 0
    assert "bbox" in json.load(open(tmp_path / "eval" / "metrics.json"))
    image = out / "synthetic/images/val_00000.png"
    assert cli.main(["predict", "--weights", weights, str(image), "-o", str(tmp_path / "pred"),
                     "--score-threshold", "0"]) == 0
    detections = json.load(open(tmp_path / "pred/detections.json"))
    assert detections[0]["image"] == str(image) and len(detections[0]["detections"]) > 0
