#!/usr/bin/env bash
# The test command. On a fresh machine it does all the set-up (see
# setup_venv.sh), then runs pytest. Extra arguments go to pytest
# (e.g. `scripts/test.sh tests/ops -k nms`).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/setup_venv.sh
"$venv/bin/python" -m pytest "$@"
