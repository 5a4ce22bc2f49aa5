import zlib

import numpy as np
import pytest

try:
    import torch
except ImportError:
    torch = None


def cuda_available() -> bool:
    import detcore

    return torch is not None and detcore.has_cuda and torch.cuda.is_available()


def pytest_collection_modifyitems(config, items):
    if cuda_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA GPU and a detcore build with CUDA kernels")
    for item in items:
        if "cuda" in item.keywords:
            item.add_marker(skip)


@pytest.fixture
def rng(request):
    """A fresh generator per test, seeded from the test's name so a failure
    reproduces, but different for every test."""
    seed = zlib.crc32(request.node.nodeid.encode())
    return np.random.default_rng(seed)
