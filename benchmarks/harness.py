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
    detcore_ms: float
    torchvision_ms: Optional[float]
    goal: Optional[float]
    bytes_moved: Optional[int] = None

    @property
    def ratio(self) -> Optional[float]:
        if self.torchvision_ms is None:
            return None
        return self.torchvision_ms / self.detcore_ms

    @property
    def gbps(self) -> Optional[float]:
        if self.bytes_moved is None:
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
    detcore_ms = measure(case.detcore)
    tv_ms = measure(case.torchvision) if case.torchvision else None
    return Row(case.op, case.workload, detcore_ms, tv_ms, case.goal, case.bytes_moved)


def format_table(rows) -> str:
    with_bandwidth = any(r.bytes_moved for r in rows)
    lines = [
        "| op | workload | detcore ms | torchvision ms | speed-up | goal |" + (" detcore GB/s |" if with_bandwidth else ""),
        "|---|---|---:|---:|---:|---:|" + ("---:|" if with_bandwidth else ""),
    ]
    for r in rows:
        tv = f"{r.torchvision_ms:.3f}" if r.torchvision_ms is not None else "-"
        ratio = f"{r.ratio:.2f}x" if r.ratio is not None else "-"
        goal = f">= {r.goal:g}x" if r.goal else "-"
        line = f"| {r.op} | {r.workload} | {r.detcore_ms:.3f} | {tv} | {ratio} | {goal} |"
        if with_bandwidth:
            line += f" {r.gbps:.0f} |" if r.gbps is not None else " - |"
        lines.append(line)
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
