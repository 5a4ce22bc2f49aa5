"""`detcore reproduce finetune_layers`: the quick preset end to end, the paper plan dry."""

import json
import math

import pytest
import torch

from detcore.cli import main
from detcore.engine.reproduce import runs

pytest.importorskip("cv2", reason="selective search needs detcore[classic] (opencv-contrib-python-headless)")


def test_quick_preset_trains_three_depths_from_the_same_weights(tmp_path):
    assert main(["reproduce", "finetune_layers", "--preset", "quick", "-o", str(tmp_path)]) == 0
    out = tmp_path / "finetune_layers"
    result = json.loads((out / "results.json").read_text())
    assert len(result["rows"]) == 9 and all(math.isfinite(r["measured"]) for r in result["rows"])
    start = torch.load(result["details"]["initial_weights"], weights_only=True)
    # conv1_1 (features.0) is frozen in all three runs, conv2_1 (features.5) only in the first two,
    # conv3_1 (features.10) only in fc6-and-up: the frozen layers keep the initial weights
    kept = {"from_fc6": (0, 5, 10), "from_conv3_1": (0, 5), "from_conv2_1": (0,)}
    for run, frozen in kept.items():
        state = torch.load(out / run / "model_final.pth", weights_only=True)["model"]
        for i in (0, 5, 10):
            same = torch.equal(state[f"backbone.features.{i}.weight"], start[f"features.{i}.weight"])
            assert same == (i in frozen), (run, i)
    assert "Fine-tuning the conv layers from conv3_1" in (out / "results.md").read_text()
    assert result["details"]["initial_weights"].startswith(str(tmp_path / "_stand_in"))


def test_paper_plan(capsys):
    assert main(["reproduce", "finetune_layers", "--preset", "paper", "--dry-run"]) == 0
    plan = json.loads(capsys.readouterr().out)
    stages = {label: r["model_settings"]["trainable_stages"] for label, r in plan["runs"].items()}
    assert stages == {"fc6 and up": 0, "conv3_1 and up": 3, "conv2_1 and up": 4}
    assert (plan["data"], plan["val_data"]) == runs.PAPER_VOC07 and plan["pretrain"]["init"] == "imagenet"


def test_stand_in_is_shared_by_experiments_that_agree_on_it(tmp_path):
    from detcore.engine.reproduce.experiments import _first_line as fl

    plan = {"preset": "small", "data": "synthetic-hard:300:60", "val_data": None, "device": "cpu",
            "pretrain": fl.pretrain_plan("small")}
    a = fl.stand_in_folder(plan, str(tmp_path / "svd"), fl.proposal_spec("small"))
    b = fl.stand_in_folder(plan, str(tmp_path / "finetune_layers"), fl.proposal_spec("small"))
    assert a == b and a.startswith(str(tmp_path / "_stand_in"))
    assert fl.stand_in_folder(plan, str(tmp_path / "svd"), "selective_search:quality:400") != a
    assert fl.stand_in_folder({**plan, "data": "synthetic:50:10"}, str(tmp_path / "svd"), fl.proposal_spec("small")) != a
