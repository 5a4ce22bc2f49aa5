import dataclasses
import json
import math
import os

import pytest
import torch

from detcore.engine import (CheckpointError, LRFactor, TrainConfig, apply_overrides, build_optimizer,
                            read_checkpoint, save_checkpoint, train)
from detcore.engine.progress import read_metrics
from stand_in import StandInDetector


def _losses(out_dir):
    return [(r["iteration"], r["loss"]) for r in read_metrics(os.path.join(out_dir, "train_metrics.jsonl"))]


def _cfg(**kw):
    base = dict(max_iter=6, images_per_batch=2, base_lr=0.05, warmup_iters=2, log_period=1, jitter=0.2,
                tensorboard=False)
    return TrainConfig(**{**base, **kw})


def test_short_training_lowers_the_loss(tiny_synthetic, tmp_path):
    train_set, _ = tiny_synthetic
    torch.manual_seed(0)
    model = StandInDetector(train_set.num_classes)
    train(model, train_set, _cfg(max_iter=30, warmup_iters=3, log_period=1, schedule="cosine"), str(tmp_path),
          show_progress=False)
    losses = [loss for _, loss in _losses(tmp_path)]
    assert len(losses) == 30
    assert sum(losses[-5:]) / 5 < 0.7 * sum(losses[:5]) / 5
    assert os.path.exists(tmp_path / "model_final.pth") and os.path.exists(tmp_path / "config.json")


def test_resume_equals_an_uninterrupted_run(tiny_synthetic, tmp_path):
    train_set, _ = tiny_synthetic
    cfg = _cfg(max_iter=6, checkpoint_period=3, clip_grad_norm=1.0)
    torch.manual_seed(0)
    full = StandInDetector(train_set.num_classes)
    train(full, train_set, cfg, str(tmp_path / "full"), show_progress=False)

    class Interrupted(Exception):
        pass

    def crash(model, iteration):  # the run dies right after writing the checkpoint of iteration 3
        raise Interrupted

    torch.manual_seed(0)
    part = StandInDetector(train_set.num_classes)
    with pytest.raises(Interrupted):
        train(part, train_set, dataclasses.replace(cfg, eval_period=3), str(tmp_path / "part"), evaluate=crash,
              show_progress=False)
    assert read_checkpoint(str(tmp_path / "part/model_0000003.pth"))["iteration"] == 3
    assert _losses(tmp_path / "part")[-1][0] == 3
    torch.manual_seed(123)  # a different fresh model and RNG: the checkpoint must restore everything
    resumed = StandInDetector(train_set.num_classes)
    train(resumed, train_set, cfg, str(tmp_path / "part"), resume=True, show_progress=False)

    assert _losses(tmp_path / "part") == _losses(tmp_path / "full")
    for a, b in zip(full.state_dict().values(), resumed.state_dict().values()):
        assert torch.equal(a, b)


def test_checkpoint_errors(tiny_synthetic, tmp_path):
    train_set, _ = tiny_synthetic
    model = StandInDetector(train_set.num_classes)
    path = save_checkpoint(str(tmp_path / "model_0000001.pth"), model=model, iteration=1,
                           meta={"model": "stand_in", "num_classes": train_set.num_classes})
    assert [f for f in os.listdir(tmp_path) if "tmp" in f] == []  # the temporary file is renamed away
    data = open(path, "rb").read()
    open(tmp_path / "cut.pth", "wb").write(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="corrupt or truncated"):
        read_checkpoint(str(tmp_path / "cut.pth"))
    torch.save({"weights": 1}, tmp_path / "other.pth")
    with pytest.raises(CheckpointError, match="not a detcore checkpoint"):
        read_checkpoint(str(tmp_path / "other.pth"))
    with pytest.raises(CheckpointError, match="not found"):
        read_checkpoint(str(tmp_path / "missing.pth"))

    other = StandInDetector(train_set.num_classes + 2)  # other classes: shapes differ
    before = {k: v.clone() for k, v in other.state_dict().items()}
    with pytest.raises(CheckpointError, match="shape mismatches"):
        train(other, train_set, _cfg(max_iter=2), str(tmp_path), resume=path, show_progress=False)
    with pytest.raises(CheckpointError, match="num_classes"):
        train(other, train_set, _cfg(max_iter=2), str(tmp_path), resume=path, show_progress=False,
              meta={"model": "stand_in", "num_classes": train_set.num_classes + 2})
    for k, v in other.state_dict().items():  # nothing was loaded partially
        assert torch.equal(v, before[k])
    wider = StandInDetector(train_set.num_classes, width=4)
    with pytest.raises(CheckpointError, match="does not match the model"):
        train(wider, train_set, _cfg(max_iter=2), str(tmp_path / "w"), resume=path, show_progress=False)
    with pytest.raises(FileNotFoundError, match="no checkpoint"):
        train(wider, train_set, _cfg(max_iter=2), str(tmp_path / "empty"), resume=True, show_progress=False)


def test_nan_loss_is_reported(tiny_synthetic, tmp_path):
    train_set, _ = tiny_synthetic
    model = StandInDetector(train_set.num_classes)
    with torch.no_grad():
        model.classifier.bias.fill_(float("nan"))
    with pytest.raises(FloatingPointError, match="iteration 0"):
        train(model, train_set, _cfg(max_iter=2), str(tmp_path), show_progress=False)


def test_schedules():
    cfg = TrainConfig(max_iter=100, warmup_iters=10, warmup_factor=0.1, steps=(0.5, 80), gamma=0.1)
    f = LRFactor(cfg)
    assert f(0) == pytest.approx(0.1) and f(5) == pytest.approx(0.55) and f(10) == 1.0
    assert f(49) == 1.0 and f(50) == pytest.approx(0.1) and f(80) == pytest.approx(0.01)
    cos = LRFactor(TrainConfig(max_iter=100, warmup_iters=0, schedule="cosine", min_lr_factor=0.1))
    assert cos(0) == 1.0 and cos(50) == pytest.approx(0.55) and cos(100) == pytest.approx(0.1)
    assert cos(25) == pytest.approx(0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi / 4)))


def test_optimizer_groups_and_freezing(tiny_synthetic, tmp_path):
    model = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.BatchNorm2d(4))
    opt = build_optimizer(model, TrainConfig(weight_decay=1e-4, weight_decay_norm=0.0))
    assert [len(g["params"]) for g in opt.param_groups] == [2, 2]
    assert [g["weight_decay"] for g in opt.param_groups] == [1e-4, 0.0]
    train_set, _ = tiny_synthetic
    model = StandInDetector(train_set.num_classes)
    frozen = model.body[0].weight.clone()
    train(model, train_set, _cfg(max_iter=2, freeze=("body.0.",)), str(tmp_path), show_progress=False)
    assert torch.equal(model.body[0].weight, frozen) and not model.body[0].weight.requires_grad
    with pytest.raises(ValueError, match="freeze"):
        train(StandInDetector(train_set.num_classes), train_set, _cfg(max_iter=2, freeze=("nothing.",)),
              str(tmp_path), show_progress=False)


def test_overrides():
    cfg, model = apply_overrides(TrainConfig(), ["max_iter=50", "base_lr=1", "steps=[0.5,0.8]", "amp=true",
                                                 "schedule=cosine", "model.min_size=128", "freeze=backbone.,rpn."])
    assert (cfg.max_iter, cfg.base_lr, cfg.steps, cfg.amp, cfg.schedule) == (50, 1.0, (0.5, 0.8), True, "cosine")
    assert cfg.freeze == ("backbone.", "rpn.") and model == {"min_size": 128}
    with pytest.raises(ValueError, match="unknown setting 'max_iters'"):
        apply_overrides(TrainConfig(), ["max_iters=5"])
    with pytest.raises(ValueError, match="expected a int"):
        apply_overrides(TrainConfig(), ["max_iter=many"])
    with pytest.raises(ValueError, match="schedule"):
        apply_overrides(TrainConfig(), ["schedule=linear"])
    with pytest.raises(ValueError, match="key=value"):
        apply_overrides(TrainConfig(), ["max_iter"])
    json.dumps(cfg.to_dict())


@pytest.mark.cuda
def test_amp_training_on_cuda(tiny_synthetic, tmp_path):
    train_set, _ = tiny_synthetic
    model = StandInDetector(train_set.num_classes)
    summary = train(model, train_set, _cfg(max_iter=3, amp=True), str(tmp_path), device="cuda", show_progress=False)
    assert summary["iteration"] == 3 and math.isfinite(summary["losses"]["loss"])
    payload = read_checkpoint(summary["checkpoint"])
    assert payload["scaler"] and "scale" in payload["scaler"]
