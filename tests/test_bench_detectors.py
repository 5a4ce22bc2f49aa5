"""`detcore bench detectors`: every detector is timed on the same inputs and
the JSON has the documented rows."""

import json

import pytest

from detcore import cli

pytest.importorskip("torch")


def test_bench_detectors_table_and_json(tmp_path, capsys):
    path = tmp_path / "detectors.json"
    assert cli.main(["bench", "detectors", "--preset", "tiny", "--threads", "1", "--json", str(path)]) == 0
    printed = capsys.readouterr().out
    rows = json.load(open(path))["rows"]
    names = ["R-CNN", "SPP-net", "Fast R-CNN", "Fast R-CNN + SVD", "Faster R-CNN"]
    assert [r["model"] for r in rows] == names
    for r in rows:
        assert set(r) == {"model", "test_s_per_image", "proposals_per_image"} and r["test_s_per_image"] > 0
        assert f"| {r['model']} |" in printed
    # the first four score the same external proposals
    assert {r["proposals_per_image"] for r in rows[:4]} == {8.0}
    assert "| R-CNN | " in printed and "| 1.0x |" in printed


def test_bench_detectors_bad_option(capsys):
    with pytest.raises(SystemExit):
        cli.main(["bench", "detectors", "--only", "YOLO"])
    assert "--only: unknown" in capsys.readouterr().err
