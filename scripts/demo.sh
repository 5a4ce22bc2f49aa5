#!/usr/bin/env bash
# The main job: `detcore demo` (synthetic dataset, a small Mask R-CNN trained
# on the CPU, COCO evaluation, metrics.json and pictures in ./detcore_demo).
# On a fresh machine it does all the set-up first (see setup_venv.sh).
# Extra arguments go to `detcore demo` (e.g. `-o out --threads 2`).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/setup_venv.sh
"$venv/bin/detcore" demo "$@"
