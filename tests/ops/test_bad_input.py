"""Bad input gets one documented error (ValueError / TypeError naming the
argument, MemoryError for an allocation that fails), numpy and torch inputs
behave alike, and every parameter that multiplies the work of a call is
bounded by its documented limit."""

import math

import numpy as np
import pytest

import detcore
import detcore.ops as ops
from detcore.ops import _interop

torch = pytest.importorskip("torch")


def _boxes(rng, n, dtype=np.float32):
    xy = rng.uniform(0, 50, (n, 2))
    return np.concatenate([xy, xy + rng.uniform(1, 20, (n, 2))], axis=1).astype(dtype)


def _calls(rng):
    """name -> (op, keyword arguments with valid numpy arrays)."""
    b = _boxes(rng, 5)
    x = rng.standard_normal((1, 2, 6, 6)).astype(np.float32)
    rois = np.array([[0, 1, 1, 4, 4]], np.float32)
    return {
        "box_iou": (ops.box_iou, {"boxes1": b, "boxes2": b}),
        "nms": (ops.nms, {"boxes": b, "scores": b[:, 0], "iou_threshold": 0.5}),
        "batched_nms": (ops.batched_nms, {"boxes": b, "scores": b[:, 0], "idxs": np.zeros(5, np.int64),
                                          "iou_threshold": 0.5}),
        "roi_align": (ops.roi_align, {"input": x, "boxes": rois, "output_size": 2}),
        "roi_pool": (ops.roi_pool, {"input": x, "boxes": rois, "output_size": 2}),
        "encode_boxes": (ops.encode_boxes, {"reference_boxes": b, "proposals": b}),
        "decode_boxes": (ops.decode_boxes, {"deltas": b, "boxes": b}),
        "sigmoid_focal_loss": (ops.sigmoid_focal_loss, {"inputs": b, "targets": b}),
        "paste_masks": (ops.paste_masks, {"masks": np.ones((5, 3, 3), np.float32), "boxes": b,
                                          "image_size": (8, 8)}),
    }


ARRAY_ARGS = [
    ("box_iou", "boxes1"), ("box_iou", "boxes2"), ("nms", "boxes"), ("nms", "scores"), ("batched_nms", "idxs"),
    ("roi_align", "input"), ("roi_align", "boxes"), ("roi_pool", "input"), ("roi_pool", "boxes"),
    ("encode_boxes", "reference_boxes"), ("encode_boxes", "proposals"), ("decode_boxes", "deltas"),
    ("decode_boxes", "boxes"), ("sigmoid_focal_loss", "inputs"), ("sigmoid_focal_loss", "targets"),
    ("paste_masks", "masks"), ("paste_masks", "boxes"),
]


@pytest.mark.parametrize("framework", ["numpy", "torch"])
@pytest.mark.parametrize("op_name, arg", ARRAY_ARGS)
def test_none_for_a_required_array_is_a_type_error_naming_it(rng, framework, op_name, arg):
    fn, kwargs = _calls(rng)[op_name]
    if framework == "torch":
        kwargs = {k: torch.from_numpy(v) if isinstance(v, np.ndarray) else v for k, v in kwargs.items()}
    kwargs[arg] = None
    with pytest.raises(TypeError, match=rf"^{arg}: expected an array, got None"):
        fn(**kwargs)


def _foreign_tensors():
    t = torch.rand(5, 4)
    return {
        "sparse": (t.to_sparse(), "dense"),
        "nested": (torch.nested.nested_tensor([t, t]), "nested"),
        "quantized": (torch.quantize_per_tensor(t, 0.1, 0, torch.qint8), "quantized"),
        "meta": (t.to("meta"), "meta"),
    }


@pytest.mark.filterwarnings("ignore::UserWarning")  # torch: nested tensors are a prototype, quantized deprecated
@pytest.mark.parametrize("kind", ["sparse", "nested", "quantized", "meta"])
@pytest.mark.parametrize("op_name, arg", [("box_iou", "boxes1"), ("nms", "boxes"), ("roi_align", "boxes"),
                                          ("decode_boxes", "deltas"), ("paste_masks", "boxes")])
def test_tensors_without_dense_data_are_one_type_error_at_the_entry(rng, kind, op_name, arg):
    fn, kwargs = _calls(rng)[op_name]
    kwargs = {k: torch.from_numpy(v) if isinstance(v, np.ndarray) else v for k, v in kwargs.items()}
    tensor, word = _foreign_tensors()[kind]
    kwargs[arg] = tensor  # (5, 4) where roi_align wants (K, 5): refused before any shape check
    with pytest.raises(TypeError, match=rf"^{arg}: .*{word}"):
        fn(**kwargs)


@pytest.mark.parametrize("value", [10**400, -(10**400)])
def test_ints_beyond_the_float_range_are_value_errors(rng, value):
    b = _boxes(rng, 4)
    for boxes in (b, torch.from_numpy(b)):
        with pytest.raises(ValueError, match="^iou_threshold: expected a number in the float range"):
            ops.nms(boxes, boxes[:, 0], value)
    with pytest.raises(ValueError, match="^clamp: "):
        ops.decode_boxes(b, b, clamp=value)
    with pytest.raises(ValueError, match="^alpha: "):
        ops.sigmoid_focal_loss(b, b, alpha=value)


@pytest.mark.parametrize("framework", ["numpy", "torch"])
@pytest.mark.parametrize("output_size", [2**62, (2, 2**62), 4097, (4097, 1)])
def test_output_sizes_above_the_limit_are_value_errors(rng, framework, output_size):
    x = rng.standard_normal((1, 1, 4, 4)).astype(np.float32)
    rois = np.array([[0, 0, 0, 3, 3]], np.float32)
    if framework == "torch":
        x, rois = torch.from_numpy(x), torch.from_numpy(rois)
    for fn in (ops.roi_align, ops.roi_pool):
        with pytest.raises(ValueError, match=r"^output_size: expected an int in \[1, 4096\]"):
            fn(x, rois, output_size)


def test_an_output_no_address_space_can_hold_is_a_value_error_naming_output_size():
    # 2**18 RoIs x 2**19 channels x 4096 x 4096 float32: 2**63 bytes.
    x = np.zeros((1, 1 << 19, 1, 1), np.float32)
    rois = np.zeros((1 << 18, 5), np.float32)
    with pytest.raises(ValueError, match=r"^output_size: the output would have shape \(262144, 524288, 4096, 4096\)"):
        ops.roi_align(x, rois, 4096)
    with pytest.raises(ValueError, match="^output_size: the output would have shape"):
        ops.roi_pool(torch.from_numpy(x), torch.from_numpy(rois), 4096)


def _overcommit_refuses_huge_allocations() -> bool:
    try:
        with open("/proc/sys/vm/overcommit_memory") as f:
            return f.read().strip() in ("0", "2")
    except OSError:
        return False


@pytest.mark.skipif(not _overcommit_refuses_huge_allocations(), reason="the kernel may grant any allocation")
@pytest.mark.parametrize("framework", ["numpy", "torch"])
def test_an_allocation_that_fails_is_a_memory_error(framework):
    # 2**22 x 2**22 float32 IoUs: 64 TiB, more than any machine this runs on.
    boxes = np.zeros((1 << 22, 4), np.float32)
    if framework == "torch":
        boxes = torch.from_numpy(boxes)
    with pytest.raises(MemoryError):
        ops.box_iou(boxes, boxes)


@pytest.mark.parametrize("sampling_ratio", [129, 2**24, 2**63, 10**30])
@pytest.mark.parametrize("framework", ["numpy", "torch"])
def test_sampling_ratio_above_the_limit_is_a_value_error(rng, sampling_ratio, framework):
    x = rng.standard_normal((1, 1, 4, 4)).astype(np.float32)
    rois = np.array([[0, 0, 0, 3, 3]], np.float32)
    if framework == "torch":
        x, rois = torch.from_numpy(x), torch.from_numpy(rois)
    with pytest.raises(ValueError, match=r"^sampling_ratio: expected an int <= 128"):
        ops.roi_align(x, rois, 2, 1.0, sampling_ratio)


def test_the_adaptive_grid_is_capped_so_a_huge_roi_takes_bounded_time(rng):
    # An RoI 2**40 cells wide asks for 2**40 samples per axis; capped at 128,
    # they are 2**33 apart. The RoI starts so that the first sample of each
    # axis lands exactly on cell (1, 1) and the others far off the map: the
    # bin averages one value over 128 x 128 samples.
    x = rng.standard_normal((1, 1, 3, 3))
    start = 1.0 - 2.0**32
    rois = np.array([[0, start, start, start + 2.0**40, start + 2.0**40]])
    for framework in ("numpy", "torch"):
        inputs = (x, rois) if framework == "numpy" else (torch.from_numpy(x), torch.from_numpy(rois))
        out = np.asarray(ops.roi_align(*inputs, 1, 1.0, 0, aligned=False))
        np.testing.assert_allclose(out[0, 0, 0, 0], x[0, 0, 1, 1] / (128 * 128), rtol=1e-12)


@pytest.mark.parametrize("framework", ["numpy", "torch"])
def test_image_sizes_above_the_limit_are_value_errors(rng, framework):
    masks, boxes = np.ones((1, 2, 2), np.float32), _boxes(rng, 1)
    if framework == "torch":
        masks, boxes = torch.from_numpy(masks), torch.from_numpy(boxes)
    for size, name in [((65537, 1), r"image_size\[0\]"), ((1, 2**62), r"image_size\[1\]")]:
        with pytest.raises(ValueError, match=rf"^{name}: expected an int in \[0, 65536\]"):
            ops.paste_masks(masks, boxes, size)


def test_anchor_counts_above_the_limit_are_value_errors():
    with pytest.raises(ValueError, match=r"^feature_sizes\[0\]\[0\]: expected an int in \[0, 65536\]"):
        ops.make_anchors([(2**62, 2**62)], [8], (32,), (1.0,))
    with pytest.raises(ValueError, match=r"^feature_sizes: expected at most 268435456 \(2\*\*28\) anchors"):
        ops.make_anchors([(16384, 16385)], [8], (32,), (1.0,))
    with pytest.raises(ValueError, match=r"^feature_sizes: expected at most"):
        ops.make_anchors([(8192, 8193)], [8], (32, 64), (0.5, 1.0), device="cpu")
    with pytest.raises(ValueError, match=r"^sizes: expected at most"):
        ops.cell_anchors(tuple(range(1, 2**15 + 1)), tuple(1.0 + i / 2**14 for i in range(2**14)))


def test_ints_beyond_int64_are_value_errors_not_binding_errors():
    with pytest.raises(ValueError, match=r"^strides\[0\]: expected an int that fits in 64 bits, got 9223372036854775808"):
        ops.make_anchors([(2, 2)], [2**63], (32,), (1.0,))
    with pytest.raises(ValueError, match=r"^strides\[0\]\[1\]: .*an int of 1329 bits"):
        ops.make_anchors([(2, 2)], [(1, 10**400)], (32,), (1.0,))


def test_set_num_threads_checks_its_argument():
    for bad, error in [(1.5, TypeError), ("2", TypeError), (True, TypeError), (0, ValueError), (2**63, ValueError),
                       (1025, ValueError)]:
        with pytest.raises(error, match="^n: expected"):
            detcore.set_num_threads(bad)
    before = detcore.num_threads()
    try:
        assert detcore.set_num_threads(np.int64(2)) == 2
        assert detcore.num_threads() == 2
    finally:
        detcore.set_num_threads(before)


@pytest.mark.parametrize("device", ["bogus", "cuda:x", "meta", "cpu:0:1", 1.5])
def test_bad_devices_for_anchors_name_the_device(device):
    error = TypeError if isinstance(device, float) else ValueError
    with pytest.raises(error, match="^device: "):
        ops.make_anchors([(2, 2)], [8], (32,), (1.0,), device=device)
    with pytest.raises(error, match="^device: "):
        ops.cell_anchors((32,), (1.0,), device=device)


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the machine without CUDA")
def test_a_cuda_device_without_cuda_is_a_value_error():
    with pytest.raises(ValueError, match="^device: cuda:0 was asked for, but CUDA is not available"):
        ops.cell_anchors((32,), (1.0,), device="cuda:0")


def test_valid_device_spellings_give_torch_anchors():
    for device in ["cpu", "cpu:0", torch.device("cpu")]:
        got = ops.cell_anchors((32,), (1.0,), device=device)
        assert isinstance(got, torch.Tensor) and got.device.type == "cpu"
        np.testing.assert_array_equal(got.numpy(), ops.cell_anchors((32,), (1.0,)))


class _DLPackOnly:
    """A DLPack producer that is neither numpy nor torch."""

    def __init__(self, t):
        self._t = t

    def __dlpack__(self, **kwargs):
        return self._t.__dlpack__()

    def __dlpack_device__(self):
        return self._t.__dlpack_device__()


def test_a_cpu_bfloat16_dlpack_array_is_a_type_error_naming_it(rng):
    b = _DLPackOnly(torch.from_numpy(_boxes(rng, 3)).to(torch.bfloat16))
    with pytest.raises(TypeError, match="^boxes1: expected a DLPack array numpy can view"):
        ops.box_iou(b, b)


@pytest.mark.filterwarnings("ignore::UserWarning")
def test_quantized_boxes_for_box_iou_name_the_argument(rng):
    b = torch.from_numpy(_boxes(rng, 3))
    q = torch.quantize_per_tensor(b, 0.5, 0, torch.quint8)
    with pytest.raises(TypeError, match="^boxes2: expected a float or integer tensor, got a quantized tensor"):
        ops.box_iou(b, q)


def test_numpy_integer_scalars_and_sequences_are_accepted_where_ints_are(rng):
    x = rng.standard_normal((1, 2, 6, 6)).astype(np.float32)
    rois = np.array([[0, 1, 1, 4, 4]], np.float32)
    expected = ops.roi_align(x, rois, 2, 1.0, 2)
    for sampling_ratio in (np.int64(2), np.int32(2), np.uint8(2)):
        for output_size in (np.int64(2), (np.int32(2), 2), [2, 2], np.array([2, 2]), torch.Size([2, 2])):
            np.testing.assert_array_equal(ops.roi_align(x, rois, output_size, 1.0, sampling_ratio), expected)
            got = ops.roi_align(torch.from_numpy(x), torch.from_numpy(rois), output_size, 1.0, sampling_ratio)
            np.testing.assert_array_equal(got.numpy(), expected)
    masks, boxes = np.ones((1, 2, 2), np.float32), np.array([[1, 1, 5, 5]], np.float32)
    expected = ops.paste_masks(masks, boxes, (8, 9))
    for size in ([8, 9], np.array([8, 9]), (np.int64(8), np.int16(9)), torch.Size([8, 9])):
        np.testing.assert_array_equal(ops.paste_masks(masks, boxes, size), expected)
        np.testing.assert_array_equal(ops.paste_masks(torch.from_numpy(masks), torch.from_numpy(boxes), size).numpy(),
                                      expected)


def test_zero_d_inputs_keep_their_shape_on_the_numpy_path(rng):
    logit, target = np.array(0.3), np.array(1.0)
    got = ops.sigmoid_focal_loss(logit, target)
    assert got.shape == ()
    expected = ops.sigmoid_focal_loss(torch.tensor(0.3, dtype=torch.float64), torch.tensor(1.0, dtype=torch.float64))
    assert expected.shape == ()
    p = 1 / (1 + math.exp(-0.3))
    np.testing.assert_allclose(got, 0.25 * (1 - p) ** 2 * -math.log(p), rtol=1e-12)
    np.testing.assert_allclose(got, expected.numpy(), rtol=1e-15)
    assert _interop.to_numpy(np.array(2.0), "x").shape == ()


@pytest.mark.parametrize("framework", ["numpy", "torch"])
def test_zero_d_scores_are_refused_on_both_paths(framework):
    boxes, scores = np.array([[0, 0, 1, 1]], np.float32), np.array(0.5, np.float32)
    if framework == "torch":
        boxes, scores = torch.from_numpy(boxes), torch.from_numpy(scores)
    with pytest.raises(ValueError, match=r"^scores: expected a 1-D array of shape \(N,\), got shape \(\)"):
        ops.nms(boxes, scores, 0.5)
    with pytest.raises(ValueError, match=r"^scores: expected a 1-D array"):
        ops.batched_nms(boxes, scores, boxes[:, 0].long() if framework == "torch" else np.zeros(1, np.int64), 0.5)


def test_byte_swapped_numpy_arrays_give_the_native_result(rng):
    b = _boxes(rng, 6, np.float64)
    np.testing.assert_array_equal(ops.box_iou(b.astype(">f8"), b), ops.box_iou(b, b))
    np.testing.assert_array_equal(ops.nms(b.astype(">f8"), b[:, 0].astype(">f8"), 0.5), ops.nms(b, b[:, 0], 0.5))


def test_reduction_must_be_a_string(rng):
    x = rng.standard_normal((3, 2))
    with pytest.raises(ValueError, match="^reduction: expected 'none', 'sum' or 'mean'"):
        ops.sigmoid_focal_loss(x, x, reduction=np.array(["sum", "mean"]))
