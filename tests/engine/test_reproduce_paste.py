"""`detcore reproduce paste`: the quick preset end to end, the paper plan dry."""

import json
import math

from detcore.cli import main
from detcore.engine.reproduce import runs


def test_quick_preset_writes_measured_numbers(tmp_path):
    assert main(["reproduce", "paste", "--preset", "quick", "-o", str(tmp_path)]) == 0
    result = json.loads((tmp_path / "paste" / "results.json").read_text())
    rows = {(r["setting"], r["metric"]): r for r in result["rows"]}
    for mode in ("bilinear", "bicubic"):
        for metric in ("mask AP", "mask AP50", "mask AP75", "box AP (the same detections)", "paste time per image"):
            measured = rows[mode, metric]["measured"]
            assert measured is not None and math.isfinite(measured) and measured >= 0, (mode, metric)
            assert rows[mode, metric]["published"] is None  # the paper gives no number
    # one checkpoint, two evaluations: the same detections, so the same box AP
    assert rows["bilinear", "box AP (the same detections)"]["measured"] == \
        rows["bicubic", "box AP (the same detections)"]["measured"]
    diff = rows["bicubic - bilinear", "mask AP"]["measured"]
    assert diff == round(rows["bicubic", "mask AP"]["measured"] - rows["bilinear", "mask AP"]["measured"], 1)
    details = result["details"]
    assert details["detections"] > 0 and 0 < details["mask_iou_bilinear_vs_bicubic"] <= 1
    assert sorted(p.name for p in (tmp_path / "paste").iterdir() if p.name.startswith("eval_")) == [
        "eval_bicubic", "eval_bilinear"]
    md = (tmp_path / "paste" / "results.md").read_text()
    assert "| bicubic | mask AP (%) | - |" in md and "Bicubic minus bilinear mask AP points: AP " in md.split("**Verdict.**")[1]


def test_paper_plan_is_the_papers_setting_without_data(capsys):
    assert main(["reproduce", "paste", "--preset", "paper", "--dry-run"]) == 0
    plan = json.loads(capsys.readouterr().out)
    assert (plan["data"], plan["val_data"]) == runs.PAPER_COCO and plan["model"] == "mask_rcnn_r50_fpn"
    assert plan["model_settings"] == {"min_size": 800, "max_size": 1333}
    assert plan["settings"]["max_iter"] == 160000 and plan["settings"]["steps"] == [120000]
    assert plan["settings"]["images_per_batch"] == 16 and plan["modes"] == ["bilinear", "bicubic"]


def test_small_plan_uses_the_hard_synthetic_set(capsys):
    assert main(["reproduce", "paste", "--dry-run"]) == 0
    plan = json.loads(capsys.readouterr().out)
    assert plan["preset"] == "small" and plan["data"] == runs.SMALL_DATA and plan["settings"]["max_iter"] == 1500
