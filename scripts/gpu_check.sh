#!/usr/bin/env bash
# Everything that needs a GPU, in one go, for a lent GPU machine with no
# network (see ../shared/GPU.md): build and install detcore there, run the
# `cuda` tests, run them again under compute-sanitizer memcheck, then the GPU
# benchmarks side by side with torchvision. Logs, the table and JSON go to
# $OUT (default build/gpu_out); the table is printed last.
set -uo pipefail
cd "$(dirname "$0")/.."
out=${OUT:-build/gpu_out}
mkdir -p "$out"
arch=${CUDA_ARCH:-90}
status=0

echo "== build (sm_$arch)"
if ! DETCORE_CUDA=ON python3 -m pip install --no-build-isolation --no-deps . \
    -Ccmake.define.CMAKE_CUDA_ARCHITECTURES="$arch" >"$out/build.log" 2>&1; then
  tail -40 "$out/build.log"
  exit 1
fi
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader | tee "$out/gpu.txt"

# The engine tests need pycocotools and Pillow, which the GPU machine may lack.
test_dirs="tests/ops tests/models"
python3 -c "import pycocotools, PIL, matplotlib" 2>/dev/null && test_dirs="tests"
echo "== cuda tests ($test_dirs)"
python3 -m pytest -q -p no:cacheprovider -m cuda $test_dirs 2>&1 | tee "$out/cuda_tests.log" | tail -15
[ "${PIPESTATUS[0]}" -eq 0 ] || status=1

echo "== cuda tests under compute-sanitizer memcheck"
timeout "${SANITIZER_TIMEOUT:-240}" compute-sanitizer --tool memcheck --error-exitcode 7 \
  python3 -m pytest -q -p no:cacheprovider -m cuda tests/ops -k "not compile" >"$out/memcheck.log" 2>&1
memcheck=$?
tail -8 "$out/memcheck.log"
echo "memcheck exit status: $memcheck"
[ "$memcheck" -eq 0 ] || status=1

echo "== GPU benchmarks"
python3 benchmarks/bench_ops.py --device cuda --min-seconds 0.5 --json "$out/gpu_ops.json" >"$out/bench.txt" 2>&1 || status=1
tail -25 "$out/bench.txt"
exit $status
