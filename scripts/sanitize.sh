#!/usr/bin/env bash
# Runs the op tests against a build with AddressSanitizer and
# UndefinedBehaviorSanitizer (CMake option DETCORE_SANITIZE=ON), CPU only.
# The instrumented extension lives in build/asan/pkg, apart from any other
# build; python itself is not instrumented, so libasan is preloaded.
# Extra arguments go to pytest (default: tests/ops).
set -euo pipefail
cd "$(dirname "$0")/.."
build_dir=build/asan
cmake -S . -B "$build_dir" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DDETCORE_CUDA=OFF \
  -DDETCORE_SANITIZE=ON -DDETCORE_DEV_INPLACE=OFF \
  -Dpybind11_DIR="$(python3 -m pybind11 --cmakedir)" -DPython_EXECUTABLE="$(command -v python3)" >/dev/null
cmake --build "$build_dir" -j "${JOBS:-2}"
rm -rf "$build_dir/pkg" && mkdir -p "$build_dir/pkg"
cp -r python/detcore "$build_dir/pkg/"
rm -f "$build_dir"/pkg/detcore/_C*.so
cp "$build_dir"/_C*.so "$build_dir/pkg/detcore/"
export LD_PRELOAD="$(gcc -print-file-name=libasan.so) $(gcc -print-file-name=libubsan.so)"
# Python's own allocations are not freed at exit, so leak reports are noise.
export ASAN_OPTIONS=detect_leaks=0:abort_on_error=1:halt_on_error=1
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
PYTHONPATH="$build_dir/pkg" python3 -m pytest -q -p no:cacheprovider "${@:-tests/ops}"
