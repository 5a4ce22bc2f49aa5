"""Training metrics: a JSON-lines file, a progress line with loss and ETA,
and TensorBoard scalars when TensorBoard is installed."""

from __future__ import annotations

import datetime
import json
import os
import sys
import time
from typing import List, Optional


class MetricsWriter:
    """Appends one JSON object per logged iteration to ``path``. On resume the
    records after the resumed iteration (from the interrupted run) are dropped,
    so the file reads as one uninterrupted run."""

    def __init__(self, path: str, start_iter: int = 0, tensorboard_dir: Optional[str] = None):
        self.path = path
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        kept = [r for r in read_metrics(path) if r.get("iteration", 0) <= start_iter] if start_iter else []
        with open(path, "w") as f:
            for record in kept:
                f.write(json.dumps(record) + "\n")
        self.tb = None
        if tensorboard_dir:
            try:
                from torch.utils.tensorboard import SummaryWriter
            except ImportError:  # TensorBoard is optional
                SummaryWriter = None
            if SummaryWriter is not None:
                self.tb = SummaryWriter(tensorboard_dir, purge_step=start_iter or None)

    def write(self, record: dict) -> None:
        with open(self.path, "a") as f:
            f.write(json.dumps(record) + "\n")
        if self.tb is not None:
            step = record.get("iteration", 0)
            for key, value in record.items():
                if key != "iteration" and isinstance(value, (int, float)):
                    self.tb.add_scalar(key, value, step)

    def close(self) -> None:
        if self.tb is not None:
            self.tb.close()


def read_metrics(path: str) -> List[dict]:
    if not os.path.exists(path):
        return []
    records = []
    with open(path) as f:
        for line in f:
            line = line.strip()
            if line:
                try:
                    records.append(json.loads(line))
                except json.JSONDecodeError:
                    break  # a line cut by a crash ends the readable part
    return records


class Progress:
    """One status line: iteration, loss, lr, speed and ETA. Redrawn in place on
    a terminal; printed every ``period`` iterations otherwise (logs, CI)."""

    def __init__(self, total: int, start: int = 0, period: int = 20, stream=None, enabled: bool = True):
        self.total, self.start, self.period = total, start, period
        self.stream = stream or sys.stderr
        self.enabled = enabled
        self.tty = hasattr(self.stream, "isatty") and self.stream.isatty()
        self.t0 = time.perf_counter()

    def eta_seconds(self, iteration: int) -> float:
        done = iteration - self.start
        if done <= 0:
            return float("nan")
        return (time.perf_counter() - self.t0) / done * (self.total - iteration)

    def update(self, iteration: int, loss: float, lr: float, extra: str = "") -> None:
        """``iteration`` counts completed iterations."""
        if not self.enabled:
            return
        if not self.tty and iteration % self.period and iteration != self.total:
            return
        done = iteration - self.start
        rate = (time.perf_counter() - self.t0) / max(done, 1)
        eta = self.eta_seconds(iteration)
        eta_text = str(datetime.timedelta(seconds=int(eta))) if eta == eta else "?"
        width = 24
        filled = int(width * iteration / self.total)
        bar = "#" * filled + "." * (width - filled)
        line = (f"[{bar}] {iteration}/{self.total}  loss {loss:.4f}  lr {lr:.5f}  "
                f"{rate:.2f} s/it  ETA {eta_text}{('  ' + extra) if extra else ''}")
        if self.tty:
            self.stream.write("\r" + line + "\033[K")
            if iteration == self.total:
                self.stream.write("\n")
        else:
            self.stream.write(line + "\n")
        self.stream.flush()
