import os
import sys
import zlib

import pytest

sys.path.insert(0, os.path.dirname(__file__))
sys.path.insert(0, os.path.dirname(os.path.dirname(__file__)))

torch = pytest.importorskip("torch")


@pytest.fixture(autouse=True)
def _seed_torch_one_thread(request):
    """Sampling and initialisation are random: seed torch per test from its
    name so a failure reproduces. The test models are tiny: one intra-op
    thread is much faster than several on a shared machine."""
    torch.manual_seed(zlib.crc32(request.node.nodeid.encode()))
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
