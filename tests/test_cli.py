"""The detcore command on tiny settings, with the stand-in detector of the
engine tests (``--model stand_in:build``)."""

import json
import os
import sys

import pytest

from detcore import cli

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "engine"))

MODEL = "stand_in:build"
TINY = ["max_iter=3", "images_per_batch=2", "log_period=1", "warmup_iters=1", "tensorboard=false"]


@pytest.fixture(autouse=True)
def one_thread():
    """The commands set one thread (their default): restore the session's counts afterwards."""
    import torch

    import detcore

    before, before_detcore = torch.get_num_threads(), detcore.num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
    detcore.set_num_threads(before_detcore)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    out = tmp_path_factory.mktemp("train")
    assert cli.main(["train", "--model", MODEL, "--data", "synthetic:6:3", "--val-data", "synthetic:6:3", "-o", str(out),
                     *TINY, "model.num_keypoints=4"]) == 0
    return out


def test_train_writes_checkpoint_metrics_and_resumes(trained, capsys):
    out = trained
    assert {"model_final.pth", "train_metrics.jsonl", "metrics.json", "config.json"} <= set(os.listdir(out))
    metrics = json.load(open(out / "metrics.json"))
    assert {"bbox", "segm", "keypoints"} <= set(metrics) and "AP" in metrics["bbox"]
    # --resume continues from the latest checkpoint to a larger max_iter
    os.replace(out / "model_final.pth", out / "model_0000003.pth")
    assert cli.main(["train", "--model", MODEL, "--data", "synthetic:6:3", "-o", str(out), "--resume",
                     *TINY[1:], "max_iter=5", "model.num_keypoints=4"]) == 0
    lines = [json.loads(line) for line in open(out / "train_metrics.jsonl")]
    assert [r["iteration"] for r in lines if "loss" in r] == [1, 2, 3, 4, 5]


def test_eval_and_predict(trained, tmp_path, capsys):
    weights = str(trained / "model_final.pth")
    if not os.path.exists(weights):
        weights = str(trained / "model_0000003.pth")
    assert cli.main(["eval", "--weights", weights, "--data", "synthetic:6:3", "-o", str(tmp_path), "--voc",
                     "--max-images", "2"]) == 0
    printed = capsys.readouterr().out
    assert "| bbox |" in printed and "VOC07 mAP" in printed and "ms per image" in printed
    assert json.load(open(tmp_path / "metrics.json"))["num_images"] == 2
    image = trained / "synthetic/images/val_00000.png"
    assert cli.main(["predict", "--weights", weights, str(image), "-o", str(tmp_path / "pred"),
                     "--score-threshold", "0"]) == 0
    detections = json.load(open(tmp_path / "pred/detections.json"))
    assert detections[0]["image"] == str(image) and os.path.exists(detections[0]["picture"])
    for det in detections[0]["detections"]:
        assert {"label", "score", "box_xyxy", "mask_rle", "keypoints"} <= set(det)


def test_demo_on_tiny_settings(tmp_path, capsys):
    assert cli.main(["demo", "-o", str(tmp_path), "--model", MODEL, "--num-train", "6", "--num-val", "3",
                     *TINY]) == 0
    metrics = json.load(open(tmp_path / "metrics.json"))
    assert {"AP", "AP50"} <= set(metrics["bbox"]) and {"AP", "AP50"} <= set(metrics["segm"])
    for picture in ("predictions.png", "training_curves.png"):
        assert os.path.getsize(tmp_path / picture) > 1000
    assert "box AP50" in capsys.readouterr().out


def test_bench_runs_the_benchmark_script(tmp_path, capsys):
    assert cli.main(["bench", "--only", "box_iou", "--min-seconds", "0.01", "--json", str(tmp_path / "b.json")]) == 0
    assert "| box_iou |" in capsys.readouterr().out and os.path.exists(tmp_path / "b.json")


@pytest.mark.parametrize("argv, message", [
    (["train", "--model", MODEL, "--data", "coco:/nope.json:/nope", "-o", "{tmp}"], "annotation file not found"),
    (["train", "--model", MODEL, "--data", "voc:/nope", "-o", "{tmp}"], "VOC folder"),
    (["train", "--model", MODEL, "--data", "imagenet", "-o", "{tmp}"], "unknown dataset spec"),
    (["train", "--model", MODEL, "--data", "synthetic:4:1", "-o", "{tmp}", "max_iters=3"], "unknown setting"),
    (["train", "--model", MODEL, "--data", "synthetic:4:1", "-o", "{tmp}", "model.depth=3"], "cannot build model"),
    (["train", "--model", "no_such_module:build", "--data", "synthetic:4:1", "-o", "{tmp}"], "cannot import"),
    (["eval", "--weights", "{tmp}/missing.pth", "--data", "synthetic:4:1"], "checkpoint not found"),
    (["predict", "--weights", "{tmp}/missing.pth", "{tmp}/nope.png", "-o", "{tmp}"], "image not found"),
])
def test_clear_errors(tmp_path, capsys, argv, message):
    argv = [a.replace("{tmp}", str(tmp_path)) for a in argv]
    assert cli.main(argv) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


def test_corrupt_checkpoint_is_a_clear_error(tmp_path, capsys):
    (tmp_path / "bad.pth").write_bytes(b"not a checkpoint")
    assert cli.main(["eval", "--weights", str(tmp_path / "bad.pth"), "--data", "synthetic:6:3",
                     "-o", str(tmp_path)]) == 2
    assert "corrupt or truncated" in capsys.readouterr().err


def test_demo_with_the_real_mask_rcnn_on_tiny_settings(tmp_path, capsys):
    models = pytest.importorskip("detcore.models")
    import detcore.ops

    from detcore.engine.demo_cmd import DEMO_MODEL

    if DEMO_MODEL not in models.available() or not hasattr(detcore.ops, "paste_masks"):
        pytest.skip("the demo's detector or its ops are not built in")
    assert cli.main(["demo", "-o", str(tmp_path), "--num-train", "4", "--num-val", "2", *TINY,
                     "model.rpn_pre_nms_top_n={'training': 100, 'testing': 50}"]) == 0
    metrics = json.load(open(tmp_path / "metrics.json"))
    assert metrics["model"] == DEMO_MODEL and {"AP", "AP50"} <= set(metrics["segm"])
