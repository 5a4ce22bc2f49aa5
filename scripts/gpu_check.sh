#!/usr/bin/env bash
# Everything that needs a GPU, staged so that one call does it all and a
# failed stage can be rerun alone on the same warm machine (docs/gpu.md):
#
#   scripts/gpu_check.sh [all|build|test|sanitize|bench]...   (default: all)
#
#   build     build and install detcore with the CUDA kernels for this GPU
#   test      the `cuda`-marked tests (CUDA against the CPU, every op and dtype)
#   sanitize  compute-sanitizer: memcheck over the CUDA op tests without
#             PyTorch's caching allocator, then racecheck and synccheck over
#             the kernels that use shared memory and barriers
#   bench     benchmarks/gpu/* side by side with torchvision, CUDA events
#
# Each stage has a time budget (seconds, overridable: BUILD_S, TEST_S,
# MEMCHECK_S, RACECHECK_S, BENCH_S); `all` fits in about 6 minutes on an
# H100/H200. Everything goes to $OUT (default build/gpu_out) as at most seven
# files: build.log, tests.log, sanitizer.log, bench.log, gpu_ops.json,
# summary.md and summary.json. The summary table is printed last.
set -uo pipefail
cd "$(dirname "$0")/.."
out=${OUT:-build/gpu_out}
mkdir -p "$out"
py=${PYTHON:-python3}
stages=("$@")
[ ${#stages[@]} -eq 0 ] && stages=(all)
[ "${stages[*]}" = all ] && stages=(build test sanitize bench)

summary_rows=()
overall=0
record() {  # stage, status word, seconds, detail
  summary_rows+=("| $1 | $2 | $3 | $4 |")
  [ "$2" = ok ] || overall=1
}

# The `cuda` tests that need no engine extras (pycocotools is absent there).
test_dirs() {
  if "$py" -c "import pycocotools, PIL, matplotlib" 2>/dev/null; then echo tests; else echo tests/ops tests/models; fi
}

stage_build() {
  local arch=${CUDA_ARCH:-$(nvidia-smi --query-gpu=compute_cap --format=csv,noheader | head -1 | tr -d '.')}
  echo "== build (sm_$arch)"
  CMAKE_BUILD_PARALLEL_LEVEL=$(nproc) DETCORE_CUDA=ON timeout "${BUILD_S:-300}" \
    "$py" -m pip install --no-build-isolation --no-deps . \
    -Ccmake.define.CMAKE_CUDA_ARCHITECTURES="$arch" >"$out/build.log" 2>&1
  local rc=$?
  nvidia-smi --query-gpu=name,driver_version --format=csv,noheader >>"$out/build.log" 2>&1
  if [ $rc -ne 0 ]; then
    tail -30 "$out/build.log"
    return $rc
  fi
  "$py" -c "import detcore, torch; assert detcore.has_cuda, 'built without CUDA'; print('detcore', detcore.__version__, 'torch', torch.__version__, torch.cuda.get_device_name())" | tee -a "$out/build.log"
}

stage_test() {
  echo "== cuda tests ($(test_dirs))"
  # shellcheck disable=SC2046
  timeout "${TEST_S:-180}" "$py" -m pytest -q -p no:cacheprovider -m cuda $(test_dirs) >"$out/tests.log" 2>&1
  local rc=$?
  tail -15 "$out/tests.log"
  if [ $rc -eq 0 ] && ! grep -qE '[0-9]+ passed' "$out/tests.log"; then
    echo "no cuda test ran (is torch built with CUDA, and a GPU visible?)"
    return 1
  fi
  return $rc
}

# One sanitizer run: returns 0 clean, 7 when the tool found errors, 124 on
# time-out, anything else when the tests themselves failed.
sanitize_one() {  # tool, seconds, pytest selection...
  local tool=$1 seconds=$2
  shift 2
  echo "-- $tool: pytest $*" >>"$out/sanitizer.log"
  PYTORCH_NO_CUDA_MEMORY_CACHING=1 timeout "$seconds" compute-sanitizer --tool "$tool" --error-exitcode 7 \
    --print-limit 20 "$py" -m pytest -q -p no:cacheprovider -m cuda "$@" >>"$out/sanitizer.log" 2>&1
}

describe_sanitizer() {  # exit status -> words
  case $1 in
    0) echo clean ;;
    7) echo "sanitizer errors" ;;
    124) echo "timed out" ;;
    *) echo "tests failed (exit $1) under the sanitizer" ;;
  esac
}

stage_sanitize() {
  : >"$out/sanitizer.log"
  local detail="" rc=0 status
  echo "== compute-sanitizer memcheck (no caching allocator)"
  sanitize_one memcheck "${MEMCHECK_S:-150}" tests/ops -k "not compile"
  status=$?
  detail+="memcheck: $(describe_sanitizer $status); "
  [ $status -eq 0 ] || rc=1
  # Kernels with shared memory and barriers: the nms mask and its device
  # reduction, the deterministic roi_align gather, the focal-loss block sums.
  local shared_memory_tests="(nms and matches_cpu) or deterministic_backward or sum_is_deterministic"
  for tool in racecheck synccheck; do
    echo "== compute-sanitizer $tool"
    sanitize_one "$tool" "${RACECHECK_S:-60}" tests/ops -k "$shared_memory_tests"
    status=$?
    detail+="$tool: $(describe_sanitizer $status); "
    [ $status -eq 0 ] || rc=1
  done
  grep -E "ERROR SUMMARY|RACECHECK SUMMARY|passed|failed" "$out/sanitizer.log" | tail -12
  echo "$detail"
  SANITIZE_DETAIL=$detail
  return $rc
}

stage_bench() {
  echo "== GPU benchmarks"
  timeout "${BENCH_S:-150}" "$py" benchmarks/bench_ops.py --device cuda --min-seconds 0.3 \
    --json "$out/gpu_ops.json" >"$out/bench.log" 2>&1
}

for stage in "${stages[@]}"; do
  case $stage in
    build|test|sanitize|bench) ;;
    *) echo "unknown stage '$stage': expected all, build, test, sanitize or bench" >&2; exit 2 ;;
  esac
  if [ "$stage" != build ] && ! "$py" -c "import detcore, sys; sys.exit(0 if detcore.has_cuda else 1)" 2>/dev/null; then
    record "$stage" skipped 0 "detcore with CUDA is not installed: run the build stage first"
    continue
  fi
  SANITIZE_DETAIL=""
  start=$SECONDS
  "stage_$stage"
  rc=$?
  seconds=$((SECONDS - start))
  case $stage in
    build) detail="$(tail -1 "$out/build.log")" ;;
    test) detail="$(grep -E '[0-9]+ (passed|failed|skipped|error)' "$out/tests.log" | tail -1)" ;;
    sanitize) detail="$SANITIZE_DETAIL" ;;
    bench) detail="$(grep -c '^| ' "$out/bench.log" 2>/dev/null) table lines; see bench.log" ;;
  esac
  [ $rc -eq 124 ] && detail="timed out after ${seconds}s; $detail"
  record "$stage" "$([ $rc -eq 0 ] && echo ok || echo FAILED)" "$seconds" "$detail"
done

{
  echo "| stage | status | seconds | detail |"
  echo "|---|---|---:|---|"
  printf '%s\n' "${summary_rows[@]}"
  if [ -s "$out/bench.log" ]; then
    echo
    sed -n '/^detcore .*torch/,$p' "$out/bench.log" | grep -v '^wrote '
  fi
} >"$out/summary.md"
"$py" - "$out" <<'EOF' || true
import json, sys
out = sys.argv[1]
rows = [line.strip().strip("|").split("|") for line in open(f"{out}/summary.md") if line.startswith("| ") and "stage" not in line]
stages = [dict(zip(("stage", "status", "seconds", "detail"), (c.strip() for c in r))) for r in rows if len(r) == 4]
json.dump({"stages": stages}, open(f"{out}/summary.json", "w"), indent=2)
EOF
echo
cat "$out/summary.md"
exit $overall
