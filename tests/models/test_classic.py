"""R-CNN: the region warp, fine-tuning, the SVM and box-regression stages on
toy problems, the multi-stage trainer on tiny synthetic data, bad input."""

import numpy as np
import pytest
import torch

from classic_data import RCNN_TINY, WithProposals, tiny_synthetic
from tiny_models import batch, proposals_for

import detcore.models as models
from detcore.models.classic.feature_cache import FeatureCache, RegionRecord
from detcore.models.classic.stages import as_list, regression_targets, train_box_regressors, train_svms
from detcore.models.classic.warp import context_boxes, warp_regions

pytest.importorskip("sklearn")


def build_rcnn(**kw):
    return models.build("rcnn_vgg16", 4, **{**RCNN_TINY, **kw})


# ---------------------------------------------------------------- warp

def test_context_boxes_put_the_box_in_the_inner_frame():
    rng = np.random.default_rng(0)
    boxes = rng.uniform(0, 50, (7, 2))
    boxes = np.concatenate([boxes, boxes + rng.uniform(1, 30, (7, 2))], 1)
    size, pad = 227, 16
    out = context_boxes(torch.tensor(boxes, dtype=torch.float64), size, pad).numpy()
    # in the warped frame the original box spans [pad, size - pad]
    for b, o in zip(boxes, out):
        for lo, hi, olo, ohi in ((b[0], b[2], o[0], o[2]), (b[1], b[3], o[1], o[3])):
            assert (lo - olo) / (ohi - olo) * size == pytest.approx(pad)
            assert (hi - olo) / (ohi - olo) * size == pytest.approx(size - pad)
    assert np.array_equal(context_boxes(torch.tensor(boxes), size, 0).numpy(), boxes)


def test_warp_of_a_ramp_samples_the_padded_box():
    # pixel column j holds j + 0.5 (its centre): bilinear samples of a linear
    # function average to the bin centre's x, so column k of the warp reads
    # x1' + (k + 0.5) * (x2' - x1') / size of the padded box
    h, w, size, pad = 40, 60, 12, 2
    ramp = np.broadcast_to(np.arange(w) + 0.5, (h, w))
    image = torch.tensor(np.stack([ramp] * 3), dtype=torch.float64)
    box = torch.tensor([[15.0, 10.0, 39.0, 30.0]], dtype=torch.float64)
    out = warp_regions(image, box, size, pad)[0, 0].numpy()
    x1, _, x2, _ = context_boxes(box, size, pad)[0].tolist()
    expected = x1 + (np.arange(size) + 0.5) * (x2 - x1) / size
    assert out.shape == (size, size)
    np.testing.assert_allclose(out, np.broadcast_to(expected, (size, size)), atol=1e-9)


# ---------------------------------------------------------------- model

def test_rcnn_trains_and_detects():
    rng = np.random.default_rng(1)
    images, targets = batch(rng)
    props = proposals_for(targets, rng)
    model = build_rcnn()
    model.train()
    losses = model(images, [{k: t[k] for k in ("boxes", "labels")} for t in targets], proposals=props)
    assert set(losses) == {"loss_classifier"} and torch.isfinite(losses["loss_classifier"])
    losses["loss_classifier"].backward()
    assert model.head.fc6.weight.grad is not None and model.features[0].weight.grad is not None
    model.eval()
    out = model(images, proposals=props)
    assert len(out) == 2
    for o, img in zip(out, images):
        assert o["boxes"].shape[1] == 4 and o["labels"].min() >= 1 and o["labels"].max() < 4
        assert (o["boxes"][:, 2] <= img.shape[2]).all() and (o["boxes"][:, 3] <= img.shape[1]).all()
    # no proposal: no detection
    assert model(images[:1], proposals=[torch.zeros(0, 4)])[0]["boxes"].shape == (0, 4)


def test_finetuning_samples_32_fg_96_bg_across_images(monkeypatch):
    rng = np.random.default_rng(2)
    images, targets = batch(rng, counts=(2, 2))
    props = proposals_for(targets, rng, per_image=150)
    model = build_rcnn(batch_size=128)
    seen = {}

    def spy(imgs, boxes):
        seen["counts"] = [b.shape[0] for b in boxes]
        return [img.new_zeros((b.shape[0], model.feature_dims["pool5"])) for img, b in zip(imgs, boxes)]

    monkeypatch.setattr(model, "_pool5", spy)
    model.train()
    model(images, targets, proposals=props)
    assert sum(seen["counts"]) == 128 and min(seen["counts"]) > 0


def test_finetuning_without_regions_gives_a_zero_loss():
    model = build_rcnn().train()
    images = [torch.rand(3, 40, 50)]
    targets = [{"boxes": torch.zeros(0, 4), "labels": torch.zeros(0, dtype=torch.int64)}]
    loss = model(images, targets, proposals=[torch.zeros(0, 4)])["loss_classifier"]
    assert float(loss.detach()) == 0.0
    loss.backward()


def test_rcnn_overfits_a_fixed_batch():
    rng = np.random.default_rng(3)
    images, targets = batch(rng)
    targets = [{k: t[k] for k in ("boxes", "labels")} for t in targets]
    props = proposals_for(targets, rng)
    # a batch larger than the regions: every step sees all of them
    model = build_rcnn(batch_size=256, positive_fraction=0.5)
    model.train()
    opt = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=2e-3)
    first = None
    for _ in range(40):
        loss = model(images, targets, proposals=props)["loss_classifier"]
        first = float(loss.detach()) if first is None else first
        opt.zero_grad()
        loss.backward()
        opt.step()
    # a plain 13-conv VGG of width 8 from scratch learns slowly: the loss falls
    # steadily (no sampling noise: every step sees every region)
    assert float(loss.detach()) < 0.6 * first


def test_bad_inputs_are_clear():
    model = build_rcnn().eval()
    img = [torch.rand(3, 40, 50)]
    with pytest.raises(ValueError, match="proposals.*--proposals"):
        model(img)
    with pytest.raises(ValueError, match=r"proposals\[0\]: expected a \(P, 4\)"):
        model(img, proposals=[torch.zeros(3, 5)])
    with pytest.raises(ValueError, match="one .* per image"):
        model(img, proposals=[torch.zeros(3, 4)] * 2)
    with pytest.raises(ValueError, match="finite"):
        model(img, proposals=[torch.tensor([[0.0, 0.0, float("nan"), 4.0]])])
    with pytest.raises(ValueError, match="svm_feature"):
        build_rcnn(svm_feature="fc8")
    with pytest.raises(ValueError, match="context_pad"):
        build_rcnn(context_pad=16)
    with pytest.raises(ValueError, match="input_size"):
        build_rcnn(input_size=16)


# ---------------------------------------------------------------- stages on toy problems

def _toy_records(rng, n_images, dim, per_image=30, shift=3.0):
    """Class c's ground truth sits at +shift on feature c; proposals far from
    any box are background noise at -shift on the class features."""
    records = []
    for _ in range(n_images):
        labels = rng.integers(1, 3, 2)
        gt = np.array([[10, 10, 30, 30], [50, 50, 80, 70]], np.float32)
        far = rng.uniform(100, 200, (per_image, 2)).astype(np.float32)
        props = np.concatenate([far, far + 10], 1)
        feats = rng.normal(0, 1, (per_image + 2, dim)).astype(np.float32)
        feats[:per_image, 1:3] -= shift
        for row, c in enumerate(labels):
            feats[per_image + row, c] += shift
        records.append(RegionRecord(np.concatenate([props, gt]), np.r_[np.zeros(per_image, bool), True, True],
                                    gt, labels.astype(np.int64), feats))
    return records


def test_svms_separate_a_separable_toy_problem():
    rng = np.random.default_rng(4)
    train = _toy_records(rng, 12, 6)
    w, b, scale = train_svms(as_list(train), 3, lambda x: x, C=1.0, retrain_every=40, epochs=2)
    assert w.shape == (3, 6) and np.all(w[0] == 0)
    for rec in _toy_records(rng, 5, 6):
        f = rec.pool5 * scale
        for c in (1, 2):
            pos = f[np.where(rec.is_gt)[0][rec.gt_labels == c]]
            assert np.all(pos @ w[c] + b[c] > 0)
            assert np.all(f[~rec.is_gt] @ w[c] + b[c] < 0)


def test_svm_mining_keeps_only_hard_negatives():
    rng = np.random.default_rng(5)
    logs = []
    train_svms(as_list(_toy_records(rng, 20, 6, per_image=40)), 3, lambda x: x, C=1.0, retrain_every=50,
               log=logs.append)
    cached = eval(logs[-1].split("per class")[1])
    assert all(0 < v < 20 * 40 for v in cached.values())  # easy negatives were evicted


def test_svm_class_without_positives_is_never_detected():
    rng = np.random.default_rng(6)
    recs = _toy_records(rng, 3, 6)
    for r in recs:
        r.gt_labels[:] = 1
    w, b, _ = train_svms(as_list(recs), 4, lambda x: x, C=1.0)
    assert b[3] == -1000.0 and np.all(w[3] == 0)


def _decode_np(deltas, boxes):
    w, h = boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]
    cx, cy = boxes[:, 0] + w / 2, boxes[:, 1] + h / 2
    ncx, ncy = cx + deltas[:, 0] * w, cy + deltas[:, 1] * h
    nw, nh = w * np.exp(deltas[:, 2]), h * np.exp(deltas[:, 3])
    return np.stack([ncx - nw / 2, ncy - nh / 2, ncx + nw / 2, ncy + nh / 2], 1)


def test_ridge_recovers_a_linear_box_map():
    rng = np.random.default_rng(7)
    dim = 5
    true = {c: rng.normal(0, 0.02, (4, dim)) for c in (1, 2)}

    def records(n):
        out = []
        for _ in range(n):
            c = int(rng.integers(1, 3))
            props = np.concatenate([rng.uniform(0, 50, (1, 2)), rng.uniform(60, 100, (1, 2))], 1)
            x = rng.normal(0, 1, (1, dim))
            gt = _decode_np(x @ true[c].T, props)  # plain float64 reference of the box coding
            # the ground-truth row has zero features: its target (no shift) is linear too
            out.append(RegionRecord(np.concatenate([props, gt]).astype(np.float32), np.array([False, True]),
                                    gt.astype(np.float32), np.array([c]), np.concatenate([x, np.zeros((1, dim))]).astype(np.float32)))
        return out

    w, b, scale = train_box_regressors(as_list(records(3000)), 3, lam=1000.0)
    for rec in records(20):
        rows, labels, deltas = regression_targets(rec, 0.6)
        c = int(rec.gt_labels[0])
        assert list(rows) == [0, 1] and list(labels) == [c, c]
        pred = rec.pool5 * scale @ w[c].T + b[c]
        np.testing.assert_allclose(pred, deltas, atol=2e-3)
        np.testing.assert_allclose(deltas[0], (rec.pool5[0] @ true[c].T), atol=1e-4)


def test_regression_ignores_low_overlap():
    rec = RegionRecord(np.array([[0, 0, 10, 10], [0, 0, 10, 6], [0, 0, 10, 10]], np.float32),
                       np.array([False, False, True]), np.array([[0, 0, 10, 10]], np.float32), np.array([2]),
                       np.zeros((3, 2), np.float32))
    rows, labels, _ = regression_targets(rec, 0.6)  # IoU 1, 0.6, 1
    assert list(rows) == [0, 1, 2] and list(labels) == [2, 2, 2]
    rows, _, _ = regression_targets(rec, 0.61)
    assert list(rows) == [0, 2]


# ---------------------------------------------------------------- the multi-stage trainer

def test_stages_train_evaluate_predict_and_resume(tmp_path):
    from detcore.engine import TrainConfig
    from detcore.engine.stages import train_stages

    train_set, val_set = tiny_synthetic(str(tmp_path / "data"))
    data = WithProposals(train_set)
    cfg = TrainConfig(max_iter=4, images_per_batch=2, base_lr=0.005, warmup_iters=0, flip_prob=0.0,
                      tensorboard=False, log_period=2)
    model = models.build("rcnn_vgg16", train_set.num_classes, **RCNN_TINY)
    logs = []
    out = str(tmp_path / "run")
    summary = train_stages(model, data, cfg, out, meta={"model": "rcnn_vgg16"}, log=logs.append, show_progress=False)
    assert set(summary["stage_seconds"]) == {"finetune", "features", "svm", "bbox_reg"}
    cache = FeatureCache(str(tmp_path / "run" / "features"))
    assert summary["feature_cache_bytes"] == cache.total_bytes(len(data)) > 0
    assert bool(model.stages_done.all())
    # the saved detector predicts with its SVMs and regressors
    from detcore.engine import load_model_state, read_checkpoint

    again = models.build("rcnn_vgg16", train_set.num_classes, **RCNN_TINY)
    load_model_state(again, read_checkpoint(summary["checkpoint"]))
    again.eval()
    val = WithProposals(val_set)
    image, target = val[0]
    model.score_thresh = again.score_thresh = float("-inf")  # 4 iterations: keep every region to compare
    pred = again([image], proposals=[target["proposals"]])[0]
    ref = model([image], proposals=[target["proposals"]])[0]
    assert torch.equal(pred["boxes"], ref["boxes"]) and pred["boxes"].shape[0] > 0
    # a second run skips every stage and reuses the cache
    mtimes = [cache.path(i) for i in range(len(data))]
    before = [np.load(p)["pool5"].sum() for p in mtimes]
    logs.clear()
    train_stages(models.build("rcnn_vgg16", train_set.num_classes, **RCNN_TINY), data, cfg, out, log=logs.append,
                 show_progress=False)
    assert sum("skipped" in line for line in logs) == 4
    assert [np.load(p)["pool5"].sum() for p in mtimes] == before
    # a missing cache file is recomputed alone (features resume), the others are reused
    import os

    os.remove(cache.path(0))
    os.remove(os.path.join(out, "features", "manifest.json"))
    logs.clear()
    train_stages(models.build("rcnn_vgg16", train_set.num_classes, **RCNN_TINY), data, cfg, out, log=logs.append,
                 show_progress=False)
    assert any("1 images extracted" in line and f"{len(data) - 1} reused" in line for line in logs)


def test_stages_need_proposals(tmp_path):
    from detcore.engine import TrainConfig
    from detcore.engine.stages import StageError, extract_features

    train_set, _ = tiny_synthetic(str(tmp_path / "data"), num_train=2, num_val=1)
    model = models.build("rcnn_vgg16", train_set.num_classes, **RCNN_TINY)
    with pytest.raises(StageError, match="image 1: the dataset carries no proposals"):
        extract_features(model, WithProposals(train_set, drop=True), FeatureCache(str(tmp_path / "f")))
    assert TrainConfig  # the trainer itself refuses in its first step too
    with pytest.raises(ValueError, match="--proposals"):
        model.train()
        image, target = train_set[0]
        model([image], [target])


def test_stage_outputs_of_other_settings_are_refused(tmp_path):
    from detcore.engine import TrainConfig
    from detcore.engine.stages import StageError, train_stages

    train_set, _ = tiny_synthetic(str(tmp_path / "data"), num_train=2, num_val=1)
    data = WithProposals(train_set)
    cfg = TrainConfig(max_iter=1, images_per_batch=2, warmup_iters=0, flip_prob=0.0, tensorboard=False)
    out = str(tmp_path / "run")
    train_stages(models.build("rcnn_vgg16", train_set.num_classes, **RCNN_TINY), data, cfg, out, log=lambda s: None,
                 show_progress=False)
    import os

    # SVMs of fc7 do not serve a model that reads fc6
    other = models.build("rcnn_vgg16", train_set.num_classes, **RCNN_TINY, svm_feature="fc6")
    with pytest.raises(StageError, match=r"svm.pth holds weights .* on fc7, this model needs .* on fc6"):
        train_stages(other, data, cfg, out, log=lambda s: None, show_progress=False)
    # a corrupt cache file is named
    os.remove(os.path.join(out, "svm.pth"))
    with open(FeatureCache(os.path.join(out, "features")).path(1), "wb") as f:
        f.write(b"not an npz")
    with pytest.raises(StageError, match=r"img_0000001.npz: unreadable"):
        train_stages(other, data, cfg, out, log=lambda s: None, show_progress=False)
