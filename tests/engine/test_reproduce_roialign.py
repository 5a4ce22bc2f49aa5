"""``detcore reproduce roialign``: the quick preset end to end (two Mask
R-CNNs on stride-32 features, RoIPool and RoIAlign, trained and evaluated),
the paper preset planned without data, and its need for ImageNet weights."""

import json
import math

import pytest

from detcore.cli import main
from detcore.engine.reproduce import runs


@pytest.fixture
def one_thread():
    import torch

    before = torch.get_num_threads()
    yield
    torch.set_num_threads(before)


def test_quick_preset_writes_both_poolers_numbers(tmp_path, one_thread):
    assert main(["reproduce", "roialign", "--preset", "quick", "-o", str(tmp_path), "--threads", "1"]) == 0
    out = tmp_path / "roialign"
    result = json.loads((out / "results.json").read_text())
    rows = result["rows"]
    assert len(rows) == 12 and {r["setting"] for r in rows} == {"RoIPool", "RoIAlign"}
    for row in rows:
        assert row["published"] is not None and row["unit"] == "%"
        assert row["measured"] is not None and math.isfinite(row["measured"]) and 0 <= row["measured"] <= 100, row
    assert {(r["setting"], r["metric"], r["published"]) for r in rows} >= {
        ("RoIPool", "mask AP", 23.6), ("RoIAlign", "mask AP", 30.9), ("RoIPool", "box AP75", 26.9),
        ("RoIAlign", "box AP75", 36.4)}
    plan = result["plan"]
    assert plan["model_settings"]["feature_stride"] == 32 and plan["data"] == runs.QUICK_DATA
    # the two runs differ in the pooler only, and each checkpoint says which
    overrides = {p: json.loads((out / f"train_{p}" / "config.json").read_text())["model_overrides"]
                 for p in ("roi_pool", "roi_align")}
    assert overrides["roi_pool"]["pooler"] == "roi_pool" and overrides["roi_align"]["pooler"] == "roi_align"
    assert {k: v for k, v in overrides["roi_pool"].items() if k != "pooler"} == \
           {k: v for k, v in overrides["roi_align"].items() if k != "pooler"}
    assert overrides["roi_align"]["feature_stride"] == 32
    assert "RoIAlign minus RoIPool: mask AP" in result["verdict"]
    md = (out / "results.md").read_text()
    assert "| RoIAlign | mask AP (%) | 30.9 |" in md and "![roialign_gain](roialign_gain.png)" in md
    assert (out / "roialign_gain.png").stat().st_size > 1000


def test_paper_preset_plans_without_data(capsys):
    assert main(["reproduce", "roialign", "--preset", "paper", "--dry-run"]) == 0
    plan = json.loads(capsys.readouterr().out)
    assert (plan["data"], plan["val_data"]) == runs.PAPER_COCO
    ms = plan["model_settings"]
    assert ms["feature_stride"] == 32 and ms["depth"] == 50 and ms["min_size"] == 800
    assert plan["settings"]["max_iter"] == 160000 and plan["settings"]["steps"] == [120000]
    assert plan["settings"]["images_per_batch"] == 16 and plan["settings"]["base_lr"] == 0.02
    assert plan["poolers"] == {"RoIPool": "roi_pool", "RoIAlign": "roi_align"}


def test_small_preset_plans_the_hard_synthetic_data(capsys):
    assert main(["reproduce", "roialign", "--dry-run"]) == 0
    plan = json.loads(capsys.readouterr().out)
    assert plan["preset"] == "small" and plan["data"] == runs.SMALL_DATA
    assert plan["model_settings"]["feature_stride"] == 32 and plan["settings"]["max_iter"] == 700


def test_paper_preset_needs_imagenet_weights(tmp_path, capsys):
    assert main(["reproduce", "roialign", "--preset", "paper", "-o", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "--weights: the paper preset starts from ImageNet ResNet-50 weights" in err and "Traceback" not in err
