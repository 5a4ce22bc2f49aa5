"""fast_rcnn_vgg16 through the detcore command on proposals from selective
search and from proposal files (written by `detcore proposals`, from selective
search and from a Faster R-CNN's RPN), with the tiny model of the model tests."""

import json
import os
import sys

import numpy as np
import pytest

from detcore import cli
from detcore.proposals import ProposalCache, SelectiveSearchSource, read_proposals
from detcore.proposals.cache import CACHE_FOLDER

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(__file__)), "models"))
from tiny_models import TINY  # noqa: E402

pytest.importorskip("cv2", reason="selective search needs detcore[classic] (opencv-contrib-python-headless)")

DATA = "synthetic:4:2"
SETTINGS = ["max_iter=2", "images_per_batch=2", "log_period=1", "warmup_iters=1", "tensorboard=false"]


def model_args(name):
    return [f"model.{k}={v!r}" for k, v in TINY[name].items()]


FAST = model_args("fast_rcnn_vgg16")


@pytest.fixture(autouse=True)
def one_thread():
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    """A folder whose synthetic dataset every command below shares."""
    return tmp_path_factory.mktemp("fast_rcnn")


@pytest.fixture(scope="module")
def trained_on_selective_search(workdir):
    import torch

    torch.set_num_threads(1)
    out = workdir / "ss"
    out.mkdir()
    # the dataset of `-o out` is out/synthetic; train and evaluate on it
    assert cli.main(["train", "--model", "fast_rcnn_vgg16", "--data", DATA, "--val-data", DATA, "-o", str(out),
                     "--proposals", "selective_search:fast:200", *SETTINGS, *FAST]) == 0
    return out


def test_train_eval_predict_on_selective_search(trained_on_selective_search, capsys, tmp_path):
    out = trained_on_selective_search
    capsys.readouterr()
    assert "AP" in json.load(open(out / "metrics.json"))["bbox"]
    assert len(os.listdir(out / "synthetic/images" / CACHE_FOLDER)) == 6  # 4 train + 2 val images
    weights = str(out / "model_final.pth")
    # eval reads the boxes selective search cached during training (of the images it evaluates)
    assert cli.main(["eval", "--weights", weights, "--data", DATA, "-o", str(out), "--proposals",
                     "selective_search:fast:200"]) == 0
    printed = capsys.readouterr().out
    assert "0 images searched, 2 read from the cache" in printed and "| bbox |" in printed
    assert cli.main(["eval", "--weights", weights, "--data", DATA, "--max-images", "1", "--proposals",
                     "selective_search:fast:150"]) == 0
    assert "1 images searched, 0 read from the cache" in capsys.readouterr().out
    image = out / "synthetic/images/val_00001.png"
    assert cli.main(["predict", "--weights", weights, str(image), "-o", str(tmp_path / "pred"),
                     "--score-threshold", "0", "--proposals", "selective_search:fast:200"]) == 0
    detections = json.load(open(tmp_path / "pred/detections.json"))
    assert detections[0]["image"] == str(image)


@pytest.mark.parametrize("ext", [".npz", ".pkl"])
def test_proposal_files_from_selective_search(trained_on_selective_search, tmp_path, capsys, ext):
    out = trained_on_selective_search
    files = {}
    for split, flag in (("train", ["--train"]), ("val", [])):
        files[split] = str(out / f"{split}{ext}")
        assert cli.main(["proposals", "--data", DATA, "-o", files[split], "--max-proposals", "200", *flag]) == 0
    assert "4 images" in capsys.readouterr().out.split("wrote")[1]
    stored = read_proposals(files["val"])
    assert stored.ids == [1, 2] and stored.file_names == ["val_00000.png", "val_00001.png"]
    cache = ProposalCache(SelectiveSearchSource("fast", 200).cache.settings)
    for boxes, name in zip(stored.boxes, stored.file_names):  # the boxes training cached
        np.testing.assert_array_equal(boxes, np.load(cache.path_for(str(out / "synthetic/images" / name))))

    run = tmp_path / "run"
    assert cli.main(["train", "--model", "fast_rcnn_vgg16", "--data", DATA, "-o", str(run),
                     "--proposals", files["train"], *SETTINGS, *FAST]) == 0
    weights = str(run / "model_final.pth")
    assert cli.main(["eval", "--weights", weights, "--data", DATA, "-o", str(run), "--proposals", files["val"]]) == 0
    image = run / "synthetic/images/val_00000.png"
    assert cli.main(["predict", "--weights", weights, str(image), "-o", str(tmp_path / "pred"),
                     "--proposals", files["val"]]) == 0
    capsys.readouterr()
    # the training file for the validation images: the file of another split
    assert cli.main(["eval", "--weights", weights, "--data", DATA, "--proposals", files["train"]]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "image 1 is val_00000.png in the dataset but train_00000.png" in err


def test_rpn_proposals_train_fast_rcnn(workdir, tmp_path, capsys):
    rpn_run = workdir / "faster"
    assert cli.main(["train", "--model", "faster_rcnn_vgg16", "--data", DATA, "-o", str(rpn_run), *SETTINGS,
                     *model_args("faster_rcnn_vgg16")]) == 0
    path = str(rpn_run / "rpn.pkl")
    assert cli.main(["proposals", "--data", DATA, "--train", "-o", path, "--method", "rpn", "--checkpoint",
                     str(rpn_run / "model_final.pth"), "--max-proposals", "30"]) == 0
    stored = read_proposals(path)
    assert stored.ids == [1, 2, 3, 4] and all(0 < len(b) <= 30 for b in stored.boxes)
    assert all(s.dtype == np.float32 and np.isfinite(s).all() for s in stored.scores)
    assert any(np.any(s != 0) for s in stored.scores)  # RPN objectness logits, not placeholders
    for b in stored.boxes:  # in the original image's pixels (the synthetic images are at most 160 wide)
        assert (b[:, 2] > b[:, 0]).all() and b[:, 2].max() <= 160 and b.min() >= 0
    assert cli.main(["train", "--model", "fast_rcnn_vgg16", "--data", DATA, "-o", str(tmp_path / "alt"),
                     "--proposals", path, *SETTINGS, *FAST]) == 0
    capsys.readouterr()
    assert cli.main(["proposals", "--data", DATA, "-o", str(tmp_path / "x.pkl"), "--method", "rpn", "--checkpoint",
                     str(tmp_path / "alt/model_final.pth")]) == 2
    assert "fast_rcnn_vgg16 has no RPN" in capsys.readouterr().err


def test_missing_or_misplaced_proposals_are_one_line(workdir, capsys):
    out = str(workdir / "errors")
    assert cli.main(["train", "--model", "fast_rcnn_vgg16", "--data", DATA, "-o", out, *SETTINGS, *FAST]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "fast_rcnn_vgg16 takes external proposals: pass --proposals selective_search" in err
    assert cli.main(["train", "--model", "faster_rcnn_vgg16", "--data", DATA, "-o", out, "--proposals",
                     "selective_search", *SETTINGS]) == 2
    assert "faster_rcnn_vgg16 makes its own proposals" in capsys.readouterr().err
    assert cli.main(["train", "--model", "fast_rcnn_vgg16", "--data", DATA, "-o", out, "--proposals",
                     "missing.npz", *SETTINGS, *FAST]) == 2
    assert "proposal file not found: missing.npz" in capsys.readouterr().err
    assert cli.main(["proposals", "--data", DATA, "-o", str(workdir / "p.txt")]) == 2
    assert "cannot tell the proposal format" in capsys.readouterr().err
