"""`detcore reproduce svd`: the quick preset end to end, the paper plan dry."""

import json
import math

import pytest

from detcore.cli import main
from detcore.engine.reproduce import runs
from detcore.engine.reproduce.experiments.svd import ranks_for

pytest.importorskip("cv2", reason="selective search needs detcore[classic] (opencv-contrib-python-headless)")


def test_quick_preset_evaluates_one_model_at_each_rank(tmp_path):
    assert main(["reproduce", "svd", "--preset", "quick", "-o", str(tmp_path)]) == 0
    out = tmp_path / "svd"
    result = json.loads((out / "results.json").read_text())
    points = result["details"]["points"]
    assert [p["ranks"] for p in points] == [None] + result["plan"]["ranks"]
    for p in points:
        assert all(math.isfinite(p[k]) and p[k] >= 0 for k in ("fc_ms", "test_ms", "map"))
    assert all(math.isfinite(r["measured"]) for r in result["rows"])
    # one training run; each rank is an evaluation of its checkpoint with model.svd_ranks
    assert (out / "fast_rcnn" / "model_final.pth").is_file() and not (out / "fast_rcnn_svd").exists()
    metrics = json.loads((out / "eval_svd_8_2" / "metrics.json").read_text())
    assert metrics["num_images"] == 6
    assert (out / "svd_rank.png").stat().st_size > 0 and "![svd_rank](svd_rank.png)" in (out / "results.md").read_text()


def test_paper_plan_uses_the_papers_ranks(capsys):
    assert main(["reproduce", "svd", "--preset", "paper", "--dry-run"]) == 0
    plan = json.loads(capsys.readouterr().out)
    assert plan["paper_ranks"] == [1024, 256] and [1024, 256] in plan["ranks"]
    assert (plan["data"], plan["val_data"]) == runs.PAPER_VOC07 and plan["model_settings"]["representation_size"] == 4096


def test_ranks_scale_with_the_fc_width():
    assert ranks_for(4096) == [(256, 64), (512, 128), (1024, 256), (2048, 512)]
    assert ranks_for(256) == [(16, 4), (32, 8), (64, 16), (128, 32)]


def test_verdict_follows_the_measured_numbers():
    from detcore.engine.reproduce.experiments.svd import verdict

    full = {"fc_ms": 10.0, "test_ms": 20.0, "map": 50.0}
    shows = verdict(full, {"fc_ms": 3.0, "test_ms": 12.0, "map": 49.8}, 40.0, 64, 16)
    assert "fc layers ran 70% faster" in shows and "the published trade-off shows" in shows
    assert "saves less" in verdict(full, {"fc_ms": 8.0, "test_ms": 18.0, "map": 50.0}, 10.0, 64, 16)
    assert "larger than published" in verdict(full, {"fc_ms": 3.0, "test_ms": 12.0, "map": 45.0}, 40.0, 64, 16)
    slower = verdict(full, {"fc_ms": 11.0, "test_ms": 19.0, "map": 50.0}, 5.0, 64, 16)
    assert "10% slower" in slower and "no faster" in slower
