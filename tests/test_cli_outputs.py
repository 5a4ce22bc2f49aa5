"""Devices, threads and the process count; predict's pictures and inputs;
eval's results file and per-class AP; ``--version``."""

import glob
import json
import os
import shutil
import sys

import numpy as np
import pytest
from PIL import Image

import detcore
from detcore import cli

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "engine"))

MODEL = "stand_in:build"
TINY = ["images_per_batch=2", "log_period=1", "warmup_iters=1", "tensorboard=false"]


@pytest.fixture(autouse=True)
def restore_threads():
    import torch

    before, before_detcore = torch.get_num_threads(), detcore.num_threads()
    yield
    torch.set_num_threads(before)
    detcore.set_num_threads(before_detcore)


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """A stand-in model trained for a few iterations on tiny synthetic shapes: (output folder, data spec, val images)."""
    from detcore.data import SyntheticSpec, make_synthetic_dataset

    root = tmp_path_factory.mktemp("outputs")
    paths = make_synthetic_dataset(str(root / "data"), SyntheticSpec(num_train=6, num_val=3, image_size=(48, 64),
                                                                     object_size=(14, 30), seed=4))
    train = f"coco:{paths['train'][0]}:{paths['train'][1]}"
    assert cli.main(["train", "--model", MODEL, "--data", train, "-o", str(root / "run"), *TINY, "max_iter=2",
                     "base_lr=0.001", "seed=3", "--threads", "1"]) == 0  # near its random start: several classes
    return root / "run", f"coco:{paths['val'][0]}:{paths['val'][1]}", paths["val"][1]


def test_cuda_without_cuda_is_one_line(run, tmp_path, capsys):
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    out, val, _ = run
    assert cli.main(["eval", "--weights", str(out / "model_final.pth"), "--data", val, "--device", "cuda"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"detcore eval: error: --device cuda: CUDA is not available (torch {torch.__version__}, "
                   f"built without CUDA)"]
    assert cli.main(["eval", "--weights", str(out / "model_final.pth"), "--data", val, "--device", "tpu"]) == 2
    assert "expected cpu, cuda or cuda:N" in capsys.readouterr().err


def test_without_torch_the_command_says_what_to_install(monkeypatch, tmp_path, capsys):
    monkeypatch.setitem(sys.modules, "torch", None)  # "import torch" now fails as where it is not installed
    assert cli.main(["eval", "--weights", str(tmp_path / "x.pth"), "--data", "synthetic"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "PyTorch is not installed" in err[0] and "pip install 'detcore[train]'" in err[0]


@pytest.mark.parametrize("command", ["train", "eval", "predict", "demo"])
def test_one_thread_rule_for_every_command(command, capsys):
    with pytest.raises(SystemExit):
        cli.main([command, "--help"])
    assert "CPU threads per process (default 1" in " ".join(capsys.readouterr().out.split())


def test_commands_use_one_thread_by_default(run, capsys):
    import torch

    out, val, _ = run
    torch.set_num_threads(2)
    detcore.set_num_threads(2)
    assert cli.main(["eval", "--weights", str(out / "model_final.pth"), "--data", val, "--max-images", "1"]) == 0
    assert torch.get_num_threads() == 1 and detcore.num_threads() == 1


def test_distributed_batch_size_is_checked_once_before_the_model(monkeypatch, tmp_path, capsys):
    monkeypatch.setenv("WORLD_SIZE", "2")
    for rank in ("1", "0"):
        monkeypatch.setenv("RANK", rank)
        assert cli.main(["train", "--model", "no_such_module:build", "--data", "synthetic", "-o", str(tmp_path / "o"),
                         "images_per_batch=3"]) == 2
        err = capsys.readouterr().err
        if rank == "1":
            assert err == ""  # reported once, by the first process
        else:
            assert err.strip() == ("detcore train: error: images_per_batch=3 does not divide across 2 processes; "
                                   "use a multiple of 2")
    assert not os.path.exists(tmp_path / "o")


def test_train_says_how_many_processes_first(run, tmp_path, capsys):
    _, val, _ = run
    assert cli.main(["train", "--model", MODEL, "--data", val, "-o", str(tmp_path), *TINY, "max_iter=1"]) == 0
    assert capsys.readouterr().out.splitlines()[0] == "detcore train: 1 process on cpu, 1 thread(s) each"


def test_predict_pictures_inputs_and_max_detections(run, tmp_path):
    out, _, images = run
    weights = str(out / "model_final.pth")
    # an image of another size than the training ones: the picture keeps its resolution
    big = tmp_path / "photos"
    big.mkdir()
    pixels = np.asarray(Image.open(sorted(glob.glob(os.path.join(images, "*.png")))[0]).convert("RGB"))
    Image.fromarray(np.repeat(np.repeat(pixels, 3, 0), 3, 1)[:, :181]).save(big / "large.png")
    shutil.copy(sorted(glob.glob(os.path.join(images, "*.png")))[1], big / "small.png")
    (big / "notes.txt").write_text("not an image")
    assert cli.main(["predict", "--weights", weights, "-o", str(tmp_path / "p"), str(big), "--score-threshold", "0",
                     os.path.join(images, "val_0000[12].png")]) == 0
    result = json.load(open(tmp_path / "p/detections.json"))
    assert [os.path.basename(r["image"]) for r in result] == ["large.png", "small.png", "val_00001.png",
                                                              "val_00002.png"]
    for r in result:
        assert Image.open(r["picture"]).size == Image.open(r["image"]).size
        scores = [d["score"] for d in r["detections"]]
        assert scores == sorted(scores, reverse=True)
    assert any(len(r["detections"]) > 1 for r in result)
    assert cli.main(["predict", "--weights", weights, "-o", str(tmp_path / "q"), str(big), "--score-threshold", "0",
                     "--max-detections", "1"]) == 0
    limited = json.load(open(tmp_path / "q/detections.json"))
    for full, one in zip(result, limited):
        assert one["detections"] == full["detections"][:1]


def test_labels_of_overlapping_detections_do_not_overlap():
    from detcore.engine.visualize import place_labels

    rng = np.random.default_rng(0)
    boxes = [[10 + rng.uniform(0, 4), 30 + rng.uniform(0, 4), 80, 90] for _ in range(6)] + [[0, 0, 20, 20]]
    sizes = [(40.0, 12.0)] * len(boxes)
    corners = place_labels(boxes, sizes, 200, 150)
    rects = [(x, y, w, h) for (x, y), (w, h) in zip(corners, sizes)]
    for i, a in enumerate(rects):
        assert 0 <= a[0] <= 200 - a[2] and 0 <= a[1] <= 150 - a[3]
        for b in rects[i + 1:]:
            assert not (a[0] < b[0] + b[2] and b[0] < a[0] + a[2] and a[1] < b[1] + b[3] and b[1] < a[1] + a[3])
    assert corners[0] == (boxes[0][0], boxes[0][1] - 12.0)  # the first label sits just above its box


def test_eval_writes_coco_results_and_per_class_ap(run, tmp_path, capsys):
    from pycocotools.coco import COCO

    out, val, _ = run
    assert cli.main(["eval", "--weights", str(out / "model_final.pth"), "--data", val, "-o", str(tmp_path)]) == 0
    printed = capsys.readouterr().out
    assert "| class | bbox AP | segm AP |" in printed and "| circle |" in printed
    metrics = json.load(open(tmp_path / "metrics.json"))
    assert set(metrics["per_class"]["bbox"]) == {"circle", "triangle", "square"}
    gt = COCO(val.split(":")[1])
    results = gt.loadRes(str(tmp_path / "coco_instances_results.json"))
    anns = results.loadAnns(results.getAnnIds())
    assert anns and all(a["category_id"] in gt.getCatIds() and "segmentation" in a for a in anns)


def test_version(capsys):
    with pytest.raises(SystemExit) as info:
        cli.main(["--version"])
    assert info.value.code == 0 and capsys.readouterr().out.strip() == f"detcore {detcore.__version__}"
