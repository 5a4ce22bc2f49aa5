"""The train / eval / predict workflow as a user meets it: settings in any
order, reproducible runs, evaluation during training, category ids, the
output-folder rules, interrupts and resume, config files."""

import json
import os
import re
import signal
import subprocess
import sys
import time

import pytest

from detcore import cli

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "engine"))

MODEL = "stand_in:build"
TINY = ["images_per_batch=2", "log_period=1", "warmup_iters=1", "tensorboard=false"]
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# the folder of the detcore this process imported (installed, or the source tree with its in-place build)
PACKAGE_PARENT = os.path.dirname(os.path.dirname(os.path.abspath(cli.__file__)))


@pytest.fixture(autouse=True)
def restore_threads():
    import torch

    import detcore

    before, before_detcore = torch.get_num_threads(), detcore.num_threads()
    yield
    torch.set_num_threads(before)
    detcore.set_num_threads(before_detcore)


@pytest.fixture(scope="module")
def shapes(tmp_path_factory):
    """A tiny synthetic COCO dataset: (train spec, val spec, paths)."""
    from detcore.data import SyntheticSpec, make_synthetic_dataset

    root = tmp_path_factory.mktemp("shapes")
    paths = make_synthetic_dataset(str(root), SyntheticSpec(num_train=6, num_val=3, image_size=(40, 56),
                                                            object_size=(12, 28), seed=3))
    return f"coco:{paths['train'][0]}:{paths['train'][1]}", f"coco:{paths['val'][0]}:{paths['val'][1]}", paths


def _records(out):
    return [json.loads(line) for line in open(os.path.join(out, "train_metrics.jsonl"))]


def _has_tensorboard() -> bool:
    try:
        from torch.utils.tensorboard import SummaryWriter  # noqa: F401
    except ImportError:
        return False
    return True


def _train(out, data, *extra, model=MODEL):
    return cli.main(["train", "--model", model, "--data", data, "-o", str(out), *TINY, *extra])


# --------------------------------------------------------------------------- bugs

def test_eval_period_evaluates_during_training(shapes, tmp_path, capsys):
    train, val, _ = shapes
    assert _train(tmp_path, train, "--val-data", val, "max_iter=4", "eval_period=2", "tensorboard=true") == 0
    evals = [r for r in _records(tmp_path) if "bbox/AP" in r]
    assert [r["iteration"] for r in evals] == [2, 4]
    assert "iteration 2: bbox AP" in capsys.readouterr().out
    if _has_tensorboard():  # an optional dependency: logged to when installed
        assert any(name.startswith("events.") for name in os.listdir(tmp_path / "tensorboard"))
    else:
        assert not (tmp_path / "tensorboard").exists()
    assert os.path.getsize(tmp_path / "training_curves.png") > 1000


def test_the_same_command_gives_the_same_run(shapes, tmp_path):
    train, _, _ = shapes
    import torch

    first = []
    for name in ("a", "b", "c"):
        torch.manual_seed(len(name) * 7 + ord(name))  # whatever the global RNG held before
        assert _train(tmp_path / name, train, "max_iter=2", *(["seed=5"] if name == "c" else [])) == 0
        first.append([r["loss"] for r in _records(tmp_path / name) if "loss" in r])
    assert first[0] == first[1]
    assert first[0] != first[2]


def test_options_and_settings_in_any_order(shapes, tmp_path):
    train, _, _ = shapes
    assert cli.main(["train", "max_iter=2", "--model", MODEL, *TINY[:2], "--data", train, "-o", str(tmp_path),
                     *TINY[2:], "checkpoint_period=1"]) == 0
    # the resume command of docs/cli.md: the same command plus --resume and a larger max_iter
    assert cli.main(["train", "--model", MODEL, "--data", train, *TINY, "-o", str(tmp_path), "--resume",
                     "max_iter=3"]) == 0
    assert [r["iteration"] for r in _records(tmp_path) if "loss" in r] == [1, 2, 3]
    with pytest.raises(SystemExit):
        cli.main(["train", "--model", MODEL, "--data", train, "-o", str(tmp_path), "--no-such-option"])


def test_keypoints_come_from_the_dataset(shapes, tmp_path, capsys):
    pytest.importorskip("detcore.models")
    from detcore.engine import read_checkpoint

    train, _, _ = shapes
    tiny = ["model.base_width=8", "model.blocks=(1,1,1,1)", "model.fpn_channels=16", "model.representation_size=32",
            "model.keypoint_width=16", "model.min_size=40", "model.max_size=64", "model.box_batch_size_per_image=16",
            "model.rpn_pre_nms_top_n={'training': 50, 'testing': 20}",
            "model.rpn_post_nms_top_n={'training': 20, 'testing': 10}"]
    assert _train(tmp_path / "kp", train, "max_iter=1", *tiny, model="keypoint_rcnn_r50_fpn") == 0
    meta = read_checkpoint(str(tmp_path / "kp/model_final.pth"))["meta"]
    assert meta["model_overrides"]["num_keypoints"] == 4  # the synthetic shapes have 4 keypoints, not COCO's 17
    assert meta["keypoint_names"] == ["top", "right", "bottom", "left"]
    # a model built for another count is refused before training
    assert _train(tmp_path / "kp3", train, "max_iter=1", "model.num_keypoints=3") == 2
    assert "built for 3 keypoints" in capsys.readouterr().err
    assert not os.path.exists(tmp_path / "kp3/train_metrics.jsonl")


def test_keypoint_model_on_a_dataset_without_keypoints(shapes, tmp_path, capsys):
    pytest.importorskip("detcore.models")
    _, _, paths = shapes
    data = json.load(open(paths["train"][0]))
    for cat in data["categories"]:
        cat.pop("keypoints", None)
    ann = tmp_path / "no_keypoints.json"
    ann.write_text(json.dumps(data))
    assert _train(tmp_path / "out", f"coco:{ann}:{paths['train'][1]}", "max_iter=1",
                  model="keypoint_rcnn_r50_fpn") == 2
    assert "has no keypoint annotations" in capsys.readouterr().err


def test_predict_writes_the_dataset_category_ids(shapes, tmp_path):
    _, _, paths = shapes
    ids = {1: 1, 2: 3, 3: 7}  # the synthetic ids -> sparse ids, as COCO's are
    for split in ("train", "val"):
        data = json.load(open(paths[split][0]))
        for cat in data["categories"]:
            cat["id"] = ids[cat["id"]]
        for a in data["annotations"]:
            a["category_id"] = ids[a["category_id"]]
        (tmp_path / f"{split}.json").write_text(json.dumps(data))
    names = {c["name"]: c["id"] for c in data["categories"]}
    assert _train(tmp_path / "run", f"coco:{tmp_path / 'train.json'}:{paths['train'][1]}", "max_iter=3",
                  "base_lr=0.2") == 0
    images = paths["val"][1]
    assert cli.main(["predict", "--weights", str(tmp_path / "run/model_final.pth"), images, "-o",
                     str(tmp_path / "pred"), "--score-threshold", "0"]) == 0
    detections = [d for item in json.load(open(tmp_path / "pred/detections.json")) for d in item["detections"]]
    assert detections
    for det in detections:
        assert det["category_id"] == names[det["label"]]
    # eval's results file carries the same ids
    assert cli.main(["eval", "--weights", str(tmp_path / "run/model_final.pth"), "--data",
                     f"coco:{tmp_path / 'val.json'}:{images}", "-o", str(tmp_path / "eval")]) == 0
    results = json.load(open(tmp_path / "eval/coco_instances_results.json"))
    assert results and {r["category_id"] for r in results} <= {1, 3, 7}


def test_a_model_setting_of_the_wrong_type_is_one_clear_line(shapes, tmp_path, capsys):
    pytest.importorskip("detcore.models")
    train, _, _ = shapes
    assert _train(tmp_path, train, "model.base_width=abc", model="faster_rcnn_r50_fpn") == 2
    err = capsys.readouterr().err
    assert "model.base_width: expected an int, got 'abc'" in err and "Traceback" not in err


def test_docs_name_no_machine_path_and_agree_on_the_demo_numbers():
    cli_md = open(os.path.join(ROOT, "docs/cli.md")).read()
    readme = open(os.path.join(ROOT, "README.md")).read()
    for text in (cli_md, readme):
        assert not re.search(r"(?<![\w.])/(work|home|root|Users)/", text)
    pattern = r"box AP50\s+([\d.]+),\s+box AP\s+([\d.]+),\s+mask AP\s+([\d.]+)"
    assert re.search(pattern, cli_md).groups() == re.search(pattern, readme).groups()


# --------------------------------------------------------------------------- output folders, interrupts, configs

def test_a_non_empty_output_folder_needs_resume_or_overwrite(shapes, tmp_path, capsys):
    train, _, _ = shapes
    assert _train(tmp_path, train, "max_iter=2") == 0
    capsys.readouterr()
    assert _train(tmp_path, train, "max_iter=2") == 2
    err = capsys.readouterr().err
    assert "is not empty" in err and "--resume" in err and "--overwrite" in err
    assert _train(tmp_path, train, "max_iter=1", "--overwrite", "checkpoint_period=0") == 0
    assert [r["iteration"] for r in _records(tmp_path) if "loss" in r] == [1]
    assert json.load(open(tmp_path / "config.json"))["config"]["max_iter"] == 1


def test_resume_restores_the_run_settings_and_says_so(shapes, tmp_path, capsys):
    train, _, _ = shapes
    assert _train(tmp_path, train, "max_iter=2", "base_lr=0.03", "checkpoint_period=1", "model.width=4") == 0
    os.remove(tmp_path / "model_final.pth")
    capsys.readouterr()
    # no --model, --data or settings: they come from the run's config.json
    assert cli.main(["train", "-o", str(tmp_path), "--resume", "max_iter=4"]) == 0
    out = capsys.readouterr().out
    assert "resume: max_iter=4 (the run had 2)" in out
    assert re.search(r"resuming from \S*model_0000001\.pth at iteration 1 of 4", out)
    saved = json.load(open(tmp_path / "config.json"))
    assert saved["config"]["base_lr"] == 0.03 and saved["model_overrides"] == {"width": 4}
    assert [r["iteration"] for r in _records(tmp_path) if "loss" in r] == [1, 2, 3, 4]


def test_keep_checkpoints(shapes, tmp_path):
    train, _, _ = shapes
    assert _train(tmp_path, train, "max_iter=5", "checkpoint_period=1", "keep_checkpoints=2") == 0
    assert sorted(f for f in os.listdir(tmp_path) if f.endswith(".pth")) == [
        "model_0000003.pth", "model_0000004.pth", "model_final.pth"]


def test_config_file_round_trip(shapes, tmp_path):
    train, val, _ = shapes
    assert _train(tmp_path / "a", train, "--val-data", val, "max_iter=2", "gamma=0.5", "model.width=4") == 0
    first = json.load(open(tmp_path / "a/config.json"))
    assert cli.main(["train", "--config", str(tmp_path / "a/config.json"), "-o", str(tmp_path / "b")]) == 0
    assert json.load(open(tmp_path / "b/config.json")) == first
    assert _records(tmp_path / "a")[0]["loss"] == _records(tmp_path / "b")[0]["loss"]
    # YAML, flat keys, and the command line over the file
    pytest.importorskip("yaml")
    (tmp_path / "c.yaml").write_text(f"model: {MODEL}\ndata: '{train}'\nmax_iter: 3\nmodel.width: 4\n"
                                     "tensorboard: false\nimages_per_batch: 2\nwarmup_iters: 1\n")
    assert cli.main(["train", "--config", str(tmp_path / "c.yaml"), "-o", str(tmp_path / "c"), "max_iter=1"]) == 0
    third = json.load(open(tmp_path / "c/config.json"))
    assert third["config"]["max_iter"] == 1 and third["model_overrides"] == {"width": 4}
    (tmp_path / "bad.yaml").write_text("max_iters: 3\n")
    assert cli.main(["train", "--config", str(tmp_path / "bad.yaml"), "-o", str(tmp_path / "d")]) == 2


def test_sigterm_stops_after_the_iteration_and_the_resumed_run_equals_an_uninterrupted_one(shapes, tmp_path):
    import torch

    from detcore.data import CocoDetection
    from detcore.engine import TrainConfig, read_checkpoint, train
    from detcore.engine.trainer import TrainingInterrupted
    from stand_in import StandInDetector

    _, _, paths = shapes
    dataset = CocoDetection(*paths["train"], remove_empty=True, skip_crowd=True)
    cfg = TrainConfig(max_iter=5, images_per_batch=2, warmup_iters=1, log_period=1, tensorboard=False,
                      checkpoint_period=0)
    torch.manual_seed(0)
    full = StandInDetector(dataset.num_classes)
    train(full, dataset, cfg, str(tmp_path / "full"), show_progress=False)

    def signal_at_2(model, iteration):
        if iteration == 2:
            os.kill(os.getpid(), signal.SIGTERM)
        return {}

    torch.manual_seed(0)
    part = StandInDetector(dataset.num_classes)
    with pytest.raises(TrainingInterrupted) as info:
        train(part, dataset, TrainConfig(**{**cfg.to_dict(), "eval_period": 1}), str(tmp_path / "part"),
              evaluate=signal_at_2, show_progress=False)
    assert info.value.iteration == 3 and info.value.signal_name == "SIGTERM"  # the next iteration finished
    assert read_checkpoint(str(tmp_path / "part/model_0000003.pth"))["iteration"] == 3
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL  # the handlers are put back
    torch.manual_seed(1)
    resumed = StandInDetector(dataset.num_classes)
    train(resumed, dataset, cfg, str(tmp_path / "part"), resume=True, show_progress=False)
    losses = [[r["loss"] for r in _records(tmp_path / d) if "loss" in r] for d in ("full", "part")]
    assert losses[0] == losses[1]


def test_ctrl_c_writes_a_checkpoint_and_says_how_to_resume(shapes, tmp_path):
    train, _, _ = shapes
    out = tmp_path / "run"
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([PACKAGE_PARENT, os.path.join(ROOT, "tests/engine"),
                                                       os.environ.get("PYTHONPATH", "")]), OMP_NUM_THREADS="1")
    proc = subprocess.Popen([sys.executable, "-m", "detcore.cli", "train", "--model", MODEL, "--data", train, "-o",
                             str(out), *TINY, "max_iter=100000", "checkpoint_period=0"],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    metrics = out / "train_metrics.jsonl"
    deadline = time.time() + 120
    while time.time() < deadline and (not metrics.exists() or len(metrics.read_text().splitlines()) < 2):
        time.sleep(0.2)
    proc.send_signal(signal.SIGINT)
    stdout, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 130, stderr[-2000:]
    assert "Traceback" not in stderr
    m = re.search(r"interrupted at iteration (\d+); checkpoint (\S+); resume with: detcore train -o (\S+) --resume",
                  stdout)
    assert m and os.path.exists(m.group(2)) and m.group(3) == str(out)
    stopped = int(m.group(1))
    assert cli.main(["train", "-o", str(out), "--resume", f"max_iter={stopped + 2}"]) == 0
    assert [r["iteration"] for r in _records(out) if "loss" in r] == list(range(1, stopped + 3))


def test_settings_that_do_not_fit_the_run_are_one_line(shapes, tmp_path, capsys):
    train, _, _ = shapes
    assert _train(tmp_path / "a", train, "max_iter=1", "freeze=('nothing.',)") == 2
    assert "freeze: no parameter name starts with" in capsys.readouterr().err
    assert _train(tmp_path / "b", train, "max_iter=2") == 0
    assert cli.main(["train", "-o", str(tmp_path / "b"), "--resume", "max_iter=2"]) == 2
    err = capsys.readouterr().err
    assert "is at iteration 2, max_iter is 2; raise max_iter" in err and "Traceback" not in err


def test_training_curves_plot_the_validation_ap():
    from detcore.engine.visualize import _pyplot, training_figure

    records = [{"iteration": i, "loss": 2.0 / i, "loss_a": 1.0 / i, "lr": 0.01} for i in range(1, 5)]
    records += [{"iteration": 2, "bbox/AP": 0.1, "bbox/AP50": 0.3}, {"iteration": 4, "bbox/AP": 0.25, "bbox/AP50": 0.5}]
    fig = training_figure(records)
    assert len(fig.axes) == 3
    lines = {line.get_label(): line for line in fig.axes[2].get_lines()}
    assert list(lines["bbox/AP"].get_xdata()) == [2, 4] and list(lines["bbox/AP"].get_ydata()) == [10.0, 25.0]
    _pyplot().close(fig)
    fig = training_figure(records[:4])  # no evaluation: no AP panel
    assert len(fig.axes) == 2
    _pyplot().close(fig)


def test_train_weights_from_a_checkpoint(shapes, tmp_path, capsys):
    train, _, _ = shapes
    assert _train(tmp_path / "a", train, "max_iter=1") == 0
    capsys.readouterr()
    assert _train(tmp_path / "b", train, "max_iter=1", "--weights", str(tmp_path / "a/model_final.pth")) == 0
    assert f"loaded 8 of 8 tensors from {tmp_path / 'a/model_final.pth'} (detcore checkpoint)" in capsys.readouterr().out
    assert _train(tmp_path / "c", train, "max_iter=1", "model.width=4", "--weights",
                  str(tmp_path / "a/model_final.pth")) == 2
    err = capsys.readouterr().err
    assert "does not fit this model" in err and "shape mismatches" in err and "Traceback" not in err
