"""`detcore export` and `detcore predict --onnx`: a tiny checkpoint to an
ONNX file, and the same pictures-and-JSON as `predict --weights`; bad input
is one clear line."""

import json

import numpy as np
import pytest
import torch
from detcore import cli
from detcore.engine.checkpoint import save_checkpoint
from detcore.export.compare import matched_fraction
from detcore.models import build
from PIL import Image
from tiny_models import NUM_CLASSES, TINY

NAME = "faster_rcnn_r50_fpn"
OVERRIDES = dict(TINY[NAME], min_size=96, max_size=160, box_score_thresh=0.0)


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    torch.manual_seed(0)
    model = build(NAME, NUM_CLASSES, **OVERRIDES)
    path = tmp_path_factory.mktemp("ckpt") / "model.pth"
    save_checkpoint(str(path), model=model, meta={"model": NAME, "num_classes": NUM_CLASSES,
                                                  "model_overrides": OVERRIDES})
    return path


def _items(path):
    with open(path) as f:
        dets = json.load(f)[0]["detections"]
    return (np.array([d["box_xyxy"] for d in dets]).reshape(-1, 4), np.array([d["category_id"] for d in dets]),
            np.array([d["score"] for d in dets]))


def test_export_then_predict_with_onnxruntime(checkpoint, tmp_path, capsys):
    onnx_path = tmp_path / "model.onnx"
    assert cli.main(["export", "--model", NAME, "--checkpoint", str(checkpoint), "-o", str(onnx_path)]) == 0
    image = tmp_path / "picture.png"
    rng = np.random.default_rng(1)
    Image.fromarray(rng.integers(0, 255, (120, 200, 3), dtype=np.uint8)).save(image)  # resized to 96 x 160
    common = [str(image), "--score-threshold", "0"]
    assert cli.main(["predict", "--weights", str(checkpoint), *common, "-o", str(tmp_path / "eager")]) == 0
    assert cli.main(["predict", "--onnx", str(onnx_path), *common, "-o", str(tmp_path / "onnx")]) == 0
    eager, exported = _items(tmp_path / "eager/detections.json"), _items(tmp_path / "onnx/detections.json")
    assert len(eager[0]) > 0
    # the JSON rounds scores to 4 decimals: compare at that rounding
    eager = (eager[0], eager[1], np.round(eager[2] * 1e4) / 1e4)
    assert matched_fraction(eager, exported) >= 0.98
    assert (tmp_path / "onnx/picture_detections.png").exists()


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--model", "no_such_model"], "--model: expected one of"),
        (["--model", "mask_rcnn_r50_fpn"], "holds a faster_rcnn_r50_fpn, not a mask_rcnn_r50_fpn"),
        (["--model", NAME, "--image-size", "100", "160"], "--image-size: image_size: expected H and W multiples of 32"),
    ],
)
def test_export_bad_input_is_one_clear_line(checkpoint, tmp_path, capsys, extra, message):
    assert cli.main(["export", "--checkpoint", str(checkpoint), "-o", str(tmp_path / "m.onnx"), *extra]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err and len(err.strip().splitlines()) == 1


def test_predict_onnx_bad_file_is_one_clear_line(tmp_path, capsys):
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"not a model")
    image = tmp_path / "p.png"
    Image.fromarray(np.zeros((40, 40, 3), np.uint8)).save(image)
    assert cli.main(["predict", "--onnx", str(bad), str(image), "-o", str(tmp_path / "o")]) == 2
    assert "--onnx: cannot load" in capsys.readouterr().err


def test_export_refuses_an_unexportable_model_in_one_line(tmp_path, capsys):
    overrides = {"base_width": 8, "representation_size": 16, "regression_size": 16}
    path = tmp_path / "overfeat.pth"
    save_checkpoint(str(path), model=build("overfeat", NUM_CLASSES, **overrides),
                    meta={"model": "overfeat", "num_classes": NUM_CLASSES, "model_overrides": overrides})
    assert cli.main(["export", "--model", "overfeat", "--checkpoint", str(path), "-o", str(tmp_path / "m.onnx")]) == 2
    err = capsys.readouterr().err
    assert "overfeat: not exportable: its greedy merge" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "m.onnx").exists()
