"""What every op owes its users, checked once for all ops from two tables:

* ``OPCHECK_CASES``: sample arguments for every ``torch.ops.detcore.*`` custom
  op, run through ``torch.library.opcheck`` (schema, fake tensor, autograd
  registration, AOT dispatch with dynamic shapes). A new custom op without a
  row here fails ``test_every_custom_op_has_an_opcheck_case``.
* ``PUBLIC_CASES``: each public function with inputs made by a function of
  (rng, n), arrays as numpy (its result one array or a tuple of arrays): torch, numpy and DLPack entry points agree, n = 0
  gives empty results, non-contiguous inputs give the contiguous result, and
  ``torch.compile(fullgraph=True)``, ``torch.jit.script`` and ``torch.fx``
  tracing give the eager result.

Adding an op: one row in each table. What is particular to an op (its
values against a reference, its edge cases and errors) stays in
tests/ops/test_<op>.py.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np
import pytest

import detcore.ops as ops
from helpers import DLPackArray, random_boxes

torch = pytest.importorskip("torch")
import detcore.export.keypoints  # noqa: E402,F401  (registers detcore::heatmaps_to_keypoints, the export's op)


# ---------------------------------------------------------------- inputs


def _rois(rng, n, images=2, size=(8, 9)):
    """(n, 5) float64 RoIs on `images` images of `size` (some outside it)."""
    boxes = random_boxes(rng, n, size=max(size), max_wh=6.0)
    return np.concatenate([rng.integers(0, images, (n, 1)).astype(np.float64), boxes - 1.0], axis=1)


def _features(rng, shape=(2, 3, 8, 9)):
    return rng.standard_normal(shape)


def _t(a, requires_grad=False):
    return torch.from_numpy(np.ascontiguousarray(a)).requires_grad_(requires_grad)


# ---------------------------------------------------- opcheck: custom ops

_OPS = torch.ops.detcore


def _roi_align_backward_args(rng):
    grad = _t(rng.standard_normal((5, 3, 2, 3)))  # not differentiable again
    return (grad, _t(_rois(rng, 5)), 0.5, 2, 3, 2, True, 2, 3, 8, 9, False)


def _roi_pool_backward_args(rng):
    x, rois = _t(_features(rng)), _t(_rois(rng, 5))
    _, argmax = _OPS.roi_pool(x, rois, 1.0, 2, 3)
    return (_t(rng.standard_normal(argmax.shape), True), rois, argmax, 2, 3, 8, 9)


def _spp_pool_backward_args(rng):
    x, rois = _t(_features(rng)), _t(_rois(rng, 5))
    _, argmax = _OPS.spp_pool(x, rois, [3, 2, 1], 1.0)
    return (_t(rng.standard_normal(argmax.shape), True), rois, argmax, [3, 2, 1], 2, 3, 8, 9)


def _decode_boxes_backward_args(rng):
    deltas, boxes = rng.standard_normal((6, 8)), random_boxes(rng, 6)
    # Not differentiable again.
    return (_t(rng.standard_normal((6, 8))), _t(deltas), _t(boxes), [1.0, 2.0, 0.5, 1.0], 4.0)


# op name -> function of rng giving the op's arguments. Tensors that the op
# differentiates require grad, so opcheck exercises the autograd formula.
OPCHECK_CASES: dict[str, Callable[[Any], tuple]] = {
    "nms": lambda rng: (_t(random_boxes(rng, 30)), _t(rng.random(30)), 0.5),
    "batched_nms": lambda rng: (
        _t(random_boxes(rng, 30)), _t(rng.random(30)), _t(rng.integers(0, 3, 30)), 0.5,
    ),
    "box_iou": lambda rng: (_t(random_boxes(rng, 5)), _t(random_boxes(rng, 7))),
    "roi_align": lambda rng: (_t(_features(rng), True), _t(_rois(rng, 5)), 0.5, 2, 3, 2, True, False),
    "roi_align_backward": _roi_align_backward_args,
    "roi_pool": lambda rng: (_t(_features(rng), True), _t(_rois(rng, 5)), 1.0, 2, 3),
    "roi_pool_backward": _roi_pool_backward_args,
    "spp_pool": lambda rng: (_t(_features(rng), True), _t(_rois(rng, 5)), [3, 2, 1], 0.5),
    "spp_pool_backward": _spp_pool_backward_args,
    "sigmoid_focal_loss": lambda rng: (
        _t(rng.standard_normal((6, 4)), True), _t(rng.integers(-1, 5, 6)), 0.25, 2.0, "sum", True,
    ),
    "paste_masks": lambda rng: (
        _t(rng.random((3, 7, 7))), _t(random_boxes(rng, 3, size=20.0)), [24, 30], None, "bicubic",
    ),
    "encode_boxes": lambda rng: (_t(random_boxes(rng, 6)), _t(random_boxes(rng, 6)), [10.0, 10.0, 5.0, 5.0]),
    "decode_boxes": lambda rng: (
        _t(rng.standard_normal((6, 8)), True), _t(random_boxes(rng, 6), True), [1.0, 2.0, 0.5, 1.0], 4.0,
    ),
    "decode_boxes_backward": _decode_boxes_backward_args,
    "heatmaps_to_keypoints": lambda rng: (_t(rng.standard_normal((3, 2, 6, 6))), _t(random_boxes(rng, 3, size=20.0))),
    "make_anchors": lambda rng: ([32.0, 64.0], [0.5, 1.0, 2.0], 3, 4, 16, 8, torch.float32, torch.device("cpu")),
    "soft_nms": lambda rng: (_t(random_boxes(rng, 30)), _t(rng.random(30)), 0.3, 0.5, 0.001, "gaussian"),
    "batched_soft_nms": lambda rng: (
        _t(random_boxes(rng, 30)), _t(rng.random(30)), _t(rng.integers(0, 3, 30)), 0.3, 0.5, 0.001, "linear",
    ),
}
for _variant in ("generalized", "distance", "complete"):
    OPCHECK_CASES[f"{_variant}_box_iou"] = lambda rng: (_t(random_boxes(rng, 5)), _t(random_boxes(rng, 7)), 1e-7)
    OPCHECK_CASES[f"{_variant}_box_iou_loss"] = lambda rng: (
        _t(random_boxes(rng, 6, size=20.0), True), _t(random_boxes(rng, 6, size=20.0), True), "mean", 1e-7,
    )
    OPCHECK_CASES[f"{_variant}_box_iou_loss_backward"] = lambda rng: (
        _t(random_boxes(rng, 6, size=20.0)), _t(random_boxes(rng, 6, size=20.0)), _t(rng.random(6)), "none", 1e-7,
    )


def _registered_ops() -> set[str]:
    names = {s.name for s in torch._C._jit_get_all_schemas() if s.name.startswith("detcore::")}
    return {n.removeprefix("detcore::") for n in names}


def test_every_custom_op_has_an_opcheck_case():
    registered = _registered_ops()
    assert registered, "no detcore custom ops registered"
    assert registered == set(OPCHECK_CASES), "add a row to OPCHECK_CASES for each new custom op"


@pytest.mark.parametrize("name", sorted(OPCHECK_CASES))
def test_opcheck(rng, name):
    torch.library.opcheck(getattr(_OPS, name), OPCHECK_CASES[name](rng))


def test_backward_ops_follow_the_naming_rule():
    # detcore::<op> and detcore::<op>_backward, never a leading underscore.
    for name in _registered_ops():
        assert not name.startswith("_"), name
        if name.endswith("_backward"):
            assert name.removesuffix("_backward") in OPCHECK_CASES, name


# ------------------------------------------------ public functions


@dataclass
class Case:
    """A public op called as ``fn(*make(rng, n))``; numpy arrays in the
    arguments (also inside lists) are the array inputs. ``n`` is the number
    of boxes / rows; 0 must give an empty result."""

    id: str
    fn: Callable
    make: Callable[[Any, int], tuple]
    kwargs: dict = field(default_factory=dict)


PUBLIC_CASES = [
    Case("nms", ops.nms, lambda rng, n: (random_boxes(rng, n), rng.random(n), 0.5)),
    Case("batched_nms", ops.batched_nms, lambda rng, n: (
        random_boxes(rng, n), rng.random(n), rng.integers(0, 3, n), 0.5)),
    Case("box_iou", ops.box_iou, lambda rng, n: (random_boxes(rng, n), random_boxes(rng, 4))),
    Case("roi_align", ops.roi_align, lambda rng, n: (_features(rng), _rois(rng, n), (2, 3), 0.5, 2, True)),
    Case("roi_align_adaptive", ops.roi_align, lambda rng, n: (_features(rng), _rois(rng, n), 3, 0.5, -1, False)),
    Case("roi_pool", ops.roi_pool, lambda rng, n: (_features(rng), _rois(rng, n), (2, 3), 0.5)),
    Case("spp_pool", ops.spp_pool, lambda rng, n: (_features(rng), _rois(rng, n), [3, 2, 1], 0.5)),
    Case("sigmoid_focal_loss", ops.sigmoid_focal_loss, lambda rng, n: (
        rng.standard_normal((n, 4)), (rng.random((n, 4)) < 0.3).astype(np.float64), 0.25, 2.0, "sum")),
    Case("sigmoid_focal_loss_labels", ops.sigmoid_focal_loss, lambda rng, n: (
        rng.standard_normal((n, 4)), rng.integers(-1, 5, n), 0.5, 1.0, "none")),
    Case("paste_masks", ops.paste_masks, lambda rng, n: (
        rng.random((n, 7, 7)), random_boxes(rng, n, size=20.0), (24, 30))),
    Case("paste_masks_threshold", ops.paste_masks, lambda rng, n: (
        rng.random((n, 1, 6, 6)), random_boxes(rng, n, size=20.0), (24, 30), 0.5)),
    Case("paste_masks_bicubic", ops.paste_masks, lambda rng, n: (
        rng.random((n, 1, 6, 6)), random_boxes(rng, n, size=20.0), (24, 30), None, "bicubic")),
    Case("encode_boxes", ops.encode_boxes, lambda rng, n: (
        random_boxes(rng, n), random_boxes(rng, n), (10.0, 10.0, 5.0, 5.0))),
    Case("decode_boxes", ops.decode_boxes, lambda rng, n: (rng.standard_normal((n, 8)), random_boxes(rng, n))),
    Case("box_area", ops.box_area, lambda rng, n: (random_boxes(rng, n), "xywh")),
    Case("box_convert", ops.box_convert, lambda rng, n: (random_boxes(rng, n), "xyxy", "cxcywh")),
    Case("clip_boxes_to_image", ops.clip_boxes_to_image, lambda rng, n: (random_boxes(rng, n) - 10, [50, 60])),
    Case("remove_small_boxes", ops.remove_small_boxes, lambda rng, n: (random_boxes(rng, n), 15.0)),
    Case("masks_to_boxes", ops.masks_to_boxes, lambda rng, n: (rng.random((n, 6, 7)) > 0.8,)),
    Case("generalized_box_iou", ops.generalized_box_iou, lambda rng, n: (random_boxes(rng, n), random_boxes(rng, 4))),
    Case("distance_box_iou", ops.distance_box_iou, lambda rng, n: (random_boxes(rng, n), random_boxes(rng, 4), 1e-7)),
    Case("complete_box_iou", ops.complete_box_iou, lambda rng, n: (random_boxes(rng, n), random_boxes(rng, 4), 0.1)),
    Case("generalized_box_iou_loss", ops.generalized_box_iou_loss, lambda rng, n: (
        random_boxes(rng, n, size=20.0), random_boxes(rng, n, size=20.0), "none", 1e-7)),
    Case("distance_box_iou_loss", ops.distance_box_iou_loss, lambda rng, n: (
        random_boxes(rng, n, size=20.0), random_boxes(rng, n, size=20.0), "mean", 1e-7)),
    Case("complete_box_iou_loss", ops.complete_box_iou_loss, lambda rng, n: (
        random_boxes(rng, n, size=20.0), random_boxes(rng, n, size=20.0), "sum", 1e-7)),
    Case("soft_nms", ops.soft_nms, lambda rng, n: (random_boxes(rng, n), rng.random(n), 0.3, 0.5, 0.001, "linear")),
    Case("batched_soft_nms", ops.batched_soft_nms, lambda rng, n: (
        random_boxes(rng, n), rng.random(n), rng.integers(0, 3, n), 0.3, 0.5, 0.001, "gaussian")),
]
_IDS = [c.id for c in PUBLIC_CASES]


def _map_arrays(args, fn):
    """`args` with every numpy array (also in a list) replaced by fn(array)."""
    def one(a):
        if isinstance(a, np.ndarray):
            return fn(a)
        if isinstance(a, list):
            return [one(x) for x in a]
        return a
    return tuple(one(a) for a in args)


def _strided(a):
    """A non-contiguous view of a copy of `a` (every other element of the
    last axis of a twice-as-wide array)."""
    if a.ndim == 0:
        return a
    wide = np.zeros(a.shape[:-1] + (2 * a.shape[-1],), a.dtype)
    wide[..., ::2] = a
    view = wide[..., ::2]
    assert a.shape[-1] < 2 or not view.flags.c_contiguous
    return view


def _as_numpy(x):
    return x.detach().numpy() if isinstance(x, torch.Tensor) else np.from_dlpack(x)


def _parts(result) -> list:
    """The arrays of a result: itself, or the items of a tuple result."""
    return list(result) if isinstance(result, tuple) else [result]


def _assert_same(got, expected):
    """Bitwise equal (NaNs equal): every path runs the same kernels."""
    assert len(_parts(got)) == len(_parts(expected))
    for g, e in zip(_parts(got), _parts(expected)):
        np.testing.assert_array_equal(_as_numpy(g), _as_numpy(e))


@pytest.mark.parametrize("case", PUBLIC_CASES, ids=_IDS)
def test_numpy_torch_and_dlpack_entry_points_agree(rng, case):
    args = case.make(rng, 7)
    from_numpy = case.fn(*args, **case.kwargs)
    assert all(isinstance(p, np.ndarray) for p in _parts(from_numpy))
    from_torch = case.fn(*_map_arrays(args, torch.from_numpy), **case.kwargs)
    assert all(isinstance(p, torch.Tensor) for p in _parts(from_torch))
    from_dlpack = case.fn(*_map_arrays(args, DLPackArray), **case.kwargs)
    assert all(hasattr(p, "__dlpack__") for p in _parts(from_dlpack))
    _assert_same(from_torch, from_numpy)
    _assert_same(from_dlpack, from_numpy)


@pytest.mark.parametrize("kind", ["numpy", "torch"])
@pytest.mark.parametrize("case", PUBLIC_CASES, ids=_IDS)
def test_empty_inputs_give_empty_results(rng, case, kind):
    args = case.make(rng, 0)
    if kind == "torch":
        args = _map_arrays(args, torch.from_numpy)
    outs = _parts(case.fn(*args, **case.kwargs))
    fulls = _parts(case.fn(*case.make(rng, 3), **case.kwargs))
    assert len(outs) == len(fulls)
    for out, full in zip(outs, fulls):
        # The layout for 3 rows with 0 of them (0-d reductions stay 0-d).
        expected_shape = tuple(full.shape)[:0] if full.ndim == 0 else (0,) + tuple(full.shape)[1:]
        assert tuple(out.shape) == expected_shape
        assert str(out.dtype).removeprefix("torch.") == str(full.dtype)


@pytest.mark.parametrize("kind", ["numpy", "torch"])
@pytest.mark.parametrize("case", PUBLIC_CASES, ids=_IDS)
def test_non_contiguous_inputs_give_the_contiguous_result(rng, case, kind):
    args = case.make(rng, 9)
    strided = _map_arrays(args, _strided)
    if kind == "torch":
        args, strided = _map_arrays(args, torch.from_numpy), _map_arrays(strided, torch.from_numpy)
    _assert_same(case.fn(*strided, **case.kwargs), case.fn(*args, **case.kwargs))


@pytest.mark.parametrize("case", PUBLIC_CASES, ids=_IDS)
def test_torch_compile_fullgraph(rng, case):
    args = _map_arrays(case.make(rng, 9), torch.from_numpy)
    torch._dynamo.reset()  # each case compiles the same lambda afresh
    compiled = torch.compile(lambda *a: case.fn(*a, **case.kwargs), fullgraph=True, backend="aot_eager")
    _assert_same(compiled(*args), case.fn(*args, **case.kwargs))


@pytest.mark.parametrize("case", PUBLIC_CASES, ids=_IDS)
def test_torchscript_gives_the_eager_result(rng, case):
    args = _map_arrays(case.make(rng, 9), torch.from_numpy)
    scripted = torch.jit.script(case.fn)
    _assert_same(scripted(*args, **case.kwargs), case.fn(*args, **case.kwargs))


class _Calls(torch.nn.Module):
    """A model that calls `fn` the way user code does (via detcore.ops)."""

    def __init__(self, case, scalars):
        super().__init__()
        self.case, self.scalars = case, scalars

    def forward(self, a0, a1=None, a2=None):
        arrays = iter((a0, a1, a2))
        args = [next(arrays) if s is None else s for s in self.scalars]
        return self.case.fn(*args, **self.case.kwargs)


@pytest.mark.parametrize("case", PUBLIC_CASES, ids=_IDS)
def test_fx_symbolic_trace_makes_the_op_a_leaf(rng, case):
    args = case.make(rng, 9)
    arrays = [torch.from_numpy(a) for a in args if isinstance(a, np.ndarray)]
    model = _Calls(case, [None if isinstance(a, np.ndarray) else a for a in args])
    unused = {name: None for name in ("a1", "a2")[len(arrays) - 1 :]}
    traced = torch.fx.symbolic_trace(model, concrete_args=unused or None)
    targets = [n.target for n in traced.graph.nodes if n.op == "call_function"]
    assert [t for t in targets if t.__name__ != "_assert_is_none"] == [case.fn]
    _assert_same(traced(*arrays), case.fn(*_map_arrays(args, torch.from_numpy), **case.kwargs))


# --------------------------------------------------------- modules


MODULE_CASES = [
    pytest.param(lambda: ops.RoIAlign((2, 3), 0.5, 2, aligned=True), id="RoIAlign"),
    pytest.param(lambda: ops.RoIAlign(3, 1, -1, deterministic=True), id="RoIAlign-int-scale"),
    pytest.param(lambda: ops.RoIPool((2, 3), 0.5), id="RoIPool"),
    pytest.param(lambda: ops.RoIPool(2, 1), id="RoIPool-int-scale"),
    pytest.param(lambda: ops.SPPPool((4, 2, 1), 0.5), id="SPPPool"),
    pytest.param(lambda: ops.SPPPool(3, 1), id="SPPPool-int-levels-int-scale"),
]


@pytest.mark.parametrize("make", MODULE_CASES)
@pytest.mark.parametrize("layout", ["k5", "list"])
def test_modules_script_and_trace_to_the_eager_result(rng, make, layout):
    module = make()
    x = _t(_features(rng))
    rois = _t(_rois(rng, 6, images=2))
    if layout == "list":
        rois = [rois[rois[:, 0] == i, 1:] for i in range(2)]
    expected = module(x, rois)
    _assert_same(torch.jit.script(module)(x, rois), expected)
    traced = torch.fx.symbolic_trace(module)
    assert [n.op for n in traced.graph.nodes].count("call_function") == 1
    _assert_same(traced(x, rois), expected)


def test_module_reprs_name_every_argument():
    assert repr(ops.RoIAlign(7, 0.25, 2)) == (
        "RoIAlign(output_size=(7, 7), spatial_scale=0.25, sampling_ratio=2, aligned=False, deterministic=None)"
    )
    assert repr(ops.RoIPool((7, 5), 1)) == "RoIPool(output_size=(7, 5), spatial_scale=1.0)"
    assert repr(ops.SPPPool()) == "SPPPool(levels=(6, 3, 2, 1), spatial_scale=1.0)"
    assert repr(ops.SPPPool(4, 1)) == "SPPPool(levels=(4,), spatial_scale=1.0)"


def test_anchors_script_to_the_eager_result():
    make, cell = torch.jit.script(ops.make_anchors), torch.jit.script(ops.cell_anchors)
    per_level = ([(3, 4), (2, 2)], [(8, 8), (16, 12)], [[32.0], [64.0, 90.5]], [[0.5, 1.0, 2.0], [1.0]])
    flat = ([(3, 4), (0, 5)], [16, 32], [32.0, 64.0], [0.5, 2.0])
    for args in (per_level, flat):
        got, expected = make(*args), ops.make_anchors(*args, dtype=torch.float32)
        assert len(got) == len(expected)
        for g, e in zip(got, expected):
            _assert_same(g, e)
    _assert_same(cell([32.0, 64.0], [0.5, 1.0], torch.float64), ops.cell_anchors([32.0, 64.0], [0.5, 1.0], torch.float64))


def _bad_calls():
    """(op, args, the argument the error names): scalars only the eager path
    would check if the custom ops did not check them again."""
    boxes, scores = _t(random_boxes(np.random.default_rng(0), 4)), torch.rand(4, dtype=torch.float64)
    x, rois = torch.rand(1, 2, 6, 6, dtype=torch.float64), torch.tensor([[0, 1, 1, 4, 4.0]], dtype=torch.float64)
    logits = torch.randn(3, 4, dtype=torch.float64)
    return [
        (ops.nms, (boxes, scores, -0.5), "iou_threshold"),
        (ops.roi_align, (x, rois, (2, 0), 1.0, 2, False), "output_size"),
        (ops.roi_align, (x, rois, 2, -1.0), "spatial_scale"),
        (ops.roi_pool, (x, rois, 2, 0.0), "spatial_scale"),
        (ops.spp_pool, (x, rois, [2, 0], 1.0), "levels"),
        (ops.spp_pool, (x, rois, [2, 1], -1.0), "spatial_scale"),
        (ops.sigmoid_focal_loss, (logits, torch.zeros_like(logits), 2.0), "alpha"),
        (ops.sigmoid_focal_loss, (logits, torch.zeros_like(logits), 0.25, 2.0, "avg"), "reduction"),
        (ops.paste_masks, (torch.rand(4, 5, 5, dtype=torch.float64), boxes, (-1, 5)), "image_size"),
        (ops.paste_masks, (torch.rand(4, 5, 5, dtype=torch.float64), boxes, (5, 5), None, "nearest"), "mode"),
        (ops.decode_boxes, (torch.zeros(4, 4, dtype=torch.float64), boxes, (0.0, 1.0, 1.0, 1.0)), "weights"),
        (ops.encode_boxes, (boxes, boxes, (1.0, -1.0, 1.0, 1.0)), "weights"),
        (ops.make_anchors, ([(2, 2)], [0], [32.0], [1.0]), "stride"),
        (ops.soft_nms, (boxes, scores, 0.3, 0.0), "sigma"),
        (ops.batched_soft_nms, (boxes, scores, torch.zeros(4, dtype=torch.int64), 0.3, 0.5, 0.0, "hard"), "method"),
        (ops.distance_box_iou, (boxes, boxes, -1.0), "eps"),
        (ops.generalized_box_iou_loss, (boxes, boxes, "avg"), "reduction"),
    ]


@pytest.mark.parametrize("index", range(len(_bad_calls())))
def test_scripted_calls_check_their_arguments_as_eager_calls_do(index):
    op, args, name = _bad_calls()[index]
    with pytest.raises((ValueError, TypeError), match=name):
        op(*args)
    # TorchScript's interpreter re-raises the op's error as a RuntimeError.
    with pytest.raises(RuntimeError, match=f"(ValueError|TypeError): {name}"):
        torch.jit.script(op)(*args)


class _AnchorsOfFeatureMap(torch.nn.Module):
    def forward(self, x):
        return ops.make_anchors([(x.shape[2], x.shape[3])], [16], [32.0, 64.0], [0.5, 1.0], x.dtype, x.device)


def test_fx_traces_make_anchors_of_a_feature_map_shape_to_one_leaf():
    traced = torch.fx.symbolic_trace(_AnchorsOfFeatureMap())
    assert [n.target for n in traced.graph.nodes if n.op == "call_function"].count(ops.make_anchors) == 1
    x = torch.zeros(1, 3, 5, 7)
    for got, expected in zip(traced(x), _AnchorsOfFeatureMap()(x)):
        _assert_same(got, expected)
