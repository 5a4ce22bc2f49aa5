"""The CPU thread pool's size, with the argument checks and the report of a
pool the system would not let grow to the size asked for."""

from __future__ import annotations

import numbers
import warnings

from . import _C

MAX_THREADS = 1024  # more is never useful and only risks the process's pid and memory limits


def num_threads() -> int:
    """Threads the CPU kernels use (the caller's included): DETCORE_NUM_THREADS
    if set, else the CPUs this process may run on, or what `set_num_threads`
    set; fewer if the system refused to start that many."""
    return _C.num_threads()


def set_num_threads(n: int) -> int:
    """Sets the threads the CPU kernels use, 1 <= n <= 1024, and starts them.

    Returns how many run. When the system refuses to start some (a pids or
    address-space limit), the pool keeps the ones it has, a RuntimeWarning
    says so, and `num_threads()` reports the smaller number. Safe to call
    from any thread, also while other threads run ops or fork.
    """
    if isinstance(n, bool) or not isinstance(n, numbers.Integral):
        raise TypeError(f"n: expected an int, got {type(n).__name__}")
    n = int(n)
    if not 1 <= n <= MAX_THREADS:
        raise ValueError(f"n: expected a positive number of threads, at most {MAX_THREADS}, got {n}")
    started = _C.set_num_threads(n)
    if started < n:
        warnings.warn(f"detcore.set_num_threads: {_C.thread_pool_failure()}", RuntimeWarning, stacklevel=2)
    return started
