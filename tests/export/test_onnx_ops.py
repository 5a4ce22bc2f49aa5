"""detcore's op translations against the ops themselves, in onnxruntime:
RoiAlign in both coordinate modes (legacy RoI sizes clamped to >= 1, the
adaptive sampling grid) on small, degenerate and out-of-image RoIs;
MaxRoiPool; NonMaxSuppression for nms and batched_nms (classes apart, ties
by lower index)."""

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from detcore import ops
from detcore.export import program_to_onnx

SETTINGS = ((False, 2), (False, 0), (True, 0), (True, 2))  # (aligned, sampling_ratio)


class AllOps(torch.nn.Module):
    def forward(self, features, rois, boxes, scores, classes):
        pooled = [ops.roi_align(features, rois, (3, 4), 0.5, s, a) for a, s in SETTINGS]
        pooled.append(ops.roi_pool(features, rois, (3, 4), 0.5))
        return (*pooled, ops.nms(boxes, scores, 0.5), ops.batched_nms(boxes, scores, classes, 0.5))


def _rois(rng, k, h, w):
    xy = rng.uniform(-8, [2 * w, 2 * h], (k, 2))
    wh = rng.choice([0.0, 0.3, 0.9, 3.0, 17.0], (k, 2)) * rng.uniform(0.5, 2.0, (k, 2))
    boxes = np.concatenate([xy, xy + wh], 1)
    boxes[:3] = [[-30, -30, -5, -5], [2 * w + 5, 0, 2 * w + 40, 10], [4, 4, 4, 4]]  # outside, outside, a point
    index = rng.integers(0, 2, (k, 1))
    return torch.tensor(np.concatenate([index, boxes], 1), dtype=torch.float32)


def _nms_inputs(rng, n):
    xy = rng.uniform(0, 50, (n, 2))
    boxes = np.concatenate([xy, xy + rng.uniform(5, 30, (n, 2))], 1)
    boxes[n // 2:] = boxes[: n - n // 2] + rng.normal(0, 2, (n - n // 2, 4))  # overlapping pairs
    scores = rng.choice([0.1, 0.5, 0.9], n) + rng.choice([0.0, 0.01], n)  # many ties
    classes = rng.integers(0, 3, n)
    return (torch.tensor(boxes, dtype=torch.float32), torch.tensor(scores, dtype=torch.float32),
            torch.tensor(classes, dtype=torch.int64))


@pytest.fixture(scope="module")
def session(tmp_path_factory):
    rng = np.random.default_rng(0)
    args = (torch.rand(2, 5, 12, 16), _rois(rng, 8, 12, 16), *_nms_inputs(rng, 12))
    dyn = torch.export.Dim
    shapes = {"features": {2: dyn("h", min=2, max=512), 3: dyn("w", min=2, max=512)}, "rois": {0: dyn("k", min=1)},
              "boxes": {0: dyn("n", min=2)}, "scores": {0: dyn("n", min=2)}, "classes": {0: dyn("n", min=2)}}
    program = torch.export.export(AllOps(), args, dynamic_shapes=shapes)
    path = program_to_onnx(program, args, [f"out{i}" for i in range(7)], tmp_path_factory.mktemp("ops") / "ops.onnx")
    graph = onnx.load(str(path)).graph
    assert {node.domain for node in graph.node} <= {"", "ai.onnx"}
    assert {"RoiAlign", "MaxRoiPool", "NonMaxSuppression"} <= {node.op_type for node in graph.node}
    return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])


@pytest.mark.parametrize("size", [(9, 11), (20, 7)])
def test_onnx_ops_match_detcore(session, rng, size):
    h, w = size
    features = torch.tensor(rng.normal(0, 1, (2, 5, h, w)), dtype=torch.float32)
    rois = _rois(rng, 40, h, w)
    boxes, scores, classes = _nms_inputs(rng, 60)
    inputs = (features, rois, boxes, scores, classes)
    ref = AllOps()(*inputs)
    names = ["features", "rois", "boxes", "scores", "classes"]
    out = session.run(None, {n: x.numpy() for n, x in zip(names, inputs)})
    for (aligned, sr), r, o in zip(SETTINGS, ref[:4], out[:4]):
        np.testing.assert_allclose(o, r.numpy(), rtol=1e-5, atol=1e-5, err_msg=f"aligned={aligned} sr={sr}")
    np.testing.assert_array_equal(out[4], ref[4].numpy())
    np.testing.assert_array_equal(out[5], ref[5].numpy())
    np.testing.assert_array_equal(out[6], ref[6].numpy())
    # classes apart: with one class for all, batched_nms would keep fewer
    assert len(ref[6]) > len(ref[5])


def test_onnx_nms_of_no_boxes(session):
    inputs = {"features": np.zeros((2, 5, 4, 4), np.float32), "rois": np.array([[0, 0, 0, 2, 2]], np.float32),
              "boxes": np.zeros((0, 4), np.float32), "scores": np.zeros((0,), np.float32),
              "classes": np.zeros((0,), np.int64)}
    out = session.run(None, inputs)
    assert out[5].shape == (0,) and out[6].shape == (0,)


class Keypoints(torch.nn.Module):
    def forward(self, maps, boxes):
        return torch.ops.detcore.heatmaps_to_keypoints(maps, boxes)


def _keypoint_inputs(rng, d, k=4, s=10):
    maps = rng.normal(0, 1, (d, k, s, s))
    maps[:, 0] = 0.0  # a flat map: every resized pixel is exactly 0, the first one wins
    maps[:, 1, 3, 6] = 9.0  # a sharp peak
    xy = rng.uniform(-5, 60, (d, 2))
    wh = rng.choice([0.0, 0.2, 0.9, 1.5, 7.3, 40.6, 97.0], (d, 2)) * rng.choice([1, -1], (d, 2), p=[0.9, 0.1])
    boxes = np.concatenate([xy, xy + wh], 1)  # points, sub-pixel, fractional, large and inverted boxes
    return torch.tensor(maps, dtype=torch.float32), torch.tensor(boxes, dtype=torch.float32)


@pytest.fixture(scope="module")
def keypoint_session(tmp_path_factory):
    rng = np.random.default_rng(1)
    args = _keypoint_inputs(rng, 3)
    d = torch.export.Dim("d", min=0)
    program = torch.export.export(Keypoints(), args, dynamic_shapes={"maps": {0: d}, "boxes": {0: d}})
    path = program_to_onnx(program, args, ["keypoints", "scores"], tmp_path_factory.mktemp("kp") / "kp.onnx")
    graph = onnx.load(str(path)).graph
    assert {node.domain for node in graph.node} <= {"", "ai.onnx"}
    assert "Loop" in {node.op_type for node in graph.node}
    return program, ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])


@pytest.mark.parametrize("count", [0, 1, 25])
def test_onnx_keypoint_decoding_matches_eager(keypoint_session, rng, count):
    from detcore.models.roi_heads.keypoint_head import heatmaps_to_keypoints

    program, session = keypoint_session
    maps, boxes = _keypoint_inputs(rng, count)
    ref_kps, ref_scores = heatmaps_to_keypoints(maps, boxes)
    kps, scores = session.run(None, {"maps": maps.numpy(), "boxes": boxes.numpy()})
    assert kps.shape == (count, 4, 3) and scores.shape == (count, 4)
    # same pixel of the resized map: exact coordinates; the cubic sums differ by float rounding
    np.testing.assert_allclose(kps, ref_kps.numpy(), rtol=0, atol=1e-4)
    np.testing.assert_allclose(scores, ref_scores.numpy(), rtol=0, atol=1e-4)
    exported = program.module()(maps, boxes)
    torch.testing.assert_close(exported[0], ref_kps, rtol=0, atol=0)
    torch.testing.assert_close(exported[1], ref_scores, rtol=0, atol=0)


def test_keypoint_op_checks_shapes():
    with pytest.raises(ValueError, match="maps, boxes"):
        torch.ops.detcore.heatmaps_to_keypoints(torch.zeros(2, 3, 4, 4), torch.zeros(3, 4))
