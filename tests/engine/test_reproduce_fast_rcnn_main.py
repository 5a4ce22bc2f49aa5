"""`detcore reproduce fast_rcnn_main`: the quick preset end to end, the paper plan dry."""

import json
import math

import pytest

from detcore.cli import main
from detcore.engine.reproduce import runs

pytest.importorskip("sklearn")
pytest.importorskip("cv2", reason="selective search needs detcore[classic] (opencv-contrib-python-headless)")


def test_quick_preset_writes_measured_numbers(tmp_path):
    assert main(["reproduce", "fast_rcnn_main", "--preset", "quick", "-o", str(tmp_path)]) == 0
    result = json.loads((tmp_path / "fast_rcnn_main" / "results.json").read_text())
    rows = {(r["setting"], r["metric"]): r for r in result["rows"]}
    for method in ("R-CNN", "SPP-net", "Fast R-CNN"):
        for metric in ("training time", "test time per image", "VOC07 mAP", "training speed-up over R-CNN"):
            assert math.isfinite(rows[method, metric]["measured"]) and rows[method, metric]["measured"] >= 0
    assert rows["R-CNN", "test speed-up over R-CNN"]["measured"] == 1.0
    measured = result["details"]["measured"]
    assert measured["R-CNN"]["feature_cache_bytes"] > 0 and set(measured["SPP-net"]["stage_seconds"]) == {
        "finetune", "features", "svm", "bbox_reg"}
    md = (tmp_path / "fast_rcnn_main" / "results.md").read_text()
    assert "| Fast R-CNN | VOC07 mAP (%) | 66.9 |" in md and "Fast R-CNN trained" in md.split("**Verdict.**")[1]
    # every detector started from the same conv weights and read the same proposals
    plan = result["plan"]
    assert len({json.dumps(d["model_settings"]["base_width"]) for d in plan["detectors"].values()}) == 1
    assert result["details"]["initial_weights"].endswith("vgg16_conv.pth")


def test_paper_plan_is_the_papers_setting_without_data(capsys):
    assert main(["reproduce", "fast_rcnn_main", "--preset", "paper", "--dry-run"]) == 0
    plan = json.loads(capsys.readouterr().out)
    assert (plan["data"], plan["val_data"]) == runs.PAPER_VOC07 and plan["proposals"] == "selective_search:fast:2000"
    fast, rcnn = plan["detectors"]["Fast R-CNN"], plan["detectors"]["R-CNN"]
    assert fast["model_settings"]["base_width"] == 64 and fast["model_settings"]["min_size"] == 600
    assert fast["settings"]["max_iter"] == 40000 and fast["settings"]["steps"] == [30000]
    assert rcnn["model_settings"]["input_size"] == 224 and plan["pretrain"]["init"] == "imagenet"
