"""What the fuzzer calls: one entry per public op of ``detcore.ops.__all__``.

An entry maps the op's name to a generator ``gen(rng) -> dict`` of valid
keyword arguments (arrays as numpy; the fuzzer converts them to torch or
DLPack and corrupts one argument for the invalid cases), plus how to call it
and whether its result has a gradient. A new op needs one entry here; the
test fails, naming it, until it has one.
"""

from __future__ import annotations

import numpy as np

import detcore.ops as ops

FLOATS = (np.float32, np.float64)


def _boxes(rng, n, dtype=None, *, weird=True):
    dtype = dtype or FLOATS[rng.integers(2)]
    xy = rng.uniform(-10, 60, (n, 2))
    wh = rng.uniform(0, 30, (n, 2))
    boxes = np.concatenate([xy, xy + wh], axis=1)
    if weird and n and rng.random() < 0.3:  # degenerate, inverted, NaN, inf and huge corners
        rows = rng.integers(0, n, size=min(n, 3))
        boxes[rows, rng.integers(0, 4, size=len(rows))] = rng.choice([np.nan, np.inf, -np.inf, 1e30, -1e30, 0.0])
    return boxes.astype(dtype)


def _count(rng, high=40):
    return int(rng.choice([0, 1, 2, rng.integers(3, high)]))


def _box_iou(rng):
    dtype = FLOATS[rng.integers(2)]
    return {"boxes1": _boxes(rng, _count(rng), dtype), "boxes2": _boxes(rng, _count(rng), dtype)}


def _threshold(rng):
    return float(rng.choice([0.0, 0.3, 0.5, 0.7, 1.0, 2.0]))


def _nms(rng):
    dtype = FLOATS[rng.integers(2)]
    n = _count(rng)
    scores = rng.choice([0.1, 0.5, 0.9], n) if rng.random() < 0.3 else rng.random(n)  # ties
    return {"boxes": _boxes(rng, n, dtype), "scores": scores.astype(dtype), "iou_threshold": _threshold(rng)}


def _batched_nms(rng):
    args = _nms(rng)
    n = args["boxes"].shape[0]
    args["idxs"] = rng.integers(-2, 3, n).astype(rng.choice([np.int64, np.int32, np.uint8]) if n else np.int64)
    if args["idxs"].dtype == np.uint8:
        args["idxs"] = np.abs(args["idxs"].astype(np.int64)).astype(np.uint8)
    return {"boxes": args["boxes"], "scores": args["scores"], "idxs": args["idxs"],
            "iou_threshold": args["iou_threshold"]}


def _output_size(rng):
    size = int(rng.integers(1, 5))
    return size if rng.random() < 0.5 else (size, int(rng.integers(1, 5)))


def _rois(rng, batch, dtype):
    """(K, 5) RoIs or a list of per-image (Ki, 4) boxes."""
    if rng.random() < 0.3:
        return [_boxes(rng, _count(rng, 6), dtype) for _ in range(batch)]
    k = _count(rng, 8)
    index = rng.integers(0, batch, (k, 1)).astype(dtype)
    return np.concatenate([index, _boxes(rng, k, dtype) / 4], axis=1)


def _features(rng, dtype):
    shape = (int(rng.integers(1, 3)), int(rng.integers(0, 4)), int(rng.integers(1, 9)), int(rng.integers(1, 9)))
    return rng.standard_normal(shape).astype(dtype)


def _roi_align(rng):
    dtype = FLOATS[rng.integers(2)]
    x = _features(rng, dtype)
    return {"input": x, "boxes": _rois(rng, x.shape[0], dtype), "output_size": _output_size(rng),
            "spatial_scale": float(rng.choice([1.0, 0.5, 0.25])), "sampling_ratio": int(rng.integers(-1, 4)),
            "aligned": bool(rng.integers(2))}


def _roi_pool(rng):
    dtype = FLOATS[rng.integers(2)]
    x = _features(rng, dtype)
    return {"input": x, "boxes": _rois(rng, x.shape[0], dtype), "output_size": _output_size(rng),
            "spatial_scale": float(rng.choice([1.0, 0.5, 0.25]))}


def _spp_pool(rng):
    dtype = FLOATS[rng.integers(2)]
    x = _features(rng, dtype)
    levels = [int(n) for n in rng.integers(1, 5, int(rng.integers(1, 4)))]
    return {"input": x, "boxes": _rois(rng, x.shape[0], dtype), "levels": levels[0] if rng.random() < 0.2 else levels,
            "spatial_scale": float(rng.choice([1.0, 0.5, 0.25]))}


def _sizes(rng):
    return tuple(float(s) for s in rng.choice([16, 32, 64, 128], int(rng.integers(1, 4)), replace=False))


def _ratios(rng):
    return tuple(float(r) for r in rng.choice([0.5, 1.0, 2.0], int(rng.integers(1, 4)), replace=False))


def _make_anchors(rng):
    levels = int(rng.integers(1, 4))
    return {"feature_sizes": [(int(rng.integers(0, 6)), int(rng.integers(0, 6))) for _ in range(levels)],
            "strides": [int(rng.choice([4, 8, 16])) for _ in range(levels)], "sizes": _sizes(rng),
            "aspect_ratios": _ratios(rng), "dtype": FLOATS[rng.integers(2)]}


def _cell_anchors(rng):
    return {"sizes": _sizes(rng), "aspect_ratios": _ratios(rng), "dtype": FLOATS[rng.integers(2)]}


def _weights(rng):
    return (1.0, 1.0, 1.0, 1.0) if rng.random() < 0.5 else (10.0, 10.0, 5.0, 5.0)


def _encode_boxes(rng):
    dtype = FLOATS[rng.integers(2)]
    n = _count(rng)
    return {"reference_boxes": _boxes(rng, n, dtype), "proposals": _boxes(rng, n, dtype), "weights": _weights(rng)}


def _decode_boxes(rng):
    dtype = FLOATS[rng.integers(2)]
    n = _count(rng)
    k = int(rng.integers(1, 3))
    return {"deltas": rng.standard_normal((n, 4 * k)).astype(dtype), "boxes": _boxes(rng, n, dtype),
            "weights": _weights(rng), "clamp": float(rng.choice([4.135, 1.0, np.inf]))}


def _sigmoid_focal_loss(rng):
    dtype = FLOATS[rng.integers(2)]
    n, c = _count(rng, 10), int(rng.integers(1, 5))
    kind = rng.integers(3)
    if kind == 0:  # integer labels, background c and ignored -1 included
        inputs = rng.standard_normal((n, c)).astype(dtype)
        targets = rng.integers(-1, c + 1, n).astype(np.int64)
    else:  # float targets of any shape, 0-d included
        shape = [(), (n,), (n, c), (2, n, c)][rng.integers(4)]
        inputs = np.asarray(rng.standard_normal(shape)).astype(dtype)
        targets = np.asarray(rng.random(shape) < 0.3).astype(dtype)
    return {"inputs": inputs, "targets": targets, "alpha": float(rng.choice([0.25, 0.5, -1.0])),
            "gamma": float(rng.choice([0.0, 2.0])), "reduction": str(rng.choice(["none", "sum", "mean"]))}


def _paste_masks(rng):
    dtype = FLOATS[rng.integers(2)]
    n, m = _count(rng, 6), int(rng.integers(1, 6))
    masks = rng.random((n, 1, m, m) if rng.random() < 0.5 else (n, m, m)).astype(dtype)
    return {"masks": masks, "boxes": _boxes(rng, n, dtype), "image_size": (int(rng.integers(0, 40)),
            int(rng.integers(0, 40))), "threshold": None if rng.random() < 0.5 else 0.5,
            "mode": str(rng.choice(["bilinear", "bicubic"]))}


def _box_format(rng):
    return str(rng.choice(["xyxy", "xywh", "cxcywh"]))


def _box_area(rng):
    n = _count(rng)
    boxes = _boxes(rng, n) if rng.random() < 0.8 else _boxes(rng, n * 2).reshape(n, 2, 4)
    return {"boxes": boxes, "fmt": _box_format(rng)}


def _box_convert(rng):
    return {"boxes": _boxes(rng, _count(rng)), "in_fmt": _box_format(rng), "out_fmt": _box_format(rng)}


def _clip_boxes_to_image(rng):
    return {"boxes": _boxes(rng, _count(rng)), "size": (int(rng.integers(0, 50)), int(rng.integers(0, 50)))}


def _remove_small_boxes(rng):
    return {"boxes": _boxes(rng, _count(rng)), "min_size": float(rng.choice([0.0, 1.0, 5.0, 20.0]))}


def _masks_to_boxes(rng):
    shape = (_count(rng, 6), int(rng.integers(1, 9)), int(rng.integers(1, 9)))
    masks = rng.random(shape) < 0.2
    return {"masks": masks.astype(rng.choice([np.bool_, np.uint8, np.float32]))}


def _box_iou_eps(rng):
    args = _box_iou(rng)
    args["eps"] = float(rng.choice([1e-7, 0.0, 1e-3]))
    return args


def _box_iou_loss(rng):
    dtype = FLOATS[rng.integers(2)]
    n = _count(rng)
    shape = [(n, 4), (4,), (2, n, 4)][rng.integers(3)]
    count = int(np.prod(shape[:-1]))
    return {"boxes1": _boxes(rng, count, dtype).reshape(shape), "boxes2": _boxes(rng, count, dtype).reshape(shape),
            "reduction": str(rng.choice(["none", "sum", "mean"])), "eps": float(rng.choice([1e-7, 0.0, 1e-3]))}


def _soft_nms(rng):
    args = _nms(rng)
    args["sigma"] = float(rng.choice([0.5, 0.1, 2.0]))
    args["score_threshold"] = float(rng.choice([0.001, 0.0, 0.5, -np.inf]))
    args["method"] = str(rng.choice(["gaussian", "linear"]))
    return args


def _batched_soft_nms(rng):
    args = _batched_nms(rng)
    soft = _soft_nms(rng)
    return {**args, "sigma": soft["sigma"], "score_threshold": soft["score_threshold"], "method": soft["method"]}


def _multi_scale_roi_align(rng):
    """Two or three pyramid levels (finest first) of a (B, C, H, W) batch of
    images up to 64 pixels; per-image boxes in image coordinates."""
    dtype = FLOATS[rng.integers(2)]
    batch, channels = int(rng.integers(1, 3)), int(rng.integers(1, 4))
    height, width = int(rng.choice([32, 64])), int(rng.choice([32, 64]))
    levels = int(rng.integers(1, 4))
    features = [rng.standard_normal((batch, channels, height // 4 >> k, width // 4 >> k)).astype(dtype)
                for k in range(levels)]
    return {"feat0": features[0], "feat1": features[1] if levels > 1 else None,
            "feat2": features[2] if levels > 2 else None,
            "boxes": [_boxes(rng, _count(rng, 6), dtype) for _ in range(batch)],
            "image_shapes": [(height, width)] * batch, "output_size": _output_size(rng),
            "sampling_ratio": int(rng.integers(-1, 4))}


def _call_roi_align_module(input, boxes, output_size, spatial_scale, sampling_ratio, aligned):
    return ops.RoIAlign(output_size, spatial_scale, sampling_ratio, aligned)(input, boxes)


def _call_roi_pool_module(input, boxes, output_size, spatial_scale):
    return ops.RoIPool(output_size, spatial_scale)(input, boxes)


def _call_spp_pool_module(input, boxes, levels, spatial_scale):
    return ops.SPPPool(levels, spatial_scale)(input, boxes)


def _call_multi_scale_roi_align(feat0, feat1, feat2, boxes, image_shapes, output_size, sampling_ratio):
    pooler = ops.MultiScaleRoIAlign(["feat0", "feat1", "feat2"], output_size, sampling_ratio)
    maps = {name: value for name, value in (("feat0", feat0), ("feat1", feat1), ("feat2", feat2)) if value is not None}
    return pooler(maps, boxes, image_shapes)


# name: (generator, call (None: the op itself), differentiable torch result)
OPS = {
    "box_iou": (_box_iou, None, False),
    "nms": (_nms, None, False),
    "batched_nms": (_batched_nms, None, False),
    "roi_align": (_roi_align, None, True),
    "RoIAlign": (_roi_align, _call_roi_align_module, True),
    "roi_pool": (_roi_pool, None, True),
    "RoIPool": (_roi_pool, _call_roi_pool_module, True),
    "spp_pool": (_spp_pool, None, True),
    "SPPPool": (_spp_pool, _call_spp_pool_module, True),
    "make_anchors": (_make_anchors, None, False),
    "cell_anchors": (_cell_anchors, None, False),
    "encode_boxes": (_encode_boxes, None, False),
    "decode_boxes": (_decode_boxes, None, True),
    "sigmoid_focal_loss": (_sigmoid_focal_loss, None, True),
    "paste_masks": (_paste_masks, None, False),
    "box_area": (_box_area, None, True),
    "box_convert": (_box_convert, None, True),
    "clip_boxes_to_image": (_clip_boxes_to_image, None, True),
    "remove_small_boxes": (_remove_small_boxes, None, False),
    "masks_to_boxes": (_masks_to_boxes, None, False),
    "generalized_box_iou": (_box_iou, None, False),
    "distance_box_iou": (_box_iou_eps, None, False),
    "complete_box_iou": (_box_iou_eps, None, False),
    "generalized_box_iou_loss": (_box_iou_loss, None, True),
    "distance_box_iou_loss": (_box_iou_loss, None, True),
    "complete_box_iou_loss": (_box_iou_loss, None, True),
    "soft_nms": (_soft_nms, None, False),
    "batched_soft_nms": (_batched_soft_nms, None, False),
    "MultiScaleRoIAlign": (_multi_scale_roi_align, _call_multi_scale_roi_align, True),
}
# Ops that take torch tensors only (nn.Modules without a numpy path): called
# with tensors only, and not compared with a numpy twin call.
TORCH_ONLY = {"MultiScaleRoIAlign"}

# Values above the documented bounds on one call's work: each must be refused.
OVER_LIMIT = {
    "sampling_ratio": [129, 2**24, 2**63],
    "output_size": [4097, (1, 2**62), 2**62],
    "levels": [1025, [1, 2**62], [1] * 17, 2**62],
    "image_size": [(65537, 1), (2**62, 2**62)],
    "feature_sizes": [[(65537, 1)], [(2**62, 2**62)], [(16384, 16385)]],
}
