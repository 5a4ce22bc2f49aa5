#!/usr/bin/env bash
# The test command. On a fresh machine it does all the set-up: a virtual
# environment in .venv with numpy, PyTorch 2.13.0 (CPU), pytest and the build
# tools, then builds and installs detcore from this checkout and runs pytest.
# Extra arguments go to pytest (e.g. `scripts/test.sh tests/ops -k nms`).
set -euo pipefail
cd "$(dirname "$0")/.."
venv=${DETCORE_VENV:-.venv}
[ -x "$venv/bin/python" ] || python3 -m venv "$venv"
"$venv/bin/python" -m pip install -q --upgrade pip
"$venv/bin/python" -m pip install -q -r requirements-test.txt
echo "building detcore (DETCORE_CUDA=${DETCORE_CUDA:-AUTO}) ..."
"$venv/bin/python" -m pip install -q --no-build-isolation --no-deps .
"$venv/bin/python" -m pytest "$@"
