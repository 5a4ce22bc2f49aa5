"""Op microbenchmarks, side by side with torchvision when it is importable:
prints a markdown table and writes JSON.

    python benchmarks/bench_ops.py [--device cpu|cuda] [--only nms,roi_align] [--json out.json]

Each module benchmarks/<cpu|gpu>/bench_<op>.py defines ``cases(tv)``
returning harness.Case objects; ``tv`` is torchvision.ops or None. CPU cases
are timed with a wall clock, CUDA cases with CUDA events.
"""

from __future__ import annotations

import argparse
import importlib
import os
import pkgutil
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import harness  # noqa: E402


def load_torchvision_ops():
    try:
        import torchvision.ops as tv_ops
    except Exception:  # not installed, or built against another torch
        return None
    return tv_ops


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", choices=["cpu", "cuda"], default="cpu", help="which workloads to run")
    parser.add_argument("--only", default="", help="comma-separated op modules (e.g. nms,roi_align)")
    parser.add_argument("--json", default=None, help="where to write the JSON (default benchmarks/results/<device>_ops.json)")
    parser.add_argument("--min-seconds", type=float, default=1.0, help="time each callable at least this long")
    args = parser.parse_args(argv)

    import torch

    import detcore

    tv = load_torchvision_ops()
    wanted = {name.strip() for name in args.only.split(",") if name.strip()}
    folder = "gpu" if args.device == "cuda" else "cpu"
    package_dir = os.path.join(os.path.dirname(os.path.abspath(__file__)), folder)
    rows = []
    failed_modules = []
    for module_info in sorted(pkgutil.iter_modules([package_dir]), key=lambda m: m.name):
        name = module_info.name.removeprefix("bench_")
        if not module_info.name.startswith("bench_") or (wanted and name not in wanted):
            continue
        try:
            module = importlib.import_module(f"{folder}.{module_info.name}")
            for case in module.cases(tv):
                row = harness.run_case(case, args.min_seconds, args.device)
                rows.append(row)
                print(harness.format_table([row]).splitlines()[2], flush=True)
        except Exception as e:  # a broken module costs its own rows, not the table
            failed_modules.append(f"{module_info.name}: {type(e).__name__}: {e}")
            print(f"{module_info.name} stopped: {type(e).__name__}: {e}", flush=True)

    print()
    where = torch.cuda.get_device_name() if args.device == "cuda" else f"{detcore.num_threads()} CPU threads"
    print(f"detcore {detcore.__version__}, {where}; torch {torch.__version__}; "
          f"torchvision {'not importable' if tv is None else sys.modules['torchvision'].__version__}")
    print(harness.format_table(rows))
    json_path = args.json or f"benchmarks/results/{args.device}_ops.json"
    os.makedirs(os.path.dirname(os.path.abspath(json_path)), exist_ok=True)
    harness.write_json(rows, json_path, {"device": where, "torch": torch.__version__,
                                         "failed_modules": failed_modules})
    print(f"wrote {json_path}")
    for failure in failed_modules:
        print(f"benchmark module failed: {failure}")
    # Exit 1 when detcore itself failed somewhere (the peer lacking a dtype is not a failure).
    return 1 if failed_modules or any("detcore" in r.errors for r in rows) else 0


if __name__ == "__main__":
    sys.exit(main())
