#!/usr/bin/env bash
# The long fuzz run of every public op (tests/fuzz/fuzzer.py): seeded random
# calls, each batch in a child process, crashes and hangs recorded. Prints
# the counts (cases, crashes, hangs, undocumented exceptions, mutated inputs,
# numpy-vs-torch mismatches) and exits non-zero if any is not 0.
#   FUZZ_CASES (default 20000), FUZZ_SEED (0), FUZZ_JOBS (2), FUZZ_TIMEOUT
#   (seconds without progress that count as a hang, 120), FUZZ_JSON (a file
#   for the full report). Extra arguments go to the fuzzer.
# With DETCORE_VENV unset it uses (and on a fresh machine sets up) .venv as
# scripts/test.sh does; FUZZ_PYTHON=python3 runs an already importable detcore.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ -n "${FUZZ_PYTHON:-}" ]; then
  python=$FUZZ_PYTHON
else
  source scripts/setup_venv.sh
  python="$venv/bin/python"
fi
args=(--cases "${FUZZ_CASES:-20000}" --seed "${FUZZ_SEED:-0}" --jobs "${FUZZ_JOBS:-2}" --timeout "${FUZZ_TIMEOUT:-120}")
[ -n "${FUZZ_JSON:-}" ] && args+=(--json "$FUZZ_JSON")
exec "$python" tests/fuzz/fuzzer.py "${args[@]}" "$@"
