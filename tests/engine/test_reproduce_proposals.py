"""`detcore reproduce proposals`: the quick preset end to end, the paper plan dry."""

import json
import math

import numpy as np
import pytest

from detcore.cli import main
from detcore.engine.reproduce import runs
from detcore.proposals import read_proposals

pytest.importorskip("cv2", reason="selective search needs detcore[classic] (opencv-contrib-python-headless)")


def test_quick_preset_retrains_per_count_and_on_rpn_proposals(tmp_path):
    assert main(["reproduce", "proposals", "--preset", "quick", "-o", str(tmp_path)]) == 0
    out = tmp_path / "proposals"
    result = json.loads((out / "results.json").read_text())
    counts = result["plan"]["counts"]
    assert [p["count"] for p in result["details"]["points"]] == counts
    assert len(result["rows"]) == len(counts) + 1 and all(math.isfinite(r["measured"]) for r in result["rows"])
    # the files of each count are the first boxes of one search: nested, and capped at the count
    small, large = (read_proposals(str(out / "proposals" / f"fast_top{n}_val.npz")) for n in (counts[0], counts[-1]))
    for image_id in large.ids:
        a, b = small.get(image_id)[0], large.get(image_id)[0]
        assert len(a) <= counts[0] and np.array_equal(a, b[: len(a)])
    rpn = read_proposals(str(out / "proposals" / "rpn_top20_val.npz"))
    assert rpn.scores is not None and max(len(b) for b in rpn.boxes) <= 20
    assert (out / "proposals_map.png").stat().st_size > 0


def test_paper_plan_sweeps_quality_mode(capsys):
    assert main(["reproduce", "proposals", "--preset", "paper", "--dry-run"]) == 0
    plan = json.loads(capsys.readouterr().out)
    assert plan["selective_search"] == "selective_search:quality:10000" and 2000 in plan["counts"]
    assert plan["rpn_top_n"] == {"train": 2000, "test": 300} and plan["retrain_per_count"]
    assert (plan["data"], plan["val_data"]) == runs.PAPER_VOC07


def test_verdict_reads_the_curve():
    from detcore.engine.reproduce.experiments.proposals import verdict

    def points(maps, means=(50, 100, 200, 400)):
        return [{"count": c, "mean_val": float(c), "map": m} for c, m in zip(means, maps)]

    rpn = {"map": 40.0, "mean_val": 50.0}
    assert "as published" in verdict(points([30, 35, 36, 33]), rpn, 200, "small")
    assert "within noise" in verdict(points([30, 35, 36, 35.5]), rpn, 200, "small")
    assert "does not show" in verdict(points([30, 31, 32, 33]), rpn, 200, "small")
    assert "without the published rise" in verdict(points([36, 35, 34, 33]), rpn, 200, "small")
    text = verdict(points([30, 35, 36, 33]), rpn, 200, "small")
    assert "give 40.0, +4.0 against selective search's 200" in text
    saturated = [{"count": 400, "mean_val": 250.0, "map": 33.0}]
    assert "only 250 boxes per image" in verdict(points([30, 35, 36])[:3] + saturated, rpn, 200, "paper")
