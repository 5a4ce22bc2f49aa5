"""The fuzzer's short budget in the normal test run (seeded, about a minute
on 2 cores); `scripts/fuzz.sh` runs the long one."""

import os
import sys

import pytest

pytest.importorskip("torch")
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import fuzzer  # noqa: E402
from op_table import OPS  # noqa: E402

import detcore.ops  # noqa: E402

CASES = int(os.environ.get("DETCORE_FUZZ_CASES", "600"))
SEED = int(os.environ.get("DETCORE_FUZZ_SEED", "20261204"))


def test_every_public_op_has_an_entry_in_the_fuzz_table():
    missing = sorted(set(detcore.ops.__all__) - set(OPS))
    assert not missing, f"add an argument generator for {missing} to OPS in tests/fuzz/op_table.py"


def test_fuzz_short_budget_finds_only_documented_outcomes():
    report = fuzzer.run(CASES, seed=SEED, jobs=2, timeout=120)
    assert report["cases"] == CASES
    assert set(report["ops"]) >= set(OPS)  # every op was called
    assert report["outcomes"].get("ok", 0) > CASES // 5 and report["outcomes"].get("error", 0) > CASES // 5
    details = "\n".join(str(p) for p in report["problems"][:20])
    assert all(v == 0 for v in report["counts"].values()), f"{report['counts']}\n{details}"


def test_the_classifier_refuses_errors_that_do_not_name_an_argument():
    names = {"boxes", "scores"}
    assert fuzzer.call(lambda boxes: 1 / 0, {"boxes": 1}, names)[3] is False  # ZeroDivisionError
    assert fuzzer.call(lambda boxes: (_ for _ in ()).throw(ValueError("array is too big")), {"boxes": 1}, names)[3] \
        is False
    assert fuzzer.call(lambda boxes: (_ for _ in ()).throw(ValueError("boxes: expected (N, 4)")), {"boxes": 1},
                       names)[3] is True
    assert fuzzer.call(lambda boxes: (_ for _ in ()).throw(ValueError("boxes_x: bad")), {"boxes": 1}, names)[3] \
        is False
