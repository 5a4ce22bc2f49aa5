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
from ..models.classic.base import RegionDetector
from ..models.classic.sppnet import SPPNet
from ..models.classic.warp import warp_regions
from ..models.meta.overfeat import OverFeat
from ..models.meta.rcnn import GeneralizedRCNN
from ..models.meta.retinanet import RetinaNet
from ..models.proposal.rpn import flatten_level

# Why a detector cannot be exported (checked by ExportWrapper).
NOT_EXPORTABLE = {
    OverFeat: (
        "overfeat: not exportable: its greedy merge joins the best-matching pair of boxes and recomputes their "
        "match scores until no pair matches, a data-dependent sequential loop that torch.export cannot trace "
        "(and merge='nms' still picks each class's candidates in a per-class Python loop)"
    ),
}


def required_multiple(model: nn.Module) -> int:
    """H and W of an exported model's input must be multiples of this: the
    padding multiple of the eager transform, so that no padding is needed
    and the graph sees the batch the eager model sees (1 for R-CNN, which
    only samples the image through its region warp)."""
    transform = getattr(model, "transform", None)
    return int(transform.size_divisible) if transform is not None else 1


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


def _decode_per_class(deltas: torch.Tensor, boxes: torch.Tensor, coder) -> torch.Tensor:
    """(n, C * 4) deltas against (n, 4) boxes -> (n, C, 4), as BoxCoder.decode."""
    n, c = boxes.shape[0], deltas.shape[-1] // 4
    return _decode(deltas.reshape(-1, 4), boxes.repeat_interleave(c, dim=0), coder.weights,
                   coder.clamp).reshape(n, c, 4)


def _select(boxes, scores, size, score_thresh, nms_thresh, top):
    """Per-class boxes (n, C, 4) and scores (n, C), class 0 the background ->
    (boxes, labels, scores) of the detections: clipped, over the score
    threshold, not tiny, after per-class NMS, the best `top`."""
    n, num_classes = scores.shape
    boxes = clip_boxes(boxes, size)[:, 1:].reshape(-1, 4)
    scores = scores[:, 1:].reshape(-1)
    labels = torch.arange(1, num_classes).expand(n, -1).reshape(-1)
    keep = torch.nonzero(scores > score_thresh)[:, 0]
    boxes, scores, labels = boxes[keep], scores[keep], labels[keep]
    keep = _nonsmall(boxes, 1e-2)
    boxes, scores, labels = boxes[keep], scores[keep], labels[keep]
    keep = ops.batched_nms(boxes, scores, labels, nms_thresh)[:top]
    return boxes[keep], labels[keep], scores[keep]


class ExportWrapper(nn.Module):
    """Batch size 1, a tuple out (see the module docstring)."""

    def __init__(self, model: nn.Module):
        super().__init__()
        for cls, reason in NOT_EXPORTABLE.items():
            if isinstance(model, cls):
                raise ValueError(reason)
        if not isinstance(model, (GeneralizedRCNN, RetinaNet, RegionDetector)):
            raise TypeError(f"model: expected a detcore detector, got {type(model).__name__}")
        self.model = model.eval()
        t = getattr(model, "transform", model)  # R-CNN holds its mean and std itself
        self.register_buffer("mean", torch.tensor(t.image_mean, dtype=torch.float32)[None, :, None, None])
        self.register_buffer("std", torch.tensor(t.image_std, dtype=torch.float32)[None, :, None, None])
        if isinstance(model, RegionDetector):
            # which scoring and regression the stages have trained: fixed in the graph
            self.svms_trained, self.regressors_trained = (bool(v) for v in model.stages_done)
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
        return isinstance(self.model, RegionDetector) or (
            isinstance(self.model, GeneralizedRCNN) and self.model.rpn is None
        )

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
        if isinstance(self.model, RegionDetector):
            return self._regions(x, proposals, h, w)
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
        if heads.box_reg_at_test:
            boxes = _decode_per_class(box_deltas, proposals, heads.box_coder)
        else:  # model.box_reg_at_test=false: every class's box is the proposal
            boxes = proposals[:, None, :].expand(proposals.shape[0], class_logits.shape[-1], 4)
        boxes, labels, scores = _select(boxes, F.softmax(class_logits, -1), (h, w), heads.score_thresh,
                                        heads.nms_thresh, heads.detections_per_img)
        out = (boxes, labels, scores)
        if heads.has_mask:
            if heads.mask_on_box_features:  # the ResNet-C4 Mask R-CNN: res5 again on the detections
                mask_in = heads.box_head.trunk(self._pool(heads.box_pooler, features, boxes))
            else:
                mask_in = heads.mask_head(self._pool(heads.mask_pooler, features, boxes))
            logits = heads.mask_predictor(mask_in)
            rows = torch.arange(logits.shape[0])
            out += (torch.sigmoid(logits[rows, labels])[:, None],)
        if heads.has_keypoint:
            pooled = self._pool(heads.keypoint_pooler, features, boxes)
            maps = heads.keypoint_predictor(heads.keypoint_head(pooled))
            out += tuple(torch.ops.detcore.heatmaps_to_keypoints(maps, boxes))
        return out

    def _regions(self, x, proposals, h, w):
        """R-CNN and SPP-net: every proposal's pool5 features, then the
        scoring and box regression the stages trained (RegionDetector.detect)."""
        m = self.model
        if isinstance(m, SPPNet):
            conv5 = m.backbone(x)["c5"]
            pool5 = ops.spp_pool(conv5, [proposals], levels=m.levels, spatial_scale=1.0 / m.stride)
        else:  # all regions in one batch: eager goes in chunks of region_batch
            pool5 = m.features(warp_regions(x[0], proposals, m.input_size, m.context_pad)).flatten(1)
        feats = m.fc_features(pool5, sorted({"pool5", "fc7", m.svm_feature}))
        if self.svms_trained:
            scores = (feats[m.svm_feature] * m.feature_scale[0]) @ m.svm_weight.T + m.svm_bias
        else:
            scores = F.softmax(m.cls_score(feats["fc7"]), -1)
        if self.regressors_trained:
            deltas = torch.einsum("pd,ckd->pck", pool5 * m.feature_scale[1], m.reg_weight) + m.reg_bias
            boxes = _decode_per_class(deltas.reshape(proposals.shape[0], -1), proposals, m.box_coder)
        else:
            boxes = proposals[:, None].expand(-1, m.num_classes, -1)
        return _select(boxes, scores, (h, w), m.score_thresh, m.nms_thresh, m.detections_per_img)

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
