"""``detcore reproduce focal_loss``: the quick preset end to end, the paper
preset's plan without data, and the verdict computed from the measured APs."""

import json
import math

from detcore.cli import main
from detcore.engine.reproduce import get, runs
from detcore.engine.reproduce.experiments.focal_loss import VARIANTS


def test_quick_preset_writes_numbers(tmp_path):
    assert main(["reproduce", "focal_loss", "--preset", "quick", "-o", str(tmp_path)]) == 0
    out = tmp_path / "focal_loss"
    md = (out / "results.md").read_text()
    assert "| FL (gamma 2, alpha 0.25) (Table 1b, R50) | COCO AP (%) | 34.0 |" in md
    assert "**Verdict.**" in md and (out / "ap_by_loss.png").stat().st_size > 0
    result = json.loads((out / "results.json").read_text())
    rows = result["rows"]
    assert [r["published"] for r in rows] == [31.1, 34.0, 36.0, 32.8, 31.1]
    assert all(r["measured"] is not None and math.isfinite(r["measured"]) for r in rows)
    # the two FL rows are one training; every other row has its own
    assert rows[1]["measured"] == rows[2]["measured"]
    trained = sorted(p.name for p in out.iterdir() if p.name.startswith("train_"))
    assert trained == ["train_ce", "train_fl", "train_ohem13_128_0.5", "train_ohem_128_0.5"]
    config = json.loads((out / "train_ohem13_128_0.5" / "config.json").read_text())
    assert config["model_overrides"]["dense_loss"] == "ohem"
    assert config["model_overrides"]["ohem_positive_fraction"] == 0.25
    assert json.loads((out / "train_ce" / "config.json").read_text())["model_overrides"]["focal_gamma"] == 0.0


def test_paper_preset_plans_table_1_without_data(capsys):
    assert main(["reproduce", "focal_loss", "--preset", "paper", "--dry-run"]) == 0
    plan = json.loads(capsys.readouterr().out)
    assert (plan["data"], plan["val_data"]) == runs.PAPER_COCO
    assert plan["model"] == "retinanet_r50_fpn"
    assert plan["model_settings"] == {"min_size": 600, "max_size": 1000, "trainable_stages": 3}
    assert plan["train"]["max_iter"] == 90000 and plan["train"]["images_per_batch"] == 16
    assert plan["train"]["steps"] == [60000, 80000] and plan["train"]["base_lr"] == 0.01
    # FL, CE and the nine OHEM settings of Table 1d
    assert len(plan["trainings"]) == 11 and set(plan["variants"]) == set(VARIANTS)
    ohem = [t for t in plan["trainings"].values() if t["dense_loss"] == "ohem"]
    assert sorted((t["ohem_batch_size_per_image"], t["ohem_nms_thresh"], t["ohem_positive_fraction"] or 0)
                  for t in ohem) == sorted([(b, n, 0) for b in (128, 256, 512) for n in (0.5, 0.7)]
                                           + [(b, 0.5, 0.25) for b in (128, 256, 512)])
    assert plan["trainings"]["ce"] == {"dense_loss": "focal", "focal_gamma": 0.0, "focal_alpha": 0.75}


def test_small_preset_runs_a_subset_of_the_ohem_grid():
    plan = get("focal_loss").plan("small")
    assert plan["data"] == runs.SMALL_DATA
    assert set(plan["trainings"]) == {"fl", "ce", "ohem_128_0.5", "ohem_256_0.7", "ohem13_128_0.5"}


def _outcome(plan, ap, tmp_path):
    metrics = {name: {"bbox": {"AP": ap[name] / 100}} for name in plan["trainings"]}
    return get("focal_loss").outcome(plan, metrics, {name: 1.0 for name in plan["trainings"]}, str(tmp_path))


def test_the_verdict_follows_the_measured_numbers(tmp_path):
    plan = get("focal_loss").plan("small")
    plan["device"] = "cpu"
    ap = {"fl": 30.0, "ce": 25.0, "ohem_128_0.5": 20.0, "ohem_256_0.7": 28.0, "ohem13_128_0.5": 10.0}
    outcome = _outcome(plan, ap, tmp_path)
    assert outcome.verdict.startswith("2 of 2 published orderings show here")
    assert "30.0 vs 28.0 AP for OHEM, batch 256, NMS 0.7" in outcome.verdict  # the best OHEM run measured
    ap.update(fl=28.2)  # within 0.5 AP of the best OHEM: no effect
    outcome = _outcome(plan, ap, tmp_path)
    assert outcome.verdict.startswith("1 of 2 published orderings show here") and "Not shown: FL above the best" in \
        outcome.verdict
    ap.update(ce=31.0)
    assert _outcome(plan, ap, tmp_path).verdict.startswith("0 of 2")
