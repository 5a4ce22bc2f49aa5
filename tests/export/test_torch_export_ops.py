"""torch.export of every detcore op (torch.library custom ops with fake
implementations): dynamic sizes, data-dependent output sizes for nms, and
the exported program equal to the eager op on fresh inputs of other sizes."""

import numpy as np
import torch
from detcore import ops

Dim = torch.export.Dim


def _boxes(rng, n, scale=50.0):
    xy = rng.uniform(0, scale, (n, 2))
    return torch.tensor(np.concatenate([xy, xy + rng.uniform(1, scale / 2, (n, 2))], 1), dtype=torch.float32)


class Ops(torch.nn.Module):
    def forward(self, boxes, other, scores, classes, features, rois, masks, logits, targets):
        h, w = features.shape[-2:]
        return (
            ops.box_iou(boxes, other),
            ops.nms(boxes, scores, 0.5),
            ops.batched_nms(boxes, scores, classes, 0.5),
            ops.roi_align(features, rois, (2, 3), 0.5, 2, False),
            ops.roi_align(features, rois, (2, 3), 0.5, 0, True),
            ops.roi_pool(features, rois, (2, 3), 0.5),
            ops.encode_boxes(boxes, boxes.flip(0)),
            ops.decode_boxes(scores[:, None].expand(-1, 4), boxes, (10.0, 10.0, 5.0, 5.0)),
            ops.make_anchors([(h, w)], [8], [(16.0, 32.0)], [(0.5, 1.0)], torch.float32, "cpu")[0],
            ops.paste_masks(masks, boxes, (40, 48), 0.5),
            ops.sigmoid_focal_loss(logits, targets, 0.25, 2.0, "sum"),
        )


def _inputs(rng, n, m, h, w, k):
    boxes = _boxes(rng, n)
    boxes[n // 2:] = boxes[: n - n // 2] + 1.0  # overlaps, so nms drops some
    rois = torch.cat([torch.tensor(rng.integers(0, 2, (k, 1)), dtype=torch.float32), _boxes(rng, k, 2 * w)], 1)
    return (
        boxes,
        _boxes(rng, m),
        torch.tensor(rng.uniform(0, 1, n), dtype=torch.float32),
        torch.tensor(rng.integers(0, 3, n)),
        torch.tensor(rng.normal(0, 1, (2, 3, h, w)), dtype=torch.float32),
        rois,
        torch.tensor(rng.uniform(0, 1, (n, 14, 14)), dtype=torch.float32),
        torch.tensor(rng.normal(0, 1, (n, 5)), dtype=torch.float32),
        torch.tensor(rng.integers(-1, 6, n)),
    )


def test_every_op_exports_with_dynamic_sizes(rng):
    n, m, h, w, k = Dim("n", min=2, max=4096), Dim("m", min=2, max=4096), Dim("h", min=2, max=512), \
        Dim("w", min=2, max=512), Dim("k", min=2, max=4096)
    shapes = ({0: n}, {0: m}, {0: n}, {0: n}, {2: h, 3: w}, {0: k}, {0: n}, {0: n}, {0: n})
    program = torch.export.export(Ops(), _inputs(rng, 10, 7, 12, 16, 9), dynamic_shapes=shapes)
    targets = {node.target for node in program.graph.nodes if node.op == "call_function"}
    names = {str(t) for t in targets}
    for op in ("nms", "batched_nms", "roi_align", "roi_pool", "box_iou", "encode_boxes", "decode_boxes",
               "make_anchors", "paste_masks", "sigmoid_focal_loss"):
        assert f"detcore.{op}.default" in names, op
    # nms's kept count is data-dependent: an unbacked size, not the input's
    nms_node = next(nd for nd in program.graph.nodes if str(nd.target) == "detcore.nms.default")
    assert str(nms_node.meta["val"].shape[0]).startswith("u")
    module = program.module()
    for sizes in ((25, 3, 9, 20, 4), (6, 30, 17, 11, 33)):
        inputs = _inputs(rng, *sizes)
        for got, want in zip(module(*inputs), Ops()(*inputs)):
            torch.testing.assert_close(got, want, rtol=0, atol=0)


def test_nms_fake_size_is_dynamic():
    from torch._subclasses.fake_tensor import FakeTensorMode
    from torch.fx.experimental.symbolic_shapes import ShapeEnv

    with FakeTensorMode(shape_env=ShapeEnv()):
        keep = ops.nms(torch.empty(5, 4), torch.empty(5), 0.5)
    assert isinstance(keep.shape[0], torch.SymInt)

