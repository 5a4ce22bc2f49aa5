#!/usr/bin/env bash
# The op benchmark table. On a fresh machine it does all the set-up: a
# virtual environment in .venv-bench with torch 2.14.1 and torchvision 0.29.1
# (the peer timed side by side; never a dependency of detcore), then builds
# and installs detcore there and runs benchmarks/bench_ops.py.
# Extra arguments go to bench_ops.py (e.g. `--only nms --device cuda`).
set -euo pipefail
cd "$(dirname "$0")/.."
venv=${DETCORE_BENCH_VENV:-.venv-bench}
[ -x "$venv/bin/python" ] || python3 -m venv "$venv"
"$venv/bin/python" -m pip install -q --upgrade pip
"$venv/bin/python" -m pip install -q numpy "torch==2.14.1" "torchvision==0.29.1" \
  "scikit-build-core>=0.10" "pybind11>=2.12" "cmake>=3.24" ninja
echo "building detcore ..."
"$venv/bin/python" -m pip install -q --no-build-isolation --no-deps .
"$venv/bin/python" benchmarks/bench_ops.py "$@"
