"""Timing and reporting shared by the benchmarks.

A benchmark case is a workload with a detcore callable and, when
torchvision is importable, the torchvision callable on the same inputs. Both
run in this process, interleaved, and the table reports medians and the
ratio torchvision / detcore (> 1 means detcore is faster).
"""

from __future__ import annotations

import dataclasses
import json
import platform
import statistics
import time
from typing import Callable, Optional


@dataclasses.dataclass
class Case:
    op: str
    workload: str
    detcore: Callable[[], object]
    torchvision: Optional[Callable[[], object]] = None
    goal: Optional[float] = None  # the ratio the op aims for
    # Called before each timed call on CUDA, to wait for the device.
    sync: Callable[[], None] = lambda: None
    # The least memory traffic the op needs (bytes), for memory-bound ops:
    # the table then shows detcore's effective bandwidth.
    bytes_moved: Optional[int] = None


@dataclasses.dataclass
class Row:
    op: str
    workload: str
    detcore_ms: Optional[float]
    torchvision_ms: Optional[float]
    goal: Optional[float]
    bytes_moved: Optional[int] = None
    # Why a side has no time (an exception's first line), so one failing
    # case never takes the table down with it.
    errors: dict = dataclasses.field(default_factory=dict)

    @property
    def ratio(self) -> Optional[float]:
        if self.torchvision_ms is None or self.detcore_ms is None:
            return None
        return self.torchvision_ms / self.detcore_ms

    @property
    def gbps(self) -> Optional[float]:
        if self.bytes_moved is None or self.detcore_ms is None:
            return None
        return self.bytes_moved / (self.detcore_ms * 1e-3) / 1e9


def median_ms(fn, sync, min_runs=5, min_seconds=1.0, max_runs=200) -> float:
    fn()  # warm-up
    sync()
    times = []
    start = time.perf_counter()
    while len(times) < max_runs and (len(times) < min_runs or time.perf_counter() - start < min_seconds):
        t0 = time.perf_counter()
        fn()
        sync()
        times.append(time.perf_counter() - t0)
    return 1e3 * statistics.median(times)


def cuda_median_ms(fn, min_runs=20, min_seconds=1.0, max_runs=1000) -> float:
    """Median of per-call times measured with CUDA events on the current
    stream, after a warm-up."""
    import torch

    for _ in range(3):
        fn()
    torch.cuda.synchronize()
    times = []
    start = time.perf_counter()
    while len(times) < max_runs and (len(times) < min_runs or time.perf_counter() - start < min_seconds):
        begin, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        begin.record()
        fn()
        end.record()
        end.synchronize()
        times.append(begin.elapsed_time(end))
    return statistics.median(times)


def run_case(case: Case, min_seconds: float, device: str = "cpu") -> Row:
    if device == "cuda":
        def measure(fn):
            return cuda_median_ms(fn, min_seconds=min_seconds)
    else:
        def measure(fn):
            return median_ms(fn, case.sync, min_seconds=min_seconds)
    errors = {}

    def try_measure(side, fn):
        if fn is None:
            return None
        try:
            return measure(fn)
        except Exception as e:  # e.g. a dtype the peer has no kernel for
            errors[side] = f"{type(e).__name__}: {str(e).strip().splitlines()[0] if str(e).strip() else ''}"[:200]
            return None

    detcore_ms = try_measure("detcore", case.detcore)
    tv_ms = try_measure("torchvision", case.torchvision)
    return Row(case.op, case.workload, detcore_ms, tv_ms, case.goal, case.bytes_moved, errors)


def format_table(rows) -> str:
    with_bandwidth = any(r.bytes_moved for r in rows)
    lines = [
        "| op | workload | detcore ms | torchvision ms | speed-up | goal |" + (" detcore GB/s |" if with_bandwidth else ""),
        "|---|---|---:|---:|---:|---:|" + ("---:|" if with_bandwidth else ""),
    ]
    for r in rows:
        dc = f"{r.detcore_ms:.3f}" if r.detcore_ms is not None else "error"
        tv = f"{r.torchvision_ms:.3f}" if r.torchvision_ms is not None else "-"
        ratio = f"{r.ratio:.2f}x" if r.ratio is not None else "-"
        goal = f">= {r.goal:g}x" if r.goal else "-"
        line = f"| {r.op} | {r.workload} | {dc} | {tv} | {ratio} | {goal} |"
        if with_bandwidth:
            line += f" {r.gbps:.0f} |" if r.gbps is not None else " - |"
        lines.append(line)
    errors = [f"- {r.op}, {r.workload}: {side}: {message}" for r in rows for side, message in r.errors.items()]
    if errors:
        lines += ["", "Not timed:"] + errors
    return "\n".join(lines)


def write_json(rows, path, extra=None) -> None:
    payload = {
        "machine": platform.platform(),
        "processor": platform.processor(),
        **(extra or {}),
        "results": [dict(dataclasses.asdict(r), ratio=r.ratio, gbps=r.gbps) for r in rows],
    }
    with open(path, "w") as f:
        json.dump(payload, f, indent=2)
