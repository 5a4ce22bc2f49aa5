"""The `detcore reproduce` frame: registry, presets, report files, reuse of
finished runs, one-line errors. The experiments themselves are tested in
test_reproduce_<name>.py by their quick presets."""

import json
import os

import pytest

from detcore.cli import main
from detcore.engine.reproduce import base, report, runs


class Toy(base.Experiment):
    name = "toy"
    title = "A toy"
    paper = "Nobody, Nowhere 2026"
    claim = "b beats a by 2 points"

    def plan(self, preset, data=None, val_data=None):
        train, val = runs.data_specs(preset, data, val_data, runs.PAPER_VOC07)
        return {"preset": preset, "data": train, "val_data": val, "steps": {"quick": 1, "small": 5}.get(preset, 50)}

    def run(self, plan, workdir, log):
        with open(os.path.join(workdir, "curve.png"), "wb") as f:
            f.write(b"png")
        a, b = 10.0, 11.5
        verdict = "shows" if runs.same_direction(60.0, 62.0, a, b) else "does not show"
        return base.Outcome(rows=[base.Row("a", "mAP", 60.0, a, "%"), base.Row("b", "mAP", 62.0, b, "%"),
                                  base.Row("b", "test time", 0.32, None, "s")],
                            published_setting="VOC07", measured_setting=f"toy, {plan['steps']} steps",
                            verdict=f"The effect {verdict}.", plots=["curve.png"], details={"steps": plan["steps"]})


@pytest.fixture
def toy(monkeypatch):
    monkeypatch.setattr(base, "ORDER", base.ORDER + ("toy",))
    monkeypatch.setitem(base._REGISTRY, "toy", Toy)
    return Toy


def test_register_refuses_a_name_outside_the_order():
    class Stray(base.Experiment):
        name = "stray"

    with pytest.raises(ValueError, match="ORDER"):
        base.register(Stray)


def test_run_writes_results_markdown_and_json(toy, tmp_path, capsys):
    assert main(["reproduce", "toy", "--preset", "quick", "-o", str(tmp_path)]) == 0
    md = (tmp_path / "toy" / "results.md").read_text()
    assert "| a | mAP (%) | 60.0 | 10.0 |" in md and "| b | test time | 0.32 s | - |" in md
    assert "**Verdict.** The effect shows." in md and "![curve](curve.png)" in md
    assert "detcore reproduce toy --preset quick -o DIR" in md
    result = json.loads((tmp_path / "toy" / "results.json").read_text())
    assert result["plan"]["steps"] == 1 and result["plan"]["device"] == "cpu"
    assert result["rows"][1] == {"setting": "b", "metric": "mAP", "published": 62.0, "measured": 11.5, "unit": "%"}


def test_all_writes_a_summary_of_what_ran(toy, tmp_path, monkeypatch):
    monkeypatch.setattr(base, "available", lambda: ["toy"])
    from detcore.engine.reproduce import command

    monkeypatch.setattr(command, "available", lambda: ["toy"])
    assert main(["reproduce", "all", "--preset", "quick", "-o", str(tmp_path)]) == 0
    summary = (tmp_path / report.SUMMARY_MD).read_text()
    assert "| toy | A toy | quick |" in summary and "## toy: A toy" in summary
    assert "![curve](toy/curve.png)" in summary


def test_dry_run_prints_the_paper_plan_without_data(toy, capsys):
    assert main(["reproduce", "toy", "--preset", "paper", "--dry-run"]) == 0
    plan = json.loads(capsys.readouterr().out)
    assert plan["data"] == runs.PAPER_VOC07[0] and plan["val_data"] == runs.PAPER_VOC07[1] and plan["steps"] == 50


@pytest.mark.parametrize("argv, message", [
    (["reproduce", "nonsense", "-o", "x"], "unknown experiment 'nonsense'"),
    (["reproduce", "toy", "--preset", "huge", "-o", "x"], "--preset: expected one of quick, small, paper, got 'huge'"),
    (["reproduce", "toy"], "-o/--output is required"),
    (["reproduce"], "name an experiment"),
])
def test_user_mistakes_get_one_line(toy, capsys, argv, message):
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err and len(err.strip().splitlines()) == 1


def test_list_names_the_presets(capsys):
    assert main(["reproduce", "--list"]) == 0
    out = capsys.readouterr().out
    assert all(f"--preset {p}" in out for p in base.PRESETS)


def test_a_finished_training_run_is_reused(tmp_path, monkeypatch):
    calls = []

    def fake_main(argv):
        calls.append(argv)
        out = argv[argv.index("-o") + 1]
        os.makedirs(out, exist_ok=True)
        open(os.path.join(out, runs.FINAL_CHECKPOINT), "w").close()
        return 0

    monkeypatch.setattr("detcore.cli.main", fake_main)
    kwargs = dict(model="faster_rcnn_r50_fpn", data="synthetic", settings={"max_iter": 3, "steps": (0.5, 0.8)},
                  model_settings={"min_size": 64}, log=lambda *a: None)
    first = runs.train_run(str(tmp_path), "run", **kwargs)
    second = runs.train_run(str(tmp_path), "run", **kwargs)
    assert len(calls) == 1 and first == second
    argv = calls[0]
    assert "max_iter=3" in argv and "steps=[0.5,0.8]" in argv and "model.min_size=64" in argv
    assert "--resume" not in argv and argv[argv.index("--threads") + 1].isdigit()


def test_an_interrupted_training_run_is_resumed(tmp_path, monkeypatch):
    calls = []
    monkeypatch.setattr("detcore.cli.main", lambda argv: calls.append(argv) or 0)
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "model_0000010.pth").write_bytes(b"")
    runs.train_run(str(tmp_path), "run", model="m", data="d", settings={}, log=lambda *a: None)
    assert "--resume" in calls[0]


def test_a_failed_run_is_a_reproduce_error(tmp_path, monkeypatch):
    monkeypatch.setattr("detcore.cli.main", lambda argv: 2)
    with pytest.raises(base.ReproduceError, match="training run failed"):
        runs.train_run(str(tmp_path), "run", model="m", data="d", settings={}, log=lambda *a: None)


def test_same_direction():
    assert runs.same_direction(60, 62, 10, 11)
    assert not runs.same_direction(60, 62, 11, 10)
    assert not runs.same_direction(60, 62, 10, 10.2, tolerance=0.5)


def test_too_weak_needs_every_arm_below_the_floor():
    assert runs.too_weak([1.5, 4.9, None])
    assert not runs.too_weak([1.5, 5.0])
    assert not runs.too_weak([None, None])  # nothing measured is not "weak"; the verdict says so itself
