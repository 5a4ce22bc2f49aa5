"""onnxscript translations of detcore's custom ops into standard ONNX
operators (opset 18, no custom domain), for torch.onnx's dynamo exporter.

- roi_align -> RoiAlign, coordinate_transformation_mode "half_pixel" for
  aligned=True and "output_half_pixel" for aligned=False. onnxruntime's
  RoiAlign keeps the legacy rule of clamping RoI sizes to >= 1 in
  "output_half_pixel" mode and the adaptive grid ceil(roi_size / bins) that
  detcore uses, although the ONNX text leaves both unsaid; tests/export
  compares the two on small, degenerate and out-of-image RoIs.
- roi_pool -> MaxRoiPool (same rounding: round the scaled corners, bins
  floor/ceil, empty bins 0).
- nms -> NonMaxSuppression; batched_nms -> NonMaxSuppression with one score
  row per class (a box scores -inf outside its class), so classes never
  suppress each other and coordinates are not offset. The kept indices are
  then put in detcore's order: decreasing score, ties by lower index.
- heatmaps_to_keypoints -> a Loop over the detections: Resize (cubic, a =
  -0.75, half_pixel, edge taps: torch's bicubic), ArgMax and ReduceMax of
  each keypoint's map, the pixel centre back to image coordinates.
"""

from __future__ import annotations

import onnx
import onnxscript
from onnxscript import FLOAT, INT64, script
from onnxscript import opset18 as op

_FLOAT_MIN = -3.4028234663852886e38
_INT64 = onnxscript.INT64.dtype


def _roi_align(input, rois, spatial_scale: float, pooled_height: int, pooled_width: int, sampling_ratio: int,
               aligned: bool, deterministic: bool):
    batch_indices = op.Cast(op.Squeeze(op.Slice(rois, [0], [1], [1]), [1]), to=_INT64)
    boxes = op.Slice(rois, [1], [5], [1])
    return op.RoiAlign(
        input,
        boxes,
        batch_indices,
        mode="avg",
        output_height=pooled_height,
        output_width=pooled_width,
        sampling_ratio=max(sampling_ratio, 0),
        spatial_scale=spatial_scale,
        coordinate_transformation_mode="half_pixel" if aligned else "output_half_pixel",
    )


def _roi_pool(input, rois, spatial_scale: float, pooled_height: int, pooled_width: int):
    pooled = op.MaxRoiPool(input, rois, pooled_shape=[pooled_height, pooled_width], spatial_scale=spatial_scale)
    # detcore's second output, the argmax, only feeds the backward: zeros here
    argmax = op.ConstantOfShape(op.Shape(pooled), value=onnx.helper.make_tensor("zero", onnx.TensorProto.INT32, [1], [0]))
    return pooled, argmax


def _ordered(keep, scores):
    """Kept box indices (K,) in decreasing score order, equal scores by lower
    index (ONNX TopK keeps the earlier element first among equals)."""
    k = op.Shape(keep)
    ascending = op.TopK(op.Neg(keep), k, axis=0, largest=1, sorted=1)[0]
    ascending = op.Neg(ascending)
    _, order = op.TopK(op.Gather(scores, ascending), k, axis=0, largest=1, sorted=1)
    return op.Gather(ascending, order)


def _nms_rows(boxes, scores_rows, iou_threshold: float):
    """NonMaxSuppression over (C, N) score rows; returns the kept box indices."""
    n = op.Shape(boxes, start=0, end=1)
    selected = op.NonMaxSuppression(
        op.Unsqueeze(boxes, [0]),
        op.Unsqueeze(scores_rows, [0]),
        n,
        op.Constant(value_float=iou_threshold),
        op.Constant(value_float=_FLOAT_MIN),
    )
    return op.Squeeze(op.Slice(selected, [2], [3], [1]), [1])


def _nms(boxes, scores, iou_threshold: float):
    keep = _nms_rows(boxes, op.Unsqueeze(scores, [0]), iou_threshold)
    return _ordered(keep, scores)


def _batched_nms(boxes, scores, idxs, iou_threshold: float):
    # classes as rows: 0..max(idx) - min(idx), a box's score only in its own row
    low = op.ReduceMin(idxs, keepdims=1)
    cls = op.Sub(idxs, low)
    num = op.Add(op.ReduceMax(cls, keepdims=1), op.Constant(value_ints=[1]))
    num = op.Max(num, op.Constant(value_ints=[1]))  # empty input: one row
    rows = op.Unsqueeze(op.Range(op.Constant(value_int=0), op.Squeeze(num, [0]), op.Constant(value_int=1)), [1])
    member = op.Equal(rows, op.Unsqueeze(cls, [0]))
    table = op.Where(member, op.Unsqueeze(scores, [0]), op.Constant(value_float=float("-inf")))
    keep = _nms_rows(boxes, table, iou_threshold)
    return _ordered(keep, scores)


# detcore::heatmaps_to_keypoints (see keypoints.py): a Loop over the detections
@script()
def _heatmaps_to_keypoints(maps: FLOAT, boxes: FLOAT) -> tuple[FLOAT, FLOAT]:
    num_keypoints = op.Shape(maps, start=1, end=2)
    found_points = op.ConstantOfShape(op.Concat(op.Constant(value_ints=[0]), num_keypoints, op.Constant(value_ints=[3]),
                                             axis=0))
    found_scores = op.ConstantOfShape(op.Concat(op.Constant(value_ints=[0]), num_keypoints, axis=0))
    count = op.Squeeze(op.Shape(maps, start=0, end=1), op.Constant(value_ints=[0]))
    one = op.Constant(value_float=1.0)
    half = op.Constant(value_float=0.5)
    for i in range(count):
        box = op.Gather(boxes, i, axis=0)
        x1 = op.Gather(box, op.Constant(value_int=0), axis=0)
        y1 = op.Gather(box, op.Constant(value_int=1), axis=0)
        width = op.Max(op.Sub(op.Gather(box, op.Constant(value_int=2), axis=0), x1), one)
        height = op.Max(op.Sub(op.Gather(box, op.Constant(value_int=3), axis=0), y1), one)
        w_px = op.Cast(op.Ceil(width), to=INT64.dtype)
        h_px = op.Cast(op.Ceil(height), to=INT64.dtype)
        planes = op.Unsqueeze(op.Gather(maps, i, axis=0), op.Constant(value_ints=[1]))  # (K, 1, S, S)
        sizes = op.Concat(op.Shape(planes, start=0, end=2), op.Reshape(h_px, op.Constant(value_ints=[1])),
                          op.Reshape(w_px, op.Constant(value_ints=[1])), axis=0)
        resized = op.Resize(planes, None, None, sizes, mode="cubic", cubic_coeff_a=-0.75,
                            coordinate_transformation_mode="half_pixel", exclude_outside=0)
        flat = op.Flatten(resized, axis=1)  # (K, h_px * w_px)
        pos = op.ArgMax(flat, axis=1, keepdims=0, select_last_index=0)
        best = op.ReduceMax(flat, op.Constant(value_ints=[1]), keepdims=0)
        xi = op.Mod(pos, w_px)
        yi = op.Div(op.Sub(pos, xi), w_px)
        kx = op.Add(op.Mul(op.Add(op.Cast(xi, to=FLOAT.dtype), half), op.Div(width, op.Cast(w_px, to=FLOAT.dtype))), x1)
        ky = op.Add(op.Mul(op.Add(op.Cast(yi, to=FLOAT.dtype), half), op.Div(height, op.Cast(h_px, to=FLOAT.dtype))),
                    y1)
        ones = op.Expand(one, op.Shape(kx))
        axis = op.Constant(value_ints=[-1])
        point = op.Concat(op.Unsqueeze(kx, axis), op.Unsqueeze(ky, axis), op.Unsqueeze(ones, axis), axis=-1)
        found_points = op.Concat(found_points, op.Unsqueeze(point, op.Constant(value_ints=[0])), axis=0)
        found_scores = op.Concat(found_scores, op.Unsqueeze(best, op.Constant(value_ints=[0])), axis=0)
    return found_points, found_scores


def translation_table() -> dict:
    """{detcore custom op overload: onnxscript translation}."""
    import torch

    from .. import ops  # noqa: F401  (registers torch.ops.detcore)
    from . import keypoints  # noqa: F401  (registers torch.ops.detcore.heatmaps_to_keypoints)

    d = torch.ops.detcore
    return {
        d.roi_align.default: _roi_align,
        d.roi_pool.default: _roi_pool,
        d.nms.default: _nms,
        d.batched_nms.default: _batched_nms,
        d.heatmaps_to_keypoints.default: _heatmaps_to_keypoints,
    }
