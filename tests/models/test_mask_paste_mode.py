"""The ``mask_paste_mode`` model setting: how the mask models paste their
masks into the image (the model's transform, evaluation's resize back to the
original size, ``detcore eval`` / ``predict``, ONNX metadata)."""

import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import detcore.models as models
from detcore import cli, ops
from detcore.engine.checkpoint import save_checkpoint
from detcore.engine.evaluation import mask_paste_mode_of, to_original_size
from detcore.models.transform import Transform
from tiny_models import NUM_CLASSES, TINY


def _mask_results(rng, n=5, size=(40, 52)):
    h, w = size
    xy = rng.uniform(0, 0.6, (n, 2)) * [w, h]
    boxes = torch.tensor(np.concatenate([xy, xy + rng.uniform(4, 30, (n, 2))], 1), dtype=torch.float32)
    masks = torch.tensor(rng.uniform(0, 1, (n, 1, 14, 14)), dtype=torch.float32)
    return {"boxes": boxes, "labels": torch.ones(n, dtype=torch.int64), "scores": torch.ones(n), "masks": masks}


@pytest.mark.parametrize("mode", ["bilinear", "bicubic"])
@pytest.mark.parametrize("threshold", [0.5, None])
def test_transform_pastes_with_its_mode(mode, threshold):
    rng = np.random.default_rng(0)
    result = _mask_results(rng)
    boxes, masks = result["boxes"].clone(), result["masks"].clone()
    transform = Transform(64, 96, mask_threshold=threshold, mask_paste_mode=mode)
    out = transform.postprocess([result], [(40, 52)], [(40, 52)])[0]["masks"]
    expected = ops.paste_masks(masks, boxes, (40, 52), threshold, mode).to(masks.dtype)[:, None]
    torch.testing.assert_close(out, expected, rtol=0, atol=0)
    if threshold is None:  # the modes differ
        other = ops.paste_masks(masks, boxes, (40, 52), None, "bicubic" if mode == "bilinear" else "bilinear")
        assert not torch.equal(out[:, 0], other)


def test_mask_models_take_the_setting_and_check_it():
    model = models.build("mask_rcnn_r50_fpn", NUM_CLASSES, **TINY["mask_rcnn_r50_fpn"], mask_paste_mode="bicubic")
    assert model.transform.mask_paste_mode == "bicubic" and mask_paste_mode_of(model) == "bicubic"
    assert models.build("mask_rcnn_r50_fpn", NUM_CLASSES, **TINY["mask_rcnn_r50_fpn"]).transform.mask_paste_mode \
        == "bilinear"
    with pytest.raises(ValueError, match="mask_paste_mode: expected 'bilinear' or 'bicubic', got 'nearest'"):
        models.build("mask_rcnn_r50_fpn", NUM_CLASSES, **TINY["mask_rcnn_r50_fpn"], mask_paste_mode="nearest")
    with pytest.raises(ValueError, match="model.mask_paste_mode: faster_rcnn_r50_fpn does not use this setting"):
        models.build("faster_rcnn_r50_fpn", NUM_CLASSES, mask_paste_mode="bicubic")


@pytest.mark.parametrize("mode", ["bilinear", "bicubic"])
def test_evaluation_resizes_masks_back_with_the_mode(mode):
    # Masks of an image the data pipeline resized (30 x 40 -> 60 x 80) go back with the model's mode.
    rng = np.random.default_rng(1)
    probs = torch.tensor(rng.uniform(0, 1, (3, 1, 60, 80)), dtype=torch.float32)
    pred = {"boxes": torch.zeros(3, 4), "scores": torch.ones(3), "labels": torch.ones(3, dtype=torch.int64),
            "masks": probs}
    out = to_original_size(pred, (60, 80), (30, 40), mask_paste_mode=mode)
    from pycocotools import mask as mask_utils

    decoded = np.stack([mask_utils.decode(dict(r, counts=r["counts"].encode())) for r in out["masks"]])
    expected = F.interpolate(probs, size=(30, 40), mode=mode, align_corners=False)[:, 0] >= 0.5
    np.testing.assert_array_equal(decoded, expected.numpy())


@pytest.fixture(scope="module")
def mask_checkpoint(tmp_path_factory):
    """An untrained tiny Mask R-CNN that keeps every detection (something to paste)."""
    torch.manual_seed(0)
    settings = dict(TINY["mask_rcnn_r50_fpn"], box_score_thresh=0.0)
    model = models.build("mask_rcnn_r50_fpn", NUM_CLASSES, **settings)
    folder = tmp_path_factory.mktemp("paste_mode")
    path = str(folder / "model.pth")
    save_checkpoint(path, model=model, meta={"model": "mask_rcnn_r50_fpn", "num_classes": NUM_CLASSES,
                                             "model_overrides": settings})
    image = (np.random.default_rng(2).uniform(0, 1, (50, 60, 3)) * 255).astype(np.uint8)
    from PIL import Image

    Image.fromarray(image).save(folder / "image.png")
    return path, str(folder / "image.png")


def test_predict_takes_the_setting(mask_checkpoint, tmp_path, capsys):
    weights, image = mask_checkpoint
    out = tmp_path / "bicubic"
    assert cli.main(["predict", "--weights", weights, image, "model.mask_paste_mode=bicubic", "-o", str(out),
                     "--score-threshold", "0", "--max-detections", "3"]) == 0
    detections = json.load(open(out / "detections.json"))
    assert len(detections) == 1 and detections[0]["detections"]
    assert all("mask_rle" in d for d in detections[0]["detections"])


@pytest.mark.parametrize("command", ["predict", "eval"])
def test_a_bad_mode_is_one_line(mask_checkpoint, tmp_path, capsys, command):
    weights, image = mask_checkpoint
    where = [image] if command == "predict" else ["--data", "synthetic:2:2"]
    assert cli.main([command, "--weights", weights, *where, "model.mask_paste_mode=nearest", "-o",
                     str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "mask_paste_mode: expected 'bilinear' or 'bicubic', got 'nearest'" in err
    assert len(err.strip().splitlines()) == 1


def test_onnx_metadata_records_the_mode():
    from detcore.export.runtime import export_metadata

    model = models.build("mask_rcnn_r50_fpn", NUM_CLASSES, **TINY["mask_rcnn_r50_fpn"], mask_paste_mode="bicubic")
    assert export_metadata(model)["mask_paste_mode"] == "bicubic"
