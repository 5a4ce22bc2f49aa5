#!/usr/bin/env bash
# Incremental build for working in the source tree: puts detcore/_C next to
# the Python sources, so `PYTHONPATH=python python -m pytest` runs the tests.
# DETCORE_CUDA (AUTO/ON/OFF, default OFF here) and BUILD_DIR may be set.
set -euo pipefail
cd "$(dirname "$0")/.."
build_dir=${BUILD_DIR:-build/dev}
cmake -S . -B "$build_dir" -G Ninja -DCMAKE_BUILD_TYPE=${BUILD_TYPE:-Release} \
  -DDETCORE_CUDA=${DETCORE_CUDA:-OFF} -DDETCORE_DEV_INPLACE=ON \
  -Dpybind11_DIR="$(python3 -m pybind11 --cmakedir)" -DPython_EXECUTABLE="$(command -v python3)" \
  ${CMAKE_ARGS:-} >/dev/null
cmake --build "$build_dir" -j "${JOBS:-2}"
