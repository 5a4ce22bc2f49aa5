"""What R-CNN and SPP-net share: fc6/fc7 on a region's "pool5" features, a
softmax classifier for fine-tuning, per-class linear SVMs and ridge box
regressors (trained by :mod:`detcore.engine.stages`, stored as buffers so a
checkpoint holds the whole detector), and the test-time scoring, box
regression and per-class NMS.

A subclass supplies ``_pool5(images, boxes)``: per image, the (Pi, D)
flattened pool5 features of its boxes (R-CNN warps every box through the
CNN; SPP-net pools every box from one conv5 map)."""

from __future__ import annotations

from typing import Dict, List, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from ... import ops
from ..box_ops import BoxCoder, clip_boxes, nonsmall
from ..roi_heads.box_head import TwoFCHead
from ..roi_heads.matching import BalancedSampler
from ..validation import check_images, check_targets

FEATURE_LAYERS = ("pool5", "fc6", "fc7")
# R-CNN regresses in the plain (unweighted) box coding
REG_WEIGHTS = (1.0, 1.0, 1.0, 1.0)


def check_proposals(proposals, num_images: int) -> None:
    if proposals is None:
        raise ValueError(
            "proposals: this detector scores external proposals and got none; pass proposals=[(Pi, 4) tensor per "
            "image], or train/eval from the command line with --proposals selective_search or --proposals FILE"
        )
    if not isinstance(proposals, (list, tuple)) or len(proposals) != num_images:
        raise ValueError(f"proposals: expected a list of one (P, 4) tensor per image ({num_images}), "
                         f"got {type(proposals).__name__} of length {len(proposals) if hasattr(proposals, '__len__') else '?'}")
    for i, p in enumerate(proposals):
        if not isinstance(p, torch.Tensor) or p.dim() != 2 or p.shape[-1] != 4:
            raise ValueError(f"proposals[{i}]: expected a (P, 4) tensor, got {getattr(p, 'shape', type(p).__name__)}")
        if not p.is_floating_point():
            raise ValueError(f"proposals[{i}]: expected a float tensor, got {p.dtype}")
        if not torch.isfinite(p).all():
            raise ValueError(f"proposals[{i}]: expected finite coordinates")


class RegionDetector(nn.Module):
    """Args:
        num_classes: including the background (class 0).
        pool5_features: length of a region's flattened pool5 vector.
        representation_size: fc6 / fc7 width (4096 for VGG16).
        dropout: on fc6 and fc7 in training (0.5, the papers).
        svm_feature: the layer the SVMs read, "fc7" (the paper), "fc6" or "pool5".
        fg_iou: fine-tuning foreground IoU (>= 0.5 takes the box's class).
        batch_size, positive_fraction: fine-tuning regions per batch drawn
            across the batch's images (128, 0.25: 32 fg + 96 bg).
        svm_C, svm_pos_weight, svm_neg_iou, svm_epochs, svm_retrain_every:
            the SVM stage (C 0.001, positives weighted 2, negatives IoU < 0.3,
            one pass of hard-negative mining, retraining each 2000 new hard
            negatives; R-CNN's values).
        reg_iou, reg_lambda: the regression stage (IoU >= 0.6, ridge lambda 1000).
        score_thresh, nms_thresh, detections_per_img: test time (SVM margin
            > -1, per-class NMS 0.3, 100 boxes).
        region_batch: regions per CNN batch at test time (memory).
    """

    needs_proposals = True
    multi_stage = True  # `detcore train` runs detcore.engine.stages

    def __init__(
        self, num_classes: int, pool5_features: int, representation_size: int = 4096, dropout: float = 0.5,
        svm_feature: str = "fc7", fg_iou: float = 0.5, batch_size: int = 128, positive_fraction: float = 0.25,
        svm_C: float = 0.001, svm_pos_weight: float = 2.0, svm_neg_iou: float = 0.3, svm_epochs: int = 1,
        svm_retrain_every: int = 2000, reg_iou: float = 0.6, reg_lambda: float = 1000.0,
        score_thresh: float = -1.0, nms_thresh: float = 0.3, detections_per_img: int = 100,
        region_batch: int = 32, image_mean=(0.485, 0.456, 0.406), image_std=(0.229, 0.224, 0.225),
    ):
        super().__init__()
        if svm_feature not in FEATURE_LAYERS:
            raise ValueError(f"svm_feature: expected one of {FEATURE_LAYERS}, got {svm_feature!r}")
        if not 0 < positive_fraction <= 1 or batch_size < 1:
            raise ValueError(f"batch_size, positive_fraction: expected >= 1 and (0, 1], got {batch_size}, "
                             f"{positive_fraction}")
        if region_batch < 1:
            raise ValueError(f"region_batch: expected >= 1, got {region_batch}")
        self.num_classes = num_classes
        self.head = TwoFCHead(pool5_features, representation_size, dropout)
        self.cls_score = nn.Linear(representation_size, num_classes)
        nn.init.normal_(self.cls_score.weight, std=0.01)
        nn.init.constant_(self.cls_score.bias, 0)
        self.svm_feature = svm_feature
        self.feature_dims = {"pool5": pool5_features, "fc6": representation_size, "fc7": representation_size}
        self.sampler = BalancedSampler(batch_size, positive_fraction)
        self.fg_iou = fg_iou
        self.svm_C, self.svm_pos_weight, self.svm_neg_iou = svm_C, svm_pos_weight, svm_neg_iou
        self.svm_epochs, self.svm_retrain_every = svm_epochs, svm_retrain_every
        self.reg_iou, self.reg_lambda = reg_iou, reg_lambda
        self.score_thresh, self.nms_thresh, self.detections_per_img = score_thresh, nms_thresh, detections_per_img
        self.region_batch = region_batch
        self.image_mean, self.image_std = tuple(image_mean), tuple(image_std)
        self.box_coder = BoxCoder(REG_WEIGHTS)
        # the stages' results: features are multiplied by feature_scale[0] (SVM layer) and
        # feature_scale[1] (pool5) before the SVMs and regressors (R-CNN scales them to mean norm 20)
        self.register_buffer("svm_weight", torch.zeros(num_classes, self.feature_dims[svm_feature]))
        self.register_buffer("svm_bias", torch.zeros(num_classes))
        self.register_buffer("reg_weight", torch.zeros(num_classes, 4, pool5_features))
        self.register_buffer("reg_bias", torch.zeros(num_classes, 4))
        self.register_buffer("feature_scale", torch.ones(2))
        self.register_buffer("stages_done", torch.zeros(2, dtype=torch.bool))  # [svm, bbox_reg]

    # ------------------------------------------------------------------ features

    def _pool5(self, images: Sequence[torch.Tensor], boxes: Sequence[torch.Tensor]) -> List[torch.Tensor]:
        raise NotImplementedError

    def normalize(self, image: torch.Tensor) -> torch.Tensor:
        mean = image.new_tensor(self.image_mean)[:, None, None]
        std = image.new_tensor(self.image_std)[:, None, None]
        return (image - mean) / std

    def fc_features(self, pool5: torch.Tensor, layers: Sequence[str]) -> Dict[str, torch.Tensor]:
        """pool5 (K, D) -> the requested layers (fc6 and fc7 after their ReLU)."""
        out = {"pool5": pool5}
        if "fc6" in layers or "fc7" in layers:
            fc6 = F.relu(self.head.fc6(pool5))
            out["fc6"] = fc6
            out["fc7"] = F.relu(self.head.fc7(self.head.dropout(fc6)))
        return {k: out[k] for k in layers}

    @torch.no_grad()
    def region_features(self, images, proposals, layers: Sequence[str] = ("pool5",)) -> List[Dict[str, torch.Tensor]]:
        """Per image, a dict layer -> (Pi, D) features of its proposals (eval mode, no gradient)."""
        for layer in layers:
            if layer not in FEATURE_LAYERS:
                raise ValueError(f"layers: expected names from {FEATURE_LAYERS}, got {layer!r}")
        check_images(images)
        check_proposals(proposals, len(images))
        pool5 = self._pool5(images, [p.to(images[0].dtype) for p in proposals])
        return [self.fc_features(p, layers) for p in pool5]

    # ------------------------------------------------------------------ forward

    def forward(self, images, targets=None, proposals=None):
        check_images(images)
        if proposals is None and targets is not None and all(isinstance(t, dict) and "proposals" in t for t in targets):
            proposals = [t["proposals"] for t in targets]
        check_proposals(proposals, len(images))
        proposals = [p.to(images[0].dtype) for p in proposals]
        if self.training:
            check_targets(targets, len(images), self.num_classes)
            return {"loss_classifier": self._finetune_loss(images, targets, proposals)}
        return self.detect(images, proposals)

    def _finetune_loss(self, images, targets, proposals):
        """Softmax over N+1 classes on regions sampled across the batch's
        images: proposals and ground truth, IoU >= fg_iou is the box's class,
        the rest background."""
        boxes, labels = [], []
        for props, t in zip(proposals, targets):
            gt = t["boxes"].to(props.dtype)
            cand = torch.cat([props, gt])
            lab = torch.zeros(cand.shape[0], dtype=torch.int64, device=cand.device)
            if gt.shape[0]:
                best, idx = ops.box_iou(gt, cand).max(0)
                lab = torch.where(best >= self.fg_iou, t["labels"][idx], lab)
            boxes.append(cand)
            labels.append(lab)
        image_of = torch.cat([torch.full((b.shape[0],), i, dtype=torch.int64) for i, b in enumerate(boxes)])
        pos, neg = self.sampler(torch.cat(labels))
        keep = torch.cat([pos, neg])
        if keep.numel() == 0:  # no region at all: a zero loss that still reaches every parameter
            return sum(p.sum() * 0.0 for p in self.parameters() if p.requires_grad)
        all_boxes, all_labels = torch.cat(boxes), torch.cat(labels)
        picked = [all_boxes[keep[image_of[keep] == i]] for i in range(len(images))]
        picked_labels = torch.cat([all_labels[keep[image_of[keep] == i]] for i in range(len(images))])
        pool5 = torch.cat(self._pool5(images, picked))
        logits = self.cls_score(self.fc_features(pool5, ("fc7",))["fc7"])
        return F.cross_entropy(logits, picked_labels)

    # ------------------------------------------------------------------ test time

    def score_regions(self, feats: Dict[str, torch.Tensor]) -> torch.Tensor:
        """(P, num_classes) scores: SVM margins once the SVMs are trained,
        else the fine-tuned softmax."""
        if bool(self.stages_done[0]):
            return (feats[self.svm_feature] * self.feature_scale[0]) @ self.svm_weight.T + self.svm_bias
        return F.softmax(self.cls_score(feats["fc7"]), -1)

    def regress_regions(self, pool5: torch.Tensor, boxes: torch.Tensor) -> torch.Tensor:
        """(P, num_classes, 4) boxes: each class's regressor applied once trained, else the proposals."""
        if not bool(self.stages_done[1]) or boxes.shape[0] == 0:
            return boxes[:, None].expand(-1, self.num_classes, -1)
        deltas = torch.einsum("pd,ckd->pck", pool5 * self.feature_scale[1], self.reg_weight) + self.reg_bias
        return self.box_coder.decode(deltas.reshape(boxes.shape[0], -1), boxes)

    @torch.no_grad()
    def detect(self, images, proposals) -> List[Dict[str, torch.Tensor]]:
        layers = sorted({"pool5", "fc7", self.svm_feature})
        results = []
        for image, props, feats in zip(images, proposals, self.region_features(images, proposals, layers)):
            scores = self.score_regions(feats)[:, 1:]
            boxes = clip_boxes(self.regress_regions(feats["pool5"], props), tuple(image.shape[-2:]))[:, 1:]
            labels = torch.arange(1, self.num_classes, device=scores.device).expand(scores.shape[0], -1)
            boxes, scores, labels = boxes.reshape(-1, 4), scores.reshape(-1), labels.reshape(-1)
            keep = torch.where(scores > self.score_thresh)[0]
            boxes, scores, labels = boxes[keep], scores[keep], labels[keep]
            keep = nonsmall(boxes, 1e-2)
            boxes, scores, labels = boxes[keep], scores[keep], labels[keep]
            keep = ops.batched_nms(boxes, scores, labels, self.nms_thresh)[: self.detections_per_img]
            results.append({"boxes": boxes[keep], "labels": labels[keep], "scores": scores[keep]})
        return results
