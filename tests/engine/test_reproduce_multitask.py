"""`detcore reproduce multitask`: the quick preset end to end (three trainings,
four evaluations), and the paper preset's plan without data."""

import json
import math

import numpy as np
import pytest
import torch

pytest.importorskip("cv2")  # selective search: OpenCV's contrib module (detcore[classic])

from detcore.cli import main  # noqa: E402
from detcore.engine.reproduce import runs  # noqa: E402
from detcore.engine.reproduce.experiments.multitask import PUBLISHED, REGRESSOR  # noqa: E402


@pytest.fixture(scope="module")
def quick(tmp_path_factory):
    out = tmp_path_factory.mktemp("reproduce")
    assert main(["reproduce", "multitask", "--preset", "quick", "-o", str(out)]) == 0
    return out / "multitask"


def test_quick_preset_writes_numbers(quick):
    result = json.loads((quick / "results.json").read_text())
    rows = result["rows"]
    assert [r["published"] for r in rows if r["metric"] == "VOC07 mAP"] == list(PUBLISHED.values())
    assert len(rows) == 8 and all(math.isfinite(r["measured"]) and 0 <= r["measured"] <= 100 for r in rows)
    assert result["plan"]["model"] == "fast_rcnn_vgg16" and result["plan"]["proposals"].startswith("selective_search")
    assert "orderings show here" in result["verdict"]
    md = (quick / "results.md").read_text()
    assert "| multi-task training, box regression at test | VOC07 mAP (%) | 66.9 |" in md


def test_quick_preset_runs_the_switches(quick):
    # trained without the box loss: the regressor kept its initial weights in the first stage,
    # and the post-hoc stage changed it and nothing else
    cls_only = torch.load(quick / "train_cls_only" / runs.FINAL_CHECKPOINT, weights_only=True)["model"]
    post_hoc = torch.load(quick / "train_post_hoc_regressors" / runs.FINAL_CHECKPOINT, weights_only=True)["model"]
    changed = {k for k in cls_only if not torch.equal(cls_only[k], post_hoc[k])}
    assert changed == {f"{REGRESSOR}.weight", f"{REGRESSOR}.bias"}
    config = json.loads((quick / "train_post_hoc_regressors" / "config.json").read_text())
    assert json.dumps(REGRESSOR) in json.dumps(config)



def test_quick_preset_regression_off_returns_proposals(quick):
    from PIL import Image

    from detcore.proposals import selective_search

    ann = json.loads((quick / "data" / "synthetic" / "annotations" / "val.json").read_text())
    files = {im["id"]: quick / "data" / "synthetic" / "images" / im["file_name"] for im in ann["images"]}
    proposals = {i: selective_search(np.asarray(Image.open(f).convert("RGB")), "fast", 200) for i, f in files.items()}

    def distance_to_proposals(name):
        out = []
        for det in json.loads((quick / f"eval_{name}" / "coco_instances_results.json").read_text()):
            x, y, w, h = det["bbox"]
            out.append(np.abs(proposals[det["image_id"]] - [x, y, x + w, y + h]).max(1).min())
        return np.array(out)

    for name in ("cls_only", "multitask_no_reg"):
        d = distance_to_proposals(name)
        assert d.size and d.max() < 1e-3, name


def test_paper_preset_plans_without_data(capsys):
    assert main(["reproduce", "multitask", "--preset", "paper", "--dry-run"]) == 0
    plan = json.loads(capsys.readouterr().out)
    assert (plan["data"], plan["val_data"]) == runs.PAPER_VOC07
    assert plan["train"]["max_iter"] == 40000 and plan["train"]["steps"] == [30000]
    assert plan["train"]["base_lr"] == 0.001 and plan["model_settings"]["box_batch_size_per_image"] == 64
    assert plan["post_hoc"]["train_only"] == [REGRESSOR]
    assert plan["cls_only_model_settings"] == {"box_reg_loss_weight": 0.0}
    assert plan["post_hoc_model_settings"] == {"box_cls_loss_weight": 0.0}


def test_small_preset_plans_the_hard_data(capsys):
    assert main(["reproduce", "multitask", "--dry-run"]) == 0
    plan = json.loads(capsys.readouterr().out)
    assert plan["data"] == runs.SMALL_DATA and plan["preset"] == "small"
    assert plan["model_settings"]["base_width"] < 64 and plan["train"]["max_iter"] < 40000
