"""The CPU thread pool under fork and under limits on threads: each scenario
runs in a fresh interpreter (numpy and detcore only) with a timeout, so a
deadlock fails the test instead of hanging the suite."""

import os
import subprocess
import sys
import textwrap

import pytest

import detcore

TIMEOUT = 180


def _run(script: str, env=None) -> subprocess.CompletedProcess:
    package_dir = os.path.dirname(os.path.dirname(os.path.abspath(detcore.__file__)))
    full_env = {**os.environ, "PYTHONPATH": package_dir, **(env or {})}
    full_env.pop("DETCORE_NUM_THREADS", None)
    try:
        return subprocess.run([sys.executable, "-c", textwrap.dedent(script)], env=full_env, capture_output=True,
                              text=True, timeout=TIMEOUT)
    except subprocess.TimeoutExpired as e:
        pytest.fail(f"hung for {TIMEOUT} s; output so far: {e.stdout!r} {e.stderr!r}")


_FORK_WHILE_BUSY = """
    import os, signal, threading, time
    import numpy as np
    import detcore, detcore.ops as ops

    rng = np.random.default_rng(0)
    xy = rng.uniform(0, 100, (500, 2))
    boxes = np.concatenate([xy, xy + rng.uniform(1, 20, (500, 2))], axis=1).astype(np.float32)
    scores = rng.random(500).astype(np.float32)
    expected_keep = ops.nms(boxes, scores, 0.5)
    stop = threading.Event()

    def busy():  # ops on numpy inputs, no torch involved
        while not stop.is_set():
            ops.box_iou(boxes, boxes)
            ops.make_anchors([(40, 40)], [8], (32, 64), (0.5, 1.0, 2.0))

    def resize():
        n = 0
        while not stop.is_set():
            detcore.set_num_threads(n % 4 + 1)
            n += 1

    threads = [threading.Thread(target=busy) for _ in range(2)] + [threading.Thread(target=resize)]
    for t in threads:
        t.start()
    failures = 0
    for i in range(FORKS):
        time.sleep(0.003 * (i % 5))
        pid = os.fork()
        if pid == 0:
            signal.alarm(30)  # a deadlocked child dies here instead of hanging the test
            ok = False
            try:
                detcore.set_num_threads(3)
                ok = bool((ops.nms(boxes, scores, 0.5) == expected_keep).all())
                ok = ok and ops.box_iou(boxes, boxes).shape == (500, 500)
            finally:
                os._exit(0 if ok else 1)
        _, status = os.waitpid(pid, 0)
        if not (os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0):
            failures += 1
    stop.set()
    for t in threads:
        t.join()
    print("failures", failures)
"""


def test_forked_children_run_multi_threaded_ops_while_parent_threads_use_and_resize_the_pool():
    result = _run(_FORK_WHILE_BUSY.replace("FORKS", "30"))
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["failures", "0"], result.stdout + result.stderr


_SET_400_THREADS = """
    import warnings
    import numpy as np
    import detcore, detcore.ops as ops
    LIMIT
    rng = np.random.default_rng(0)
    xy = rng.uniform(0, 100, (3000, 2))
    boxes = np.concatenate([xy, xy + rng.uniform(1, 20, (3000, 2))], axis=1)
    scores = rng.random(3000)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        started = detcore.set_num_threads(400)
    print("started", started, "reported", detcore.num_threads())
    print("warning", "|".join(str(w.message) for w in caught if w.category is RuntimeWarning))
    keep = ops.nms(boxes, scores, 0.5)
    iou = ops.box_iou(boxes[:50], boxes[:50])  # small: the threads may have taken the address space left
    print("nms", len(keep), "iou", iou.shape[0])
    print("again", detcore.set_num_threads(2), detcore.num_threads())
"""


def _check_smaller_pool(result, expect_started=None):
    assert result.returncode == 0, result.stderr
    lines = dict(line.split(" ", 1) for line in result.stdout.strip().splitlines())
    started, _, reported = lines["started"].split()
    assert int(started) < 400 and int(started) == int(reported)
    if expect_started is not None:
        assert int(started) == expect_started
    assert "could start only" in lines["warning"] and "of 400 threads" in lines["warning"]
    assert int(lines["nms"].split()[0]) > 0 and lines["nms"].split()[2] == "50"
    assert lines["again"] == "2 2"  # a later, smaller pool is built normally


def test_a_pool_whose_threads_cannot_all_start_keeps_the_ones_it_has_and_warns():
    # The test hook makes the creation of worker 5 fail, as a pids limit
    # would (a root process is not bound by RLIMIT_NPROC).
    result = _run(_SET_400_THREADS.replace("LIMIT", ""), env={"DETCORE_TEST_FAIL_THREAD_AT": "5"})
    _check_smaller_pool(result, expect_started=6)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc/self/status")
def test_an_address_space_limit_leaves_a_smaller_working_pool():
    # Each thread's stack reserves 8 MiB of address space: 400 of them do not
    # fit in 256 MiB above what the process already has. RLIMIT_AS binds
    # root too.
    limit = """
    import resource
    size = next(int(l.split()[1]) for l in open("/proc/self/status") if l.startswith("VmSize:")) * 1024
    resource.setrlimit(resource.RLIMIT_AS, (size + (256 << 20), resource.getrlimit(resource.RLIMIT_AS)[1]))
    """
    result = _run(_SET_400_THREADS.replace("LIMIT", textwrap.dedent(limit).replace("\n", "\n    ")))
    _check_smaller_pool(result)


@pytest.mark.skipif(os.geteuid() == 0 or not sys.platform.startswith("linux"), reason="RLIMIT_NPROC does not bind root")
def test_a_pids_limit_leaves_a_smaller_working_pool():
    limit = """
    import os, resource
    tasks = len(os.listdir("/proc/self/task"))
    resource.setrlimit(resource.RLIMIT_NPROC, (tasks + 20, resource.getrlimit(resource.RLIMIT_NPROC)[1]))
    """
    result = _run(_SET_400_THREADS.replace("LIMIT", textwrap.dedent(limit).replace("\n", "\n    ")))
    if result.returncode != 0 and "Resource temporarily unavailable" in result.stderr:
        pytest.skip("other processes of this user already exceed the limit")
    _check_smaller_pool(result)
