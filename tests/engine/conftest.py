import os
import sys

import pytest

sys.path.insert(0, os.path.dirname(__file__))  # stand_in.py

from detcore.data import CocoDetection, SyntheticSpec, make_synthetic_dataset  # noqa: E402

TINY = SyntheticSpec(num_train=12, num_val=4, image_size=(40, 56), object_size=(12, 28), seed=1)


@pytest.fixture(scope="session")
def tiny_synthetic(tmp_path_factory):
    """(train, val) datasets of a few small synthetic images."""
    root = tmp_path_factory.mktemp("synthetic")
    paths = make_synthetic_dataset(str(root), TINY)
    return (CocoDetection(*paths["train"], remove_empty=True, skip_crowd=True), CocoDetection(*paths["val"]))


@pytest.fixture(autouse=True)
def one_torch_thread():
    """The engine tests run tiny models: one thread is faster than two fighting
    over a shared CI machine."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
