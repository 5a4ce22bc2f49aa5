"""The export wrapper: a detector's eval-mode inference as one graph-friendly
forward, for torch.export and ONNX.

Contract: ``images`` is one (1, 3, H, W) float32 image in [0, 1], already
resized by the caller to the model's input size (short side ``min_size``,
long side at most ``max_size``, see `detcore.export.resize_for`) and with H
and W multiples of `required_multiple(model)`; H and W stay dynamic. The
outputs are in the coordinates of that input: ``boxes`` (D, 4), ``labels``
(D,) int64, ``scores`` (D,), and for Mask R-CNN ``masks`` (D, 1, M, M), the
mask head's probabilities of each detection's class inside its box (paste
them with `detcore.ops.paste_masks`), and for keypoint R-CNN
``keypoints`` (D, K, 3) and ``keypoints_scores`` (D, K), decoded in the
graph by the ``detcore::heatmaps_to_keypoints`` op (see keypoints.py).

The wrapper reuses the model's modules and weights; only the steps whose
eager code branches on data (empty-level checks, per-box Python loops) or
calls ops no exporter knows (anchors, box coding) are written here with
plain tensor operations. They compute the same numbers as the eager model.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .. import ops
from . import keypoints  # noqa: F401  (registers torch.ops.detcore.heatmaps_to_keypoints)
from ..models.box_ops import clip_boxes
from ..models.meta.rcnn import GeneralizedRCNN
from ..models.meta.retinanet import RetinaNet
from ..models.proposal.rpn import flatten_level


def required_multiple(model: nn.Module) -> int:
    """H and W of an exported model's input must be multiples of this: the
    padding multiple of the eager transform, so that no padding is needed
    and the graph sees the batch the eager model sees."""
    return int(model.transform.size_divisible)


def _grid_anchors(cell: torch.Tensor, fh, fw, stride_h, stride_w) -> torch.Tensor:
    """(fh * fw * A, 4) anchors: cell anchors shifted to every grid position
    (row-major, cell anchors minor), as detcore.ops.make_anchors."""
    xs = torch.arange(fw, dtype=torch.float32) * stride_w
    ys = torch.arange(fh, dtype=torch.float32) * stride_h
    sy, sx = torch.meshgrid(ys, xs, indexing="ij")
    shifts = torch.stack([sx, sy, sx, sy], dim=-1).reshape(-1, 1, 4)
    return (shifts + cell[None]).reshape(-1, 4)


def _decode(deltas: torch.Tensor, boxes: torch.Tensor, weights, clamp: float) -> torch.Tensor:
    """(N, 4) deltas against (N, 4) boxes, as detcore.ops.decode_boxes."""
    wx, wy, ww, wh = weights
    w = boxes[:, 2] - boxes[:, 0]
    h = boxes[:, 3] - boxes[:, 1]
    cx = boxes[:, 0] + 0.5 * w
    cy = boxes[:, 1] + 0.5 * h
    dw = torch.clamp(deltas[:, 2] / ww, max=clamp)
    dh = torch.clamp(deltas[:, 3] / wh, max=clamp)
    pcx = deltas[:, 0] / wx * w + cx
    pcy = deltas[:, 1] / wy * h + cy
    hw = 0.5 * (torch.exp(dw) * w)
    hh = 0.5 * (torch.exp(dh) * h)
    return torch.stack([pcx - hw, pcy - hh, pcx + hw, pcy + hh], dim=1)


def _nonsmall(boxes: torch.Tensor, min_size: float) -> torch.Tensor:
    ws, hs = boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]
    return torch.nonzero((ws >= min_size) & (hs >= min_size))[:, 0]


class ExportWrapper(nn.Module):
    """Batch size 1, a tuple out (see the module docstring)."""

    def __init__(self, model: nn.Module):
        super().__init__()
        if not isinstance(model, (GeneralizedRCNN, RetinaNet)):
            raise TypeError(f"model: expected a detcore detector, got {type(model).__name__}")
        self.model = model.eval()
        t = model.transform
        self.register_buffer("mean", torch.tensor(t.image_mean, dtype=torch.float32)[None, :, None, None])
        self.register_buffer("std", torch.tensor(t.image_std, dtype=torch.float32)[None, :, None, None])
        gen = model.rpn.anchor_generator if isinstance(model, GeneralizedRCNN) and model.rpn is not None else (
            getattr(model, "anchor_generator", None)
        )
        self.num_cells = 0
        if gen is not None:
            cells = [ops.cell_anchors(s, r, dtype=torch.float32, device="cpu") for s, r in zip(gen.sizes, gen.aspect_ratios)]
            self.num_cells = len(cells)
            for i, c in enumerate(cells):
                self.register_buffer(f"cell{i}", c)

    @property
    def needs_proposals(self) -> bool:
        return isinstance(self.model, GeneralizedRCNN) and self.model.rpn is None

    @property
    def output_names(self) -> list[str]:
        names = ["boxes", "labels", "scores"]
        if isinstance(self.model, GeneralizedRCNN) and self.model.roi_heads.has_mask:
            names.append("masks")
        if isinstance(self.model, GeneralizedRCNN) and self.model.roi_heads.has_keypoint:
            names += ["keypoints", "keypoints_scores"]
        return names

    def _anchors(self, feats, h, w):
        out = []
        for i, f in enumerate(feats):
            fh, fw = f.shape[-2], f.shape[-1]
            # strides from the batch and grid sizes, as the eager AnchorGenerator
            out.append(_grid_anchors(getattr(self, f"cell{i}"), fh, fw, h // fh, w // fw))
        return out

    def forward(self, images: torch.Tensor, proposals: torch.Tensor | None = None):
        x = (images - self.mean) / self.std
        h, w = images.shape[-2], images.shape[-1]
        features = self.model.backbone(x)
        if isinstance(self.model, RetinaNet):
            return self._retinanet(list(features.values()), h, w)
        if self.model.rpn is not None:
            proposals = self._rpn(features, h, w)
        return self._roi_heads(features, proposals, h, w)

    def _rpn(self, features, h, w):
        rpn = self.model.rpn
        feats = list(features.values())
        logits, deltas = rpn.head(feats)
        anchors = self._anchors(feats, h, w)
        pre_n = rpn.pre_nms_top_n["testing"]
        boxes_all, scores_all, levels_all = [], [], []
        for lvl, (lg, dl, an) in enumerate(zip(logits, deltas, anchors)):
            obj = flatten_level(lg, 1).reshape(-1)
            dl = flatten_level(dl, 4).reshape(-1, 4)
            k = torch.sym_min(pre_n, obj.shape[0])
            top_logits, top = obj.topk(k)
            boxes_all.append(_decode(dl[top], an[top], rpn.box_coder.weights, rpn.box_coder.clamp))
            scores_all.append(torch.sigmoid(top_logits))
            levels_all.append(torch.full_like(top, lvl))
        boxes = clip_boxes(torch.cat(boxes_all), (h, w))
        scores, levels = torch.cat(scores_all), torch.cat(levels_all)
        keep = _nonsmall(boxes, rpn.min_size)
        boxes, scores, levels = boxes[keep], scores[keep], levels[keep]
        keep = torch.nonzero(scores >= rpn.score_thresh)[:, 0]
        boxes, scores, levels = boxes[keep], scores[keep], levels[keep]
        keep = ops.batched_nms(boxes, scores, levels, rpn.nms_thresh)[: rpn.post_nms_top_n["testing"]]
        return boxes[keep]

    def _pool(self, pooler, features, boxes):
        """pooler(features, [boxes]) without the eager skip of empty levels."""
        feats = [features[n] for n in pooler.level_names]
        rois = torch.cat([torch.zeros_like(boxes[:, :1]), boxes], dim=1)
        if len(feats) == 1:
            return pooler._pool(feats[0], rois, pooler.scales[0])
        levels = pooler.level_of(boxes)
        out = feats[0].new_zeros((rois.shape[0], feats[0].shape[1]) + pooler.output_size)
        for lvl, (x, scale) in enumerate(zip(feats, pooler.scales)):
            idx = torch.nonzero(levels == lvl)[:, 0]
            out = out.index_put((idx,), pooler._pool(x, rois[idx], scale))
        return out

    def _roi_heads(self, features, proposals, h, w):
        heads = self.model.roi_heads
        x = self._pool(heads.box_pooler, features, proposals)
        class_logits, box_deltas = heads.box_predictor(heads.box_head(x))
        num_classes = class_logits.shape[-1]
        n = proposals.shape[0]
        coder = heads.box_coder
        boxes = _decode(box_deltas.reshape(-1, 4), proposals.repeat_interleave(num_classes, dim=0), coder.weights,
                        coder.clamp).reshape(n, num_classes, 4)
        boxes = clip_boxes(boxes, (h, w))[:, 1:].reshape(-1, 4)
        scores = F.softmax(class_logits, -1)[:, 1:].reshape(-1)
        labels = torch.arange(1, num_classes).expand(n, -1).reshape(-1)
        keep = torch.nonzero(scores > heads.score_thresh)[:, 0]
        boxes, scores, labels = boxes[keep], scores[keep], labels[keep]
        keep = _nonsmall(boxes, 1e-2)
        boxes, scores, labels = boxes[keep], scores[keep], labels[keep]
        keep = ops.batched_nms(boxes, scores, labels, heads.nms_thresh)[: heads.detections_per_img]
        boxes, scores, labels = boxes[keep], scores[keep], labels[keep]
        out = (boxes, labels, scores)
        if heads.has_mask:
            logits = heads.mask_predictor(heads.mask_head(self._pool(heads.mask_pooler, features, boxes)))
            rows = torch.arange(logits.shape[0])
            out += (torch.sigmoid(logits[rows, labels])[:, None],)
        if heads.has_keypoint:
            pooled = self._pool(heads.keypoint_pooler, features, boxes)
            maps = heads.keypoint_predictor(heads.keypoint_head(pooled))
            out += tuple(torch.ops.detcore.heatmaps_to_keypoints(maps, boxes))
        return out

    def _retinanet(self, feats, h, w):
        m = self.model
        logits, deltas = m.head(feats)
        anchors = self._anchors(feats, h, w)
        boxes_all, scores_all, labels_all = [], [], []
        for lg, dl, an in zip(logits, deltas, anchors):
            scores = torch.sigmoid(lg[0]).flatten()
            idx = torch.nonzero(scores > m.score_thresh)[:, 0]
            k = torch.sym_min(m.topk_candidates, idx.shape[0])
            scores, top = scores[idx].topk(k)
            idx = idx[top]
            anchor_idx = torch.div(idx, m.num_classes, rounding_mode="floor")
            boxes = _decode(dl[0][anchor_idx], an[anchor_idx], m.box_coder.weights, m.box_coder.clamp)
            boxes_all.append(clip_boxes(boxes, (h, w)))
            scores_all.append(scores)
            labels_all.append(idx % m.num_classes)
        boxes, scores, labels = torch.cat(boxes_all), torch.cat(scores_all), torch.cat(labels_all)
        keep = ops.batched_nms(boxes, scores, labels, m.nms_thresh)[: m.detections_per_img]
        return boxes[keep], labels[keep], scores[keep]
