"""``detcore bench``: runs the op benchmarks of a source checkout.

The benchmark cases live next to the sources (``benchmarks/cpu/bench_*.py``,
run by ``benchmarks/bench_ops.py``); this finds that runner and calls it, so
the command and the script are one implementation. The checkout is looked up
from ``$DETCORE_BENCHMARKS``, the current folder and its parents, then the
folder this package was imported from.
"""

from __future__ import annotations

import importlib.util
import os
from typing import List, Optional

RUNNER = "bench_ops.py"
DETECTORS = "bench_detectors.py"
MODELS = "bench_models.py"


def find_benchmarks_dir() -> Optional[str]:
    candidates = []
    if os.environ.get("DETCORE_BENCHMARKS"):
        candidates.append(os.environ["DETCORE_BENCHMARKS"])
    folder = os.path.abspath(os.getcwd())
    while True:
        candidates.append(os.path.join(folder, "benchmarks"))
        parent = os.path.dirname(folder)
        if parent == folder:
            break
        folder = parent
    here = os.path.dirname(os.path.abspath(__file__))
    candidates.append(os.path.join(os.path.dirname(os.path.dirname(here)), "benchmarks"))
    for candidate in candidates:
        if os.path.isfile(os.path.join(candidate, RUNNER)):
            return candidate
    return None


def main(argv: Optional[List[str]] = None) -> int:
    directory = find_benchmarks_dir()
    if directory is None:
        raise FileNotFoundError("detcore bench runs the benchmarks of a detcore source checkout: no "
                                f"benchmarks/{RUNNER} found from the current folder; run it inside the checkout "
                                "or set DETCORE_BENCHMARKS=/path/to/detcore/benchmarks")
    argv = list(argv or [])
    # `detcore bench detectors ...`: the detectors' test-time table (benchmarks/bench_detectors.py);
    # `detcore bench models ...`: whole detectors against torchvision's and ONNX (benchmarks/bench_models.py)
    runners = {"detectors": (DETECTORS, "detcore_bench_detectors"), "models": (MODELS, "detcore_bench_models")}
    runner, name = runners.get(argv[0], (RUNNER, "detcore_bench_ops")) if argv else (RUNNER, "detcore_bench_ops")
    if runner != RUNNER:
        argv = argv[1:]
    spec = importlib.util.spec_from_file_location(name, os.path.join(directory, runner))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)  # puts the benchmarks folder on sys.path for its case modules
    return module.main(argv) or 0
