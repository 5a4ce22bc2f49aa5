"""A seeded fuzzer of every public op (``detcore.ops.__all__``, argument
generators in op_table.py).

Case i of seed s draws from ``default_rng([s, i])``: an op, valid arguments,
then maybe one corrupted argument (None, wrong shape / dtype / layout,
0-d, empty, non-contiguous, NaN / inf / huge values, huge or numpy ints,
floats for ints, containers, aliasing, and for torch sparse, quantized, meta
and nested tensors, a bfloat16 DLPack array), the framework (numpy, torch
with or without gradients, DLPack), and maybe concurrent threads. Every
``FORK_EVERY``-th case is the thread-and-fork case instead.

Allowed outcomes: a result, or ValueError / TypeError naming an argument of
the op, or MemoryError. Also checked: inputs are not mutated, numpy and torch
give the same result or the same error type, calls from several threads agree
with a single call, backward works where the result needs a gradient.

Cases run in batches in child processes (``python fuzzer.py --worker``), so a
crash (a signal) or a hang (no progress for ``timeout`` seconds) is recorded
and the batch resumes after that case. Run as a script for a report::

    python tests/fuzz/fuzzer.py --cases 2000 --seed 0 --jobs 2
"""

from __future__ import annotations

import argparse
import concurrent.futures
import inspect
import json
import os
import re
import select
import signal
import subprocess
import sys
import tempfile
import threading
import time
import traceback
from collections import Counter

import numpy as np

FORK_EVERY = 250
PROBLEMS = ("crash", "hang", "undocumented", "mutation", "mismatch", "thread_mismatch", "harness_error")


# --- inside a worker ---------------------------------------------------------------------------

class DLPackArray:
    """A minimal non-numpy, non-torch DLPack producer (what JAX or CuPy hand in)."""

    def __init__(self, array):
        self._array = array

    def __dlpack__(self, stream=None, **kwargs):
        return self._array.__dlpack__(**kwargs) if kwargs else self._array.__dlpack__()

    def __dlpack_device__(self):
        return self._array.__dlpack_device__()


def _torch():
    import torch

    return torch


def to_framework(value, framework, requires_grad=False):
    """numpy arrays in `value` (also inside lists) as torch tensors or DLPack arrays."""
    if isinstance(value, np.ndarray):
        if framework == "torch":
            t = _torch().from_numpy(value.astype(value.dtype.newbyteorder("="), copy=True))
            if requires_grad and t.is_floating_point() and t.ndim >= 1:
                t.requires_grad_(True)
            return t
        if framework == "dlpack" and value.dtype.isnative and value.dtype.kind in "fiub":
            return DLPackArray(value.copy())
        return value
    if isinstance(value, (list, tuple)) and any(isinstance(v, np.ndarray) for v in value):
        return type(value)(to_framework(v, framework, requires_grad) for v in value)
    return value


def _huge_ints():
    return [2**62, 2**63, -(2**63) - 1, 10**400]


def corrupt_array(rng, a, framework):
    """(new value, torch_only): one way an array argument can be wrong."""
    choices = ["none", "ndim_up", "ndim_down", "zero_d", "empty", "last_dim", "dtype", "big_endian", "fortran",
               "strided", "nan", "huge", "list", "string", "readonly", "scalar"]
    if framework == "torch":
        choices += ["sparse", "quantized", "meta", "nested", "bf16_dlpack", "int_tensor"]
    kind = choices[rng.integers(len(choices))]
    if kind == "none":
        return None, False
    if kind == "ndim_up":
        return a[None], False
    if kind == "ndim_down":
        return a.reshape(-1), False
    if kind == "zero_d":
        return np.asarray(a.reshape(-1)[0] if a.size else 0.5, a.dtype), False
    if kind == "empty":
        return (a[:0] if a.ndim else np.empty((0,), a.dtype)), False
    if kind == "last_dim":
        return (a[..., :-1] if a.ndim and a.shape[-1] > 1 else np.concatenate([a, a], axis=-1)) if a.ndim else a, False
    if kind == "dtype":
        dt = [np.float16, np.int32, np.int64, np.uint8, np.bool_, np.complex64, np.int16][rng.integers(7)]
        return a.astype(dt), False
    if kind == "big_endian":
        return a.astype(a.dtype.newbyteorder(">")), False
    if kind == "fortran":
        return np.asfortranarray(a), False
    if kind == "strided":
        return (np.repeat(a, 2, axis=0)[::2] if a.ndim else a), False
    if kind == "nan":
        b = a.copy()
        if b.dtype.kind == "f" and b.size:
            b.reshape(-1)[rng.integers(b.size)] = rng.choice([np.nan, np.inf, -np.inf])
        return b, False
    if kind == "huge":
        b = a.copy()
        if b.dtype.kind == "f" and b.size:
            b.reshape(-1)[rng.integers(b.size)] = np.finfo(b.dtype).max
        elif b.dtype.kind == "i" and b.size:
            b.reshape(-1)[rng.integers(b.size)] = np.iinfo(b.dtype).max
        return b, False
    if kind == "list":
        return a.tolist(), False
    if kind == "string":
        return "boxes", False
    if kind == "readonly":
        b = a.copy()
        b.setflags(write=False)
        return b, False
    if kind == "scalar":
        return 1.5, False
    torch = _torch()
    t = to_framework(a, "torch")
    if kind == "sparse":
        return (t.to_sparse() if t.ndim else t), True
    if kind == "quantized":
        return (torch.quantize_per_tensor(t.float(), 0.1, 0, torch.qint8) if t.is_floating_point() else t), True
    if kind == "meta":
        return t.to("meta"), True
    if kind == "nested":
        return (torch.nested.nested_tensor([t.float(), t.float()]) if t.ndim else t), True
    if kind == "bf16_dlpack":
        return DLPackArray(t.to(torch.bfloat16)), True
    return t.to(torch.int64) if t.is_floating_point() else t.double(), True


def corrupt_value(rng, name, value):
    """One way a non-array argument can be wrong (or a valid spelling of it)."""
    from op_table import OVER_LIMIT

    if name in OVER_LIMIT and rng.random() < 0.4:
        limits = OVER_LIMIT[name]
        return limits[rng.integers(len(limits))]
    choices = [None, "bogus", 1.5, True, float("nan"), float("inf"), -1, 0, [], [1], np.int64(2), np.float32(0.5),
               np.array([1, 2]), {"a": 1}, *_huge_ints()]
    if isinstance(value, (list, tuple)) and value:
        choices += [type(value)(list(value)[:-1]), [value[0], 2**63], [value[0], np.int64(3)], [value[0], "x"],
                    [value[0], None], tuple(value) * 2]
        try:
            choices.append(np.array(value))
        except ValueError:  # ragged: no array spelling
            pass
    if isinstance(value, int) and not isinstance(value, bool):
        choices += [np.int32(value), np.int64(value), np.uint8(max(value, 0))]
    return choices[rng.integers(len(choices))]


def _snapshot(value):
    if type(value) is np.ndarray:
        return ("np", value, value.copy())
    if isinstance(value, DLPackArray):
        return ("np", value._array, value._array.copy()) if isinstance(value._array, np.ndarray) else None
    try:
        torch = _torch()
    except ImportError:
        return None
    if isinstance(value, torch.Tensor) and value.layout == torch.strided and not value.is_nested \
            and not value.is_quantized and value.device.type == "cpu":
        return ("torch", value, value.detach().clone())
    return None


def _same_bits(a, b) -> bool:
    if isinstance(a, np.ndarray):
        return a.dtype == b.dtype and a.shape == b.shape and a.tobytes() == b.tobytes()
    torch = _torch()
    return a.dtype == b.dtype and a.shape == b.shape and bool(torch.equal(a.view(torch.uint8) if a.dtype == torch.bool else a, b.view(torch.uint8) if b.dtype == torch.bool else b) or (a.is_floating_point() and torch.equal(torch.isnan(a), torch.isnan(b)) and torch.equal(torch.nan_to_num(a), torch.nan_to_num(b))))


def _as_numpy(x):
    if isinstance(x, np.ndarray):
        return x
    torch = _torch()
    if isinstance(x, torch.Tensor):
        x = x.detach()
        return x.float().numpy() if x.dtype == torch.bfloat16 else x.numpy()
    return np.asarray(x)


def _names_an_argument(message: str, names) -> bool:
    return any(re.search(rf"(^|[^A-Za-z_]){re.escape(n)}([^A-Za-z_]|$)", message) for n in names)


def call(fn, kwargs, names):
    """('ok', result) or ('error', exception type name, message, documented)."""
    try:
        return ("ok", fn(**kwargs))
    except MemoryError as e:
        return ("error", type(e).__name__, str(e), True)
    except (ValueError, TypeError) as e:
        return ("error", type(e).__name__, str(e), _names_an_argument(str(e), names))
    except Exception as e:  # noqa: BLE001 -- any other exception is the finding
        return ("error", type(e).__name__, str(e), False)


def _results_equal(a, b) -> bool:
    if isinstance(a, (list, tuple)):
        return isinstance(b, (list, tuple)) and len(a) == len(b) and all(_results_equal(x, y) for x, y in zip(a, b))
    a, b = _as_numpy(a), _as_numpy(b)
    if a.shape != b.shape or a.dtype != b.dtype:
        return False
    if a.dtype.kind in "fc":
        return bool(np.allclose(a, b, rtol=1e-6, atol=1e-12, equal_nan=True))
    return bool(np.array_equal(a, b))


def _same_outcome(x, y) -> bool:
    if x[0] != y[0]:
        return False
    if x[0] == "error":
        return x[1] == y[1]
    return _results_equal(x[1], y[1])


def _describe(outcome) -> str:
    if outcome[0] == "ok":
        r = outcome[1]
        shapes = [tuple(getattr(v, "shape", ())) for v in r] if isinstance(r, list) else tuple(getattr(r, "shape", ()))
        return f"ok {shapes}"
    return f"{outcome[1]}: {outcome[2][:200]}"


def _threads_agree(fn, kwargs, names, single) -> bool:
    import detcore

    outcomes = [None] * 3

    def run(i):
        if i == 0:
            detcore.set_num_threads(1 + i % 3)
        outcomes[i] = call(fn, kwargs, names)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    detcore.set_num_threads(2)
    return all(_same_outcome(o, single) for o in outcomes)


def run_case(seed: int, index: int) -> dict:
    """One case; returns {'op', 'outcome', 'problems': [...]}."""
    import detcore.ops as ops
    from op_table import OPS, TORCH_ONLY

    if index % FORK_EVERY == FORK_EVERY - 1:
        return fork_case(seed, index)
    rng = np.random.default_rng([seed, index])
    names = sorted(OPS)
    op = names[rng.integers(len(names))]
    gen, caller, differentiable = OPS[op]
    kwargs = gen(rng)
    # The array arguments: only these change framework (a sizes tuple stays one).
    array_args = {k for k, v in kwargs.items() if isinstance(v, np.ndarray) or
                  (isinstance(v, list) and v and all(isinstance(b, np.ndarray) for b in v))}
    fn = caller or getattr(ops, op)
    arg_names = set(inspect.signature(fn).parameters) | set(inspect.signature(getattr(ops, op)).parameters)
    arg_names |= {"rois", "n"}
    frameworks = ["numpy", "torch", "dlpack"]
    framework = frameworks[rng.integers(3)]
    if op in TORCH_ONLY:  # an nn.Module over tensors: no numpy twin to compare with
        framework = "torch"
    requires_grad = framework == "torch" and differentiable and rng.random() < 0.5
    torch_only = False
    corrupted = None
    if rng.random() < 0.6:
        corrupted = list(kwargs)[rng.integers(len(kwargs))]
        value = kwargs[corrupted]
        if isinstance(value, np.ndarray):
            kwargs[corrupted], torch_only = corrupt_array(rng, value, framework)
        elif rng.random() < 0.2 and sum(isinstance(v, np.ndarray) for v in kwargs.values()) >= 2:
            arrays = [k for k, v in kwargs.items() if isinstance(v, np.ndarray)]
            kwargs[arrays[0]] = kwargs[arrays[1]]  # aliasing: one array for two arguments
            corrupted = f"{arrays[0]}=alias"
        else:
            kwargs[corrupted] = corrupt_value(rng, corrupted, value)
    if framework == "torch" and "dtype" in kwargs and corrupted != "dtype" and rng.random() < 0.5:
        kwargs["dtype"] = _torch().float32 if kwargs["dtype"] == np.float32 else _torch().float64
    if framework != "numpy" and "device" in inspect.signature(fn).parameters and rng.random() < 0.5:
        kwargs["device"] = ["cpu", "cpu:0", "cuda:7", "bogus", "meta", 3, None][rng.integers(7)]
    # Gradients are asked for the first array argument (the one ops differentiate).
    first = next((k for k, v in kwargs.items() if isinstance(v, np.ndarray)), None)
    args = {k: to_framework(v, framework, requires_grad and k == first) if k in array_args else v
            for k, v in kwargs.items()}
    snapshots = [s for s in map(_snapshot, _flat(args)) if s is not None]

    outcome = call(fn, args, arg_names)
    problems = []
    if outcome[0] == "error" and not outcome[3]:
        problems.append(("undocumented", _describe(outcome)))
    for kind, live, saved in snapshots:
        if not _same_bits(live if kind == "np" else live.detach(), saved):
            problems.append(("mutation", "an input changed"))
    if outcome[0] == "ok" and requires_grad:
        grad = _backward(outcome[1])
        if grad is not None and grad[0] == "error" and not grad[3]:
            problems.append(("undocumented", "backward " + _describe(grad)))
    if framework in ("numpy", "torch") and not torch_only and op not in TORCH_ONLY:
        other = "torch" if framework == "numpy" else "numpy"
        twin = call(fn, {k: _convert_back(v, other) if k in array_args or isinstance(v, _torch().dtype) else v
                         for k, v in args.items()}, arg_names)
        if not _same_outcome(outcome, twin):
            problems.append(("mismatch", f"{framework}: {_describe(outcome)} / {other}: {_describe(twin)}"))
    if rng.random() < 0.1 and not torch_only and not requires_grad:
        if not _threads_agree(fn, args, arg_names, outcome):
            problems.append(("thread_mismatch", _describe(outcome)))
    return {"op": op, "framework": framework, "corrupted": corrupted, "outcome": _describe(outcome)[:80],
            "problems": problems}


def _flat(args):
    for v in args.values():
        if isinstance(v, (list, tuple)):
            yield from v
        else:
            yield v


def _convert_back(value, framework):
    """A torch argument as numpy and back (for the numpy-vs-torch twin call)."""
    try:
        torch = _torch()
    except ImportError:
        return value
    if framework == "numpy" and isinstance(value, torch.Tensor):
        if value.dtype == torch.bfloat16:
            return value
        return value.detach().numpy().copy()
    if framework == "numpy" and isinstance(value, torch.dtype):
        return {torch.float32: np.float32, torch.float64: np.float64}.get(value, value)
    if isinstance(value, (list, tuple)):
        return type(value)(_convert_back(v, framework) for v in value)
    return to_framework(value, framework)


def _backward(result):
    torch = _torch()
    outs = result if isinstance(result, (list, tuple)) else [result]
    outs = [o for o in outs if isinstance(o, torch.Tensor) and o.requires_grad]
    if not outs:
        return None
    return call(lambda: sum(o.sum() for o in outs).backward(), {}, ())


def fork_case(seed: int, index: int, forks: int = 6, child_timeout: float = 20.0) -> dict:
    """Threads run ops and change the thread count while this thread forks;
    each child must finish a multi-threaded op."""
    import detcore
    import detcore.ops as ops

    rng = np.random.default_rng([seed, index])
    boxes = np.sort(rng.uniform(0, 100, (400, 4)), axis=1).astype(np.float32)[:, [0, 1, 2, 3]]
    boxes[:, 2:] = boxes[:, :2] + rng.uniform(1, 20, (400, 2))
    scores = rng.random(400).astype(np.float32)
    stop = threading.Event()

    def busy():
        while not stop.is_set():
            ops.box_iou(boxes, boxes)
            ops.make_anchors([(30, 30)], [8], (32, 64), (0.5, 1.0, 2.0))

    def resize():
        n = 1
        while not stop.is_set():
            detcore.set_num_threads(n % 4 + 1)
            n += 1

    workers = [threading.Thread(target=busy), threading.Thread(target=busy), threading.Thread(target=resize)]
    for w in workers:
        w.start()
    problems = []
    try:
        for _ in range(forks):
            time.sleep(float(rng.uniform(0, 0.02)))
            pid = os.fork()
            if pid == 0:  # the child: a multi-threaded op must finish
                code = 1
                try:
                    signal.alarm(int(child_timeout) + 5)
                    detcore.set_num_threads(3)
                    keep = ops.nms(boxes, scores, 0.5)
                    iou = ops.box_iou(boxes, boxes)
                    code = 0 if len(keep) and iou.shape == (400, 400) else 1
                finally:
                    os._exit(code)
            deadline = time.monotonic() + child_timeout
            while True:
                done, status = os.waitpid(pid, os.WNOHANG)
                if done:
                    if not (os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0):
                        problems.append(("hang", f"forked child ended with status {status}"))
                    break
                if time.monotonic() > deadline:
                    os.kill(pid, signal.SIGKILL)
                    os.waitpid(pid, 0)
                    problems.append(("hang", "forked child did not finish"))
                    break
                time.sleep(0.01)
    finally:
        stop.set()
        for w in workers:
            w.join()
        detcore.set_num_threads(2)
    return {"op": "thread_and_fork", "framework": "numpy", "corrupted": None, "outcome": "forks", "problems": problems}


def worker(seed: int, start: int, stop: int) -> None:
    """Runs cases [start, stop), printing BEGIN i before and a JSON line after each."""
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    import warnings

    warnings.simplefilter("ignore")
    try:
        import torch

        torch.set_num_threads(1)
    except ImportError:
        pass
    import detcore

    detcore.set_num_threads(2)
    for i in range(start, stop):
        print(f"BEGIN {i}", flush=True)
        try:
            record = run_case(seed, i)
        except Exception as e:  # noqa: BLE001 -- a bug of the fuzzer itself, reported as such
            record = {"op": "?", "framework": "?", "corrupted": None, "outcome": "harness",
                      "problems": [("harness_error", f"{type(e).__name__}: {e} at {traceback.format_exc()[-300:]}")]}
        print("END " + json.dumps({"i": i, **record}), flush=True)


# --- the parent --------------------------------------------------------------------------------

def _run_range(seed: int, start: int, stop: int, timeout: float, env) -> list[dict]:
    """Runs cases [start, stop) in child processes; a crash or a hang ends
    one child, is recorded for the case it was in, and a new child resumes."""
    records = []
    here = os.path.abspath(__file__)
    while start < stop:
        stderr = tempfile.TemporaryFile()
        proc = subprocess.Popen([sys.executable, here, "--worker", str(seed), str(start), str(stop)],
                                stdout=subprocess.PIPE, stderr=stderr, env=env)
        current, last_progress = None, time.monotonic()
        buffer = ""
        hung = False
        while True:
            ready, _, _ = select.select([proc.stdout], [], [], 1.0)
            if ready:
                chunk = os.read(proc.stdout.fileno(), 65536).decode()
                if not chunk:
                    break
                buffer += chunk
                *lines, buffer = buffer.split("\n")
                for line in lines:
                    if line.startswith("BEGIN "):
                        current, last_progress = int(line.split()[1]), time.monotonic()
                    elif line.startswith("END "):
                        records.append(json.loads(line[4:]))
                        start, current, last_progress = records[-1]["i"] + 1, None, time.monotonic()
            elif time.monotonic() - last_progress > timeout:
                hung = True
                proc.kill()
                break
        proc.wait()
        stderr.seek(0)
        tail = stderr.read()[-400:].decode(errors="replace")
        stderr.close()
        if current is not None:
            kind = "hang" if hung else "crash"
            records.append({"i": current, "op": "?", "framework": "?", "corrupted": None, "outcome": kind,
                            "problems": [(kind, f"case {current}: exit status {proc.returncode}: {tail}")]})
            start = current + 1
        elif proc.returncode != 0 and start < stop:  # died between cases (e.g. at start-up)
            records.append({"i": start, "op": "?", "framework": "?", "corrupted": None, "outcome": "crash",
                            "problems": [("crash", f"worker exit status {proc.returncode} before case {start}: {tail}")]})
            start += 1
    return records


def run(cases: int, seed: int = 0, jobs: int = 1, timeout: float = 60.0, batch: int = 400) -> dict:
    """Runs `cases` cases of `seed`; returns the counts and the problems found."""
    import detcore

    env = dict(os.environ)  # the workers import the detcore this process imports
    package_dir = os.path.dirname(os.path.dirname(os.path.abspath(detcore.__file__)))
    env["PYTHONPATH"] = os.pathsep.join(p for p in [package_dir, env.get("PYTHONPATH")] if p)
    env.setdefault("OMP_NUM_THREADS", "1")
    ranges = [(s, min(s + batch, cases)) for s in range(0, cases, batch)]
    with concurrent.futures.ThreadPoolExecutor(max_workers=max(jobs, 1)) as pool:
        parts = list(pool.map(lambda r: _run_range(seed, r[0], r[1], timeout, env), ranges))
    records = [r for part in parts for r in part]
    counts = Counter({k: 0 for k in PROBLEMS})
    for r in records:
        for kind in {p[0] for p in r["problems"]}:
            counts[kind] += 1
    return {"seed": seed, "cases": len(records), "counts": dict(counts),
            "ops": dict(Counter(r["op"] for r in records)),
            "outcomes": dict(Counter("ok" if r["outcome"].startswith("ok") else "error" for r in records)),
            "problems": [{"i": r["i"], "op": r["op"], "framework": r["framework"], "corrupted": r["corrupted"],
                          "problems": r["problems"]} for r in records if r["problems"]]}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cases", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--jobs", type=int, default=1)
    parser.add_argument("--timeout", type=float, default=60.0, help="seconds without progress that count as a hang")
    parser.add_argument("--json", help="write the full report here")
    parser.add_argument("--worker", nargs=3, type=int, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        worker(*args.worker)
        return 0
    started = time.monotonic()
    report = run(args.cases, args.seed, args.jobs, args.timeout)
    report["seconds"] = round(time.monotonic() - started, 1)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(report, f, indent=1)
    for p in report["problems"][:30]:
        print(f"case {p['i']} {p['op']} ({p['framework']}, corrupted {p['corrupted']}): {p['problems']}")
    c = report["counts"]
    print(f"seed {args.seed}: {report['cases']} cases in {report['seconds']} s "
          f"({report['outcomes'].get('ok', 0)} results, {report['outcomes'].get('error', 0)} errors): "
          f"{c['crash']} crashes, {c['hang']} hangs, {c['undocumented']} undocumented exceptions, "
          f"{c['mutation']} mutated inputs, {c['mismatch']} numpy-vs-torch mismatches, "
          f"{c['thread_mismatch']} thread mismatches, {c['harness_error']} fuzzer errors")
    return 0 if all(v == 0 for v in c.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
