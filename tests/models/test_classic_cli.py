"""R-CNN and SPP-net through the detcore command: train (all stages,
resumable), eval and predict on tiny synthetic data with selective search."""

import json
import os

import pytest

from classic_data import RCNN_TINY, SPP_TINY

from detcore import cli

pytest.importorskip("sklearn")
pytest.importorskip("cv2", reason="selective search needs detcore[classic] (opencv-contrib-python-headless)")

DATA = "synthetic:4:2"
PROPOSALS = ["--proposals", "selective_search:fast:100"]
SETTINGS = ["max_iter=2", "images_per_batch=2", "log_period=1", "warmup_iters=1", "tensorboard=false",
            "base_lr=0.005"]


def model_args(tiny):
    return [f"model.{k}={v!r}" for k, v in tiny.items()]


@pytest.fixture(autouse=True)
def one_thread():
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def test_rcnn_train_resume_eval_predict(tmp_path, capsys):
    out = str(tmp_path / "rcnn")
    args = ["train", "--model", "rcnn_vgg16", "--data", DATA, "--val-data", DATA, "-o", out, *PROPOSALS, *SETTINGS,
            *model_args(RCNN_TINY)]
    assert cli.main(args) == 0
    printed = capsys.readouterr().out
    for i, stage in enumerate(("finetune", "features", "svm", "bbox_reg"), 1):
        assert f"stage {i}/4 {stage}: " in printed
    assert "MiB written" in printed and "AP" in json.load(open(os.path.join(out, "metrics.json")))["bbox"]
    stages = json.load(open(os.path.join(out, "stages.json")))
    assert stages["feature_cache_bytes"] > 0 and set(stages["stage_seconds"]) == {"finetune", "features", "svm",
                                                                                  "bbox_reg"}
    # a resumed run skips every stage and keeps the stages' times
    assert cli.main(args + ["--resume"]) == 0
    printed = capsys.readouterr().out
    assert printed.count("exists, skipped") == 3 and "holds all 4 images" in printed
    assert json.load(open(os.path.join(out, "stages.json"))) == stages
    weights = os.path.join(out, "model_final.pth")
    assert cli.main(["eval", "--weights", weights, "--data", DATA, "-o", out, *PROPOSALS]) == 0
    assert "| bbox |" in capsys.readouterr().out
    image = os.path.join(out, "synthetic/images/val_00001.png")
    assert cli.main(["predict", "--weights", weights, image, "-o", str(tmp_path / "pred"), "--score-threshold", "-1",
                     *PROPOSALS]) == 0
    detections = json.load(open(tmp_path / "pred/detections.json"))
    assert detections[0]["image"] == image and detections[0]["detections"]


def test_sppnet_train_eval_predict(tmp_path, capsys):
    out = str(tmp_path / "spp")
    assert cli.main(["train", "--model", "sppnet_vgg16", "--data", DATA, "--val-data", DATA, "-o", out, *PROPOSALS,
                     *SETTINGS, *model_args(SPP_TINY), "model.finetune_conv=True"]) == 0
    assert "stage 4/4 bbox_reg" in capsys.readouterr().out
    assert "AP" in json.load(open(os.path.join(out, "metrics.json")))["bbox"]
    image = os.path.join(out, "synthetic/images/val_00000.png")
    assert cli.main(["predict", "--weights", os.path.join(out, "model_final.pth"), image, "-o", str(tmp_path / "pred"),
                     "--score-threshold", "-1", *PROPOSALS]) == 0
    assert json.load(open(tmp_path / "pred/detections.json"))[0]["detections"]


def test_rcnn_without_proposals_is_one_line(tmp_path, capsys):
    code = cli.main(["train", "--model", "rcnn_vgg16", "--data", DATA, "-o", str(tmp_path / "x"), *SETTINGS,
                     *model_args(RCNN_TINY)])
    assert code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--proposals" in err[0]
