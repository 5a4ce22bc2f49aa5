"""Entry points shared by every op: numpy, torch, DLPack, no-torch installs,
and the thread-count controls."""

import os
import subprocess
import sys

import numpy as np
import pytest

import detcore
from detcore.ops import box_iou
from detcore.ops._interop import prepare
from helpers import DLPackArray, random_boxes


def test_cpu_dlpack_input_is_viewed_without_a_copy(rng):
    boxes = random_boxes(rng, 5, dtype=np.float32)
    wrapped = DLPackArray(boxes)
    kind, (view,) = prepare(boxes=wrapped)
    assert kind == "numpy" and wrapped.exports == 1
    assert np.shares_memory(view, boxes)


def test_numpy_in_numpy_out(rng):
    out = box_iou(random_boxes(rng, 3, dtype=np.float32), random_boxes(rng, 2, dtype=np.float32))
    assert type(out) is np.ndarray


def test_objects_that_are_not_arrays_are_refused():
    with pytest.raises(TypeError, match="boxes1: expected a numpy array, a torch.Tensor or an object with __dlpack__"):
        box_iou("boxes", np.zeros((1, 4), np.float32))


def test_quantized_tensors_are_refused_with_the_argument_named():
    torch = pytest.importorskip("torch")
    boxes = torch.tensor([[0.0, 0.0, 2.0, 2.0]])
    quantized = torch.quantize_per_tensor(boxes, 0.1, 0, torch.quint8)
    with pytest.raises(TypeError, match=r"boxes2: expected a float tensor, got a quantized one.*dequantize"):
        box_iou(boxes, quantized)


def test_detcore_works_without_torch_installed():
    # A None entry in sys.modules makes `import torch` raise ImportError.
    code = (
        "import sys; sys.modules['torch'] = None\n"
        "import numpy as np, detcore\n"
        "b = np.array([[0, 0, 2, 2], [1, 1, 3, 3]], np.float32)\n"
        "print(detcore.ops.box_iou(b, b)[0, 1])\n"
    )
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path))
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True)
    assert float(result.stdout) == pytest.approx(1 / 7)


def test_num_threads_can_be_set_and_results_do_not_depend_on_it(rng):
    b1, b2 = random_boxes(rng, 300), random_boxes(rng, 400)
    before = detcore.num_threads()
    try:
        detcore.set_num_threads(1)
        assert detcore.num_threads() == 1
        serial = box_iou(b1, b2)
        detcore.set_num_threads(3)
        np.testing.assert_array_equal(box_iou(b1, b2), serial)
    finally:
        detcore.set_num_threads(before)
    with pytest.raises(ValueError, match="n: expected a positive number"):
        detcore.set_num_threads(0)


@pytest.mark.cuda
def test_cupy_arrays_in_and_out_on_a_side_stream(rng):
    cupy = pytest.importorskip("cupy")
    b1, b2 = random_boxes(rng, 50, dtype=np.float32), random_boxes(rng, 60, dtype=np.float32)
    with cupy.cuda.Stream(non_blocking=True):
        out = box_iou(cupy.asarray(b1), cupy.asarray(b2))
        got = cupy.asnumpy(cupy.from_dlpack(out))
    np.testing.assert_allclose(got, box_iou(b1, b2), atol=1e-6)
